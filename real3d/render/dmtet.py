"""The explicit renderer g^ζ_θ: a deformable tetrahedral grid, marching tetrahedra (Eq. 9), rasterization (Eq. 10).

Eq. 9, E = ℓ({τ_i = g^ξ_θ(u_i + Δu_i); τ_i > ε}): the grid vertices u_i, moved by the learned deformation
Δu_i (bounded to a fraction of a cell), read τ from the **same field θ** as the NeRF renderer; the surface is
the level set τ = ε and "inside" is τ > ε (see `real3d.field`). Marching tetrahedra ℓ interpolates the zero
crossing of s = τ − ε along every edge whose ends disagree, so the mesh vertices carry gradients to θ (through
τ) and to Δu (through the edge end positions). Eq. 10 rasterizes that mesh (`render/raster.py`).

Cost: τ is evaluated with gradients only at the vertices of the tets that the surface crosses (found by a
gradient-free pass), and from `band_start_step` on that pass covers only the tets within `band_cells` cells
of the last surface (re-centred every `band_update_every` steps, the whole grid re-measured every
`band_full_every` steps), so a 128³ grid costs about as much as the surface it holds.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..cameras import Cameras
from ..config import bounded
from ..registry import register
from .base import RenderOutput
from .raster import RasterBackend, Rasterizer, interpolate, make_rasterizer, to_clip
from .shading import ShadingConfig, ShadingMode, shade


class TauField(Protocol):
    """What the explicit renderer needs of θ: τ, albedo and the scene bound (TriplaneField has them)."""

    @property
    def bound(self) -> float: ...

    def tau(self, x: torch.Tensor) -> torch.Tensor: ...

    def albedo(self, x: torch.Tensor) -> torch.Tensor: ...


BOUND_SLOPE = 0.3  # s per grid cell of the bound's signed distance in the level set (DMTetGeometry.level_set)


def bound_distance(field: TauField, x: torch.Tensor) -> torch.Tensor | None:
    """The field's signed distance [N] to its own hard bound (> 0 inside), if it has one (TriplaneField's
    `ball`); None for fields bounded by the grid's cube alone."""
    distance = getattr(field, "bound_distance", None)
    return None if distance is None else distance(x)


# ------------------------------------------------------------------------------------------------ the grid

_CORNERS = torch.tensor(list(itertools.product((0, 1), repeat=3)))  # [8,3] corner offsets of a cell (x,y,z)


def _kuhn_tets() -> torch.Tensor:
    """The 6 tets [6,4] (corner ids, corner (dx,dy,dz) = 4dx + 2dy + dz) of a cube split along its diagonal.

    The tet of axis order (a,b,c) walks 0 → e_a → e_a+e_b → (1,1,1); its orientation is the sign of the
    permutation, so odd permutations swap their last two vertices and every tet is positively oriented. All
    cells share the diagonal direction, so the split is conforming across cell faces.
    """
    weight = (4, 2, 1)
    tets = []
    for perm in itertools.permutations(range(3)):
        path = [0, weight[perm[0]], weight[perm[0]] + weight[perm[1]], 7]
        odd = sum(perm[i] > perm[j] for i in range(3) for j in range(i + 1, 3)) % 2
        tets.append(path[:2] + path[2:][::-1] if odd else path)
    return torch.tensor(tets)


_CELL_TETS = _kuhn_tets()  # [6,4]


@dataclass
class TetGrid:
    """The regular tet grid of `res`³ cells spanning [−bound, bound]³, 6 tets per cell.

    Tets are not stored: tet 6·c + t of cell c is `cell_tets(c)[t]`, computed from the cell index.
    """

    res: int
    bound: float
    verts: torch.Tensor  # [(res+1)³,3] vertex positions u_i, index (i·(res+1) + j)·(res+1) + k for (x,y,z)

    @property
    def cell_size(self) -> float:
        return 2 * self.bound / self.res

    def cell_tets(self, cells: torch.Tensor) -> torch.Tensor:
        """Vertex ids [6·C,4] of the tets of cells [C] (cell id (i·res + j)·res + k)."""
        r, n = self.res, self.res + 1
        ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], -1)  # [C,3]
        base = (ijk[:, 0] * n + ijk[:, 1]) * n + ijk[:, 2]
        corner_offset = (_CORNERS[:, 0] * n + _CORNERS[:, 1]) * n + _CORNERS[:, 2]  # [8]
        return (base[:, None, None] + corner_offset[_CELL_TETS][None]).reshape(-1, 4)

    def all_tets(self) -> torch.Tensor:
        """Vertex ids [6·res³,4] of every tet."""
        return self.cell_tets(torch.arange(self.res**3))

    def surface_cells(self, sdf: torch.Tensor, dilate: int = 0) -> torch.Tensor:
        """Ids [C] of cells whose corners' s = τ − ε [(res+1)³] change sign, grown by `dilate` cells."""
        n = self.res + 1
        grid = (sdf > 0).float().reshape(1, 1, n, n, n)
        any_in = F.max_pool3d(grid, 2, stride=1)
        any_out = F.max_pool3d(1 - grid, 2, stride=1)
        mixed = any_in * any_out  # [1,1,res,res,res]
        if dilate:
            mixed = F.max_pool3d(mixed, 2 * dilate + 1, stride=1, padding=dilate)
        return mixed.reshape(-1).nonzero()[:, 0]


@functools.lru_cache(maxsize=8)
def tet_grid(res: int, bound: float) -> TetGrid:
    """The tet grid of `res`³ cells over [−bound, bound]³ (cached in memory: one per resolution and bound)."""
    axis = torch.linspace(-bound, bound, res + 1)
    verts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return TetGrid(res, bound, verts)


# --------------------------------------------------------------------------------------- marching tetrahedra

_TET_EDGES = torch.tensor([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])  # [6,2]


def _triangle_table() -> tuple[torch.Tensor, torch.Tensor]:
    """Per inside-code (bit i: vertex i inside) up to 2 triangles of tet-edge ids [16,2,3], and their count [16].

    The winding is fixed on the reference tet (positively oriented) so that every normal points from the
    inside vertices to the outside ones; an orientation-preserving affine map keeps that sign, so it holds for
    every positively oriented tet of the grid.
    """
    ref = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    table = torch.full((16, 2, 3), -1, dtype=torch.long)
    count = torch.zeros(16, dtype=torch.long)
    for code in range(16):
        inside = [bool(code >> i & 1) for i in range(4)]
        ins = [i for i in range(4) if inside[i]]
        outs = [i for i in range(4) if not inside[i]]
        if not ins or not outs:
            continue

        def edge(a: int, b: int) -> int:
            return next(e for e, (p, q) in enumerate(_TET_EDGES.tolist()) if {p, q} == {a, b})

        if len(ins) == 2:  # quad i0-o0, i0-o1, i1-o1, i1-o0 in cyclic order, split in two
            quad = [edge(ins[0], outs[0]), edge(ins[0], outs[1]), edge(ins[1], outs[1]), edge(ins[1], outs[0])]
            tris = [[quad[0], quad[1], quad[2]], [quad[0], quad[2], quad[3]]]
        else:
            lone, others = (ins[0], outs) if len(ins) == 1 else (outs[0], ins)
            tris = [[edge(lone, o) for o in others]]
        outward = ref[outs].mean(0) - ref[ins].mean(0)
        for t, tri in enumerate(tris):
            p = ref[_TET_EDGES[tri]].mean(1)  # edge midpoints [3,3]
            if torch.linalg.cross(p[1] - p[0], p[2] - p[0]) @ outward < 0:
                tri = [tri[0], tri[2], tri[1]]
            table[code, t] = torch.tensor(tri)
        count[code] = len(tris)
    return table, count


_TRI_TABLE, _NUM_TRIS = _triangle_table()


@dataclass
class Mesh:
    """A triangle mesh: verts [V,3] world positions, faces [F,3] vertex ids wound counter-clockwise outward."""

    verts: torch.Tensor
    faces: torch.Tensor

    def face_normals(self) -> torch.Tensor:
        """Area-weighted (unnormalised) outward face normals [F,3]."""
        v = self.verts[self.faces]  # [F,3,3]
        return torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])

    def vertex_normals(self) -> torch.Tensor:
        """Unit outward vertex normals [V,3] (area-weighted mean of the adjacent faces)."""
        fn = self.face_normals().repeat_interleave(3, 0)  # [3F,3]
        acc = torch.zeros_like(self.verts).index_add(0, self.faces.reshape(-1), fn)
        return F.normalize(acc, dim=-1, eps=1e-12)


def marching_tets(pos: torch.Tensor, sdf: torch.Tensor, tets: torch.Tensor) -> Mesh:
    """Differentiable marching tetrahedra ℓ of Eq. 9 over positions pos [N,3], s = τ − ε [N] (> 0 inside).

    Each edge whose ends disagree in sign gives one vertex at the zero crossing of the linear interpolant of s,
    (x_a·s_b − x_b·s_a) / (s_b − s_a), shared by every tet that holds the edge; so the mesh is watertight
    wherever the surface stays inside the tets given.
    """
    with torch.no_grad():
        inside = sdf[tets] > 0  # [T,4]
        code = (inside.long() * torch.tensor([1, 2, 4, 8])).sum(-1)
        active = _NUM_TRIS[code] > 0
        tets, code = tets[active], code[active]
        edges = tets[:, _TET_EDGES].reshape(-1, 2).sort(-1).values  # [6T,2] vertex ids of every tet edge
        crossing = (sdf[edges[:, 0]] > 0) != (sdf[edges[:, 1]] > 0)
        uniq, first_vert = torch.unique(edges[crossing, 0] * pos.shape[0] + edges[crossing, 1], return_inverse=True)
        edge_vert = torch.full((edges.shape[0],), -1, dtype=torch.long).masked_scatter(crossing, first_vert)
        edge_vert = edge_vert.reshape(-1, 6)  # [T,6] mesh vertex id of each crossing tet edge
        ends = torch.stack([uniq // pos.shape[0], uniq % pos.shape[0]], -1)  # [V,2]
        n_tris = _NUM_TRIS[code]
        tri_edges = torch.cat([_TRI_TABLE[code[n_tris >= 1], 0], _TRI_TABLE[code[n_tris == 2], 1]])  # [F,3]
        tri_tet = torch.cat([(n_tris >= 1).nonzero()[:, 0], (n_tris == 2).nonzero()[:, 0]])
        faces = edge_vert[tri_tet[:, None], tri_edges]
    s_a, s_b = sdf[ends[:, 0], None], sdf[ends[:, 1], None]
    verts = (pos[ends[:, 0]] * s_b - pos[ends[:, 1]] * s_a) / (s_b - s_a)
    return Mesh(verts, faces)


# -------------------------------------------------------------------------------------- deformable geometry


class DMTetGeometry(nn.Module):
    """The deformable tet grid (u + Δu) and its narrow band: `mesh(field)` is Eq. 9."""

    level: torch.Tensor  # [] ε, a float64 buffer (see __init__)

    def __init__(self, res: int, bound: float, eps: float, deform_scale: float, band_cells: int) -> None:
        super().__init__()
        self.grid = tet_grid(res, bound)
        self.band_cells = band_cells
        # ε, checkpointed (system.fit_level_every moves it); float64, so that ε reads back exactly as configured
        self.register_buffer("level", torch.tensor(eps, dtype=torch.float64))
        self._register_load_state_dict_pre_hook(self._keep_level)
        self.deform_limit = deform_scale * self.grid.cell_size  # max |Δu| per axis, world units
        self.deformation = nn.Parameter(torch.zeros_like(self.grid.verts))  # Δu before the tanh bound [N,3]
        self.register_buffer("last_sdf", torch.empty(0), persistent=False)  # s of the last evaluation [N]
        self.band: tuple[torch.Tensor, torch.Tensor] | None = None  # band vertex ids [N_b] and tets [T_b,4]

    @property
    def eps(self) -> float:
        """ε of Eq. 9: the surface is τ = ε."""
        return float(self.level)

    @eps.setter
    def eps(self, value: float) -> None:
        self.level.fill_(value)

    def _keep_level(self, state: dict[str, Any], prefix: str, *args: Any) -> None:
        """A checkpoint from before ε was kept in the state loads with ε as configured."""
        state.setdefault(prefix + "level", self.level.clone())

    def positions(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Deformed vertex positions u + Δu [N,3] (all, or of vertex ids [N])."""
        u, du = (self.grid.verts, self.deformation) if ids is None else (self.grid.verts[ids], self.deformation[ids])
        return u + self.deform_limit * torch.tanh(du)

    def level_set(self, field: TauField, pos: torch.Tensor) -> torch.Tensor:
        """s [N] at points pos [N,3], whose zero set is Eq. 9's surface: s = τ − ε, intersected (CSG min) with
        the field's hard bound as the signed distance d scaled to BOUND_SLOPE per grid cell. τ drops to 0 at the
        bound in one step, so along an edge that leaves it linear interpolation puts the vertex at a fixed
        fraction of the edge, wherever the bound crosses it: a round bound meshes as a terraced staircase.
        Outside the bound s is the scaled d alone (τ there is the cut's 0, not θ's), and just inside it d is the
        smaller term, so an edge that leaves θ's solid through the bound crosses at the bound itself."""
        s = field.tau(pos) - self.eps
        d = bound_distance(field, pos)
        if d is None:
            return s
        ramp = d * (BOUND_SLOPE / self.grid.cell_size)
        return torch.where(d > 0, torch.minimum(s, ramp), ramp)

    @torch.no_grad()
    def measure(self, field: TauField, ids: torch.Tensor | None = None, chunk: int = 1 << 18) -> None:
        """Evaluate s (`level_set`) without gradients into `last_sdf`, on the whole grid or at vertex ids [N]."""
        pos = self.positions(ids)
        sdf = torch.cat([self.level_set(field, p) for p in pos.split(chunk)])
        if ids is None:
            self.last_sdf = sdf
        else:
            self.last_sdf[ids] = sdf

    @torch.no_grad()
    def recentre_band(self) -> None:
        """Move the band to the vertices and tets [T,4] of the cells within `band_cells` of the last surface."""
        tets = self.grid.cell_tets(self.grid.surface_cells(self.last_sdf, self.band_cells))
        self.band = torch.unique(tets), tets

    def mesh(self, field: TauField, use_band: bool = False) -> Mesh:
        """Eq. 9: the surface τ = ε of the field on the deformed grid, differentiable w.r.t. θ and Δu.

        τ is first measured without gradients (on the band, or the whole grid in chunks) to find the tets that
        the surface crosses; only their vertices are evaluated again with gradients — exactly the values the
        mesh depends on — so the cost of the backward pass follows the surface, not the grid.
        """
        if use_band and self.band is not None:
            ids, tets = self.band
            self.measure(field, ids)
        else:
            self.measure(field)
            tets = self.grid.cell_tets(self.grid.surface_cells(self.last_sdf))
        with torch.no_grad():
            inside = self.last_sdf[tets] > 0  # [T,4]
            ids, local = torch.unique(tets[inside.any(1) & ~inside.all(1)], return_inverse=True)
        pos = self.positions(ids)
        return marching_tets(pos, self.level_set(field, pos), local.reshape(-1, 4))


# ------------------------------------------------------------------------------------------------ renderer


@register("renderer", "dmtet")
class DMTetRenderer(nn.Module):
    """Eq. 9–10: mesh the field on the deformable tet grid, rasterize it, colour = shaded albedo of θ."""

    @dataclass
    class Config:
        grid_resolution: Literal[32, 64, 128] = 64  # cells per axis of the tet grid
        eps: float = bounded(0.1, 0.0, 1.0)  # ε of Eq. 9: inside where τ > ε
        deform_scale: float = bounded(0.25, 0.0, 0.5)  # bound of |Δu| per axis, as a fraction of a cell
        narrow_band: bool = True  # while training, measure τ only near the last surface (from band_start_step)
        band_cells: int = bounded(2, 1, 16)  # band half-width in cells
        band_start_step: int = bounded(0, 0)  # the whole grid is measured every step before this step
        band_update_every: int = bounded(5, 1)  # steps between re-centring the band on the current surface
        band_full_every: int = bounded(50, 1)  # steps between re-measuring the whole grid (no gradients)
        raster_backend: RasterBackend = "auto"  # nvdiffrast when CUDA has it, else pure torch
        antialias: bool = True  # silhouette antialiasing (the gradients that move the outline)
        near: float = bounded(0.1, 1e-4)
        far: float = bounded(100.0, 1e-3)

    def __init__(
        self, cfg: DMTetRenderer.Config, field: TauField, background: nn.Module, shading: ShadingConfig
    ) -> None:
        super().__init__()
        self.cfg, self.field, self.background, self.shading = cfg, field, background, shading
        self.geometry = DMTetGeometry(cfg.grid_resolution, field.bound, cfg.eps, cfg.deform_scale, cfg.band_cells)
        self.rasterizer = make_rasterizer(cfg.raster_backend)
        self.step = 0

    def update_step(self, step: int, generator: torch.Generator | None = None) -> None:
        """Per-training-step upkeep of the narrow band (no-op before `band_start_step` or with it off)."""
        self.step = step
        cfg, geo = self.cfg, self.geometry
        if not cfg.narrow_band or step < cfg.band_start_step:
            return
        if geo.last_sdf.numel() == 0 or step % cfg.band_full_every == 0:
            geo.measure(self.field)
            geo.recentre_band()
        elif geo.band is None or step % cfg.band_update_every == 0:
            if geo.band is not None:  # the band's τ as θ is now (a render of one object alone measured it so)
                geo.measure(self.field, geo.band[0])
            geo.recentre_band()

    def mesh(self) -> Mesh:
        """The current surface (Eq. 9); the narrow band is used while training once it is on."""
        use_band = self.training and self.cfg.narrow_band and self.step >= self.cfg.band_start_step
        return self.geometry.mesh(self.field, use_band)

    def forward(
        self,
        cams: Cameras,
        height: int,
        width: int,
        mode: ShadingMode = "albedo",
        light: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> RenderOutput:
        """Render B = len(cams) views (Eq. 10); `light` [B,3] is needed by the lambertian and textureless modes."""
        return render_mesh(
            self.mesh(),
            cams,
            height,
            width,
            self.rasterizer,
            self.background,
            self.field.albedo,
            mode,
            light,
            self.shading,
            self.cfg.antialias,
            self.cfg.near,
            self.cfg.far,
        )


def render_mesh(
    mesh: Mesh,
    cams: Cameras,
    height: int,
    width: int,
    rasterizer: Rasterizer,
    background: nn.Module,
    albedo_fn: Callable[[torch.Tensor], torch.Tensor],
    mode: ShadingMode,
    light: torch.Tensor | None,
    shading: ShadingConfig,
    antialias: bool = True,
    near: float = 0.1,
    far: float = 100.0,
    attrs: torch.Tensor | None = None,
) -> RenderOutput:
    """Rasterize `mesh` in B views (Eq. 10): colour = shade(albedo_fn(a)) over the background, where a [P,C] are
    the vertex attributes attrs [V,C] (default: the positions, so albedo_fn sees surface points) at the P covered
    pixels. Antialiasing blends colour and opacity across silhouettes, which moves the outline."""
    B = len(cams)
    _, rays_d = cams.rays(height, width)
    bg = background(rays_d).reshape(B, height, width, 3)
    if mesh.faces.shape[0] == 0:  # nothing inside τ > ε (yet): the background alone
        empty = bg.new_zeros(B, height, width, 1)
        return RenderOutput(rgb=bg, opacity=empty, depth=empty, normal=bg.new_zeros(B, height, width, 3))
    pos_clip = to_clip(mesh.verts, cams.mvp(height, width, near, far))  # [B,V,4]
    raster = rasterizer.rasterize(pos_clip, mesh.faces, height, width)
    mask = raster.mask  # [B,H,W]
    extra = mesh.verts if attrs is None else attrs
    pix = interpolate(torch.cat([mesh.verts, mesh.vertex_normals(), extra], -1), raster, mesh.faces)  # [B,H,W,6+C]
    xyz, normal = pix[..., :3], F.normalize(pix[..., 3:6], dim=-1, eps=1e-12)
    pix_light = None if light is None else light[:, None, None].expand(-1, height, width, -1)[mask]
    color = shade(albedo_fn(pix[..., 6:][mask]), normal[mask], pix_light, mode, shading)  # [P,3]
    rgb = bg.index_put((mask,), color)
    alpha = mask[..., None].to(rgb.dtype)
    if antialias:
        blended = rasterizer.antialias(torch.cat([rgb, alpha], -1), raster, pos_clip, mesh.faces)
        rgb, alpha = blended[..., :3], blended[..., 3:]
    depth = (xyz - cams.position[:, None, None]).norm(dim=-1, keepdim=True) * mask[..., None]
    normal = normal * mask[..., None]
    return RenderOutput(rgb, alpha, depth, normal, mesh_verts=mesh.verts, mesh_faces=mesh.faces)
