"""What a user takes home: the DMTet mesh of θ (Eq. 9) with a texture baked from θ's albedo, and a turntable.

    mesh    = extract_mesh(field, grid)        the surface τ = ε on the (deformed) tet grid, smoothed, decimated
    eps     = silhouette_level(field, opacity) the ε whose surface looks like the volume render (NeRF-only runs)
    offset  = OffsetField(field, surface)      the trained surface moved inward to where the volume render draws
    atlas   = unwrap(mesh)                     xatlas charts, seam vertices duplicated
    texture = bake_texture(...)                θ's albedo at every texel's surface point, dilated across seams
    files   = mesh.glb (texture embedded), mesh.obj + mesh.mtl + mesh.png, turntable.mp4 / .gif / .png

Exported files are +y up with the object's front toward +z (glTF's convention): a world point (x, y, z) of
`real3d.cameras` is written as (y, z, x), a proper rotation. Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from .cameras import Cameras, orbit
from .config import Scheduled, scheduled
from .errors import UserError
from .io import atomic_path, save_image, save_video, to_uint8
from .render.dmtet import DMTetGeometry, Mesh, TauField, render_mesh
from .render.nerf import NeRFRenderer
from .render.raster import TorchRasterizer, interpolate, make_rasterizer, to_clip
from .render.shading import ShadingConfig, SolidBackground
from .surface import sample_surface

if TYPE_CHECKING:
    from .model import SceneModel

Y_UP = [1, 2, 0]  # exported axes taken from the world axes: (x, y, z) → (y, z, x)


@dataclass
class TexturedMesh:
    """A UV-mapped mesh: verts [V,3] (world), faces [F,3], uv [V,2] ∈ [0,1] (v up), texture [S,S,3] ∈ [0,1]."""

    verts: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor
    texture: torch.Tensor


MAX_FACES = 20_000  # default face budget of an export (quadric decimation above it)


@torch.no_grad()
def extract_mesh(
    field: TauField,
    grid: int = 64,
    eps: float = 0.1,
    geometry: DMTetGeometry | None = None,
    max_faces: int = MAX_FACES,
    smooth: int = 0,
) -> Mesh:
    """Eq. 9 on the whole grid: the surface τ = ε of θ, on `geometry`'s deformed grid or on an undeformed one,
    given `smooth` Taubin passes and decimated to at most `max_faces` faces (0: as extracted)."""
    if geometry is None or geometry.grid.res != grid:
        geometry = DMTetGeometry(grid, field.bound, eps, deform_scale=0.0, band_cells=1)
    mesh = geometry.mesh(field)
    if mesh.faces.shape[0] == 0:
        raise UserError(f"the field has no surface (nowhere is τ > ε = {geometry.eps}); nothing to export")
    mesh = taubin_smooth(mesh, smooth)
    return decimate(mesh, max_faces) if max_faces else mesh


SMOOTH_PASSES = 5  # default Taubin passes of an export (docs/results.md, ninth round)


def taubin_smooth(mesh: Mesh, passes: int, lamb: float = 0.5, mu: float = -0.53) -> Mesh:
    """Taubin's λ|μ smoothing (SIGGRAPH 1995): `passes` pairs of a shrinking step v += λ·L(v) and an inflating
    step v += μ·L(v), L(v) the mean of v's edge neighbours minus v. Marching tetrahedra place each vertex on a
    grid edge, so a smooth surface comes out as a staircase whose normals flicker; the pair of steps removes
    that ripple without the shrinking of plain Laplacian smoothing. Vertices without neighbours stay."""
    if passes == 0 or mesh.faces.shape[0] == 0:
        return mesh
    f = mesh.faces
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])  # [3F,2]
    edges = torch.cat([edges, edges.flip(1)]).unique(dim=0)  # [E,2] each undirected edge both ways, once
    verts = mesh.verts.detach().double()  # [V,3]
    degree = torch.bincount(edges[:, 0], minlength=verts.shape[0]).to(verts)[:, None]  # [V,1]
    linked = degree > 0
    for _ in range(passes):
        for weight in (lamb, mu):
            total = torch.zeros_like(verts).index_add_(0, edges[:, 0], verts[edges[:, 1]])
            verts = torch.where(linked, verts + weight * (total / degree.clamp(min=1) - verts), verts)
    return Mesh(verts.to(mesh.verts.dtype), f)


LEVELS = (0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7)  # ε tried for a fit


def mesh_masks(mesh: Mesh, cams: Cameras, size: int) -> torch.Tensor:
    """Silhouettes [B,size,size] (bool) of a mesh in B views, rasterized without antialiasing."""
    pos_clip = to_clip(mesh.verts, cams.mvp(size, size, 0.1, 100.0))  # [B,V,4]
    return make_rasterizer().rasterize(pos_clip, mesh.faces, size, size).mask


@torch.no_grad()
def silhouette_level(
    field: TauField,
    opacity: Callable[[Cameras, int], torch.Tensor],
    grid: int = 64,
    levels: tuple[float, ...] = LEVELS,
    views: int = 8,
    size: int = 64,
) -> float:
    """The level ε whose surface τ = ε best matches the volume render's silhouettes: soft IoU, over `views`
    turntable views (elevation 20°), of each surface's mask against `opacity(cams, size)` [B,size,size], the
    accumulated alpha of Eq. 7. A run that trained only the NeRF has no surface of its own: τ = 0.1 keeps the
    faint haze its renders never show, and a fixed σ cut (threestudio's isosurface_threshold) fits one field
    and not the next; this exports what the NeRF draws."""
    cams = orbit(views, 20.0, 2.5, 45.0)
    alpha = opacity(cams, size).float()  # [B,size,size]
    best, best_iou = levels[0], -1.0
    for eps in levels:
        try:
            mask = mesh_masks(extract_mesh(field, grid, eps, max_faces=0), cams, size).float()
        except UserError:  # no surface at this level (nor above it)
            break
        iou = float(torch.minimum(mask, alpha).sum() / torch.maximum(mask, alpha).sum().clamp(min=1e-8))
        if iou > best_iou:
            best, best_iou = eps, iou
    return best


OFFSETS = (-0.02, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.12, 0.15)  # inward moves tried


class OffsetField:
    """θ seen from its trained surface S = {τ = ε} (a Mesh): `tau` is the signed distance to S (> 0 inside), so
    this field's level d is S moved d inward (d < 0: outward), as smooth as S itself, where θ's own inner levels
    are noisy (docs/results.md, ninth round); `albedo` is θ's albedo at the point of S nearest x, the colour the
    renderers were trained on. Distances are to `samples` points drawn on S (a k-d tree), about 0.005 apart on
    a unit-sized object, and stop at `reach` (a far point's search is the slow one): levels up to it are exact."""

    def __init__(
        self, field: TauField, surface: Mesh, eps: float, samples: int = 200_000, reach: float = 0.25, seed: int = 0
    ) -> None:
        from scipy.spatial import cKDTree

        self.field, self.eps, self.reach = field, eps, reach
        self.points = sample_surface(surface.verts, surface.faces, samples, torch.Generator().manual_seed(seed))
        self.tree = cKDTree(self.points.numpy())
        self._known: list[tuple[torch.Tensor, torch.Tensor]] = []  # (x, tau(x)), least recently used first

    def tau(self, x: torch.Tensor) -> torch.Tensor:
        """Signed distance [N] to S of points x [N,3]. Every level of a silhouette search measures the same
        grid again (in the same chunks), so the last few answers are kept and given back for equal x."""
        for k, (seen, value) in enumerate(self._known):
            if seen.shape == x.shape and torch.equal(seen, x):
                self._known.append(self._known.pop(k))  # the most recently used is kept longest
                return value
        inside = self.field.tau(x).float() > self.eps
        dist, _ = self._nearest(x)
        value = torch.where(inside, dist, -dist)
        self._known = [*self._known, (x.detach().clone(), value)][-4:]
        return value

    @property
    def bound(self) -> float:
        return self.field.bound

    def _nearest(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance [N] from points x [N,3] to S and the index [N] of the nearest sample."""
        dist, index = self.tree.query(x.detach().float().numpy(), distance_upper_bound=self.reach, workers=-1)
        far = torch.from_numpy(index) == len(self.points)  # beyond reach: no neighbour found
        return torch.from_numpy(dist).float().clamp(max=self.reach), torch.from_numpy(index).long().where(~far, 0)

    def albedo(self, x: torch.Tensor) -> torch.Tensor:
        return self.field.albedo(self.points[self._nearest(x)[1]])


def decimate(mesh: Mesh, max_faces: int) -> Mesh:
    """Quadric edge-collapse decimation (fast-simplification) to at most `max_faces` faces.

    Marching tetrahedra cut every crossed cell into one or two small triangles (62k faces for a cube at grid
    64); xatlas charts such a mesh in about 15 s on one core, and 20k faces in under 2 s, with the same mesh
    IoU against the ground truth (docs/results.md)."""
    import fast_simplification

    if mesh.faces.shape[0] <= max_faces:
        return mesh
    verts, faces = fast_simplification.simplify(
        mesh.verts.detach().double().numpy(), mesh.faces.numpy().astype(np.int32), target_count=max_faces
    )
    return Mesh(torch.from_numpy(verts).float(), torch.from_numpy(faces.astype(np.int64)))


def unwrap(mesh: Mesh) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """xatlas UV atlas: verts [V',3] (seam vertices duplicated), faces [F,3], uv [V',2] ∈ [0,1]."""
    import xatlas

    vmapping, faces, uv = xatlas.parametrize(mesh.verts.detach().numpy(), mesh.faces.numpy().astype(np.uint32))
    return (
        mesh.verts.detach()[torch.from_numpy(vmapping.astype(np.int64))],
        torch.from_numpy(faces.astype(np.int64)),
        torch.from_numpy(uv).float(),
    )


def dilate(texture: torch.Tensor, covered: torch.Tensor, passes: int) -> torch.Tensor:
    """Grow texture [S,S,3] from covered texels [S,S] outward by `passes` texels (mean of covered neighbours);
    texels still empty after that take the mean colour. Keeps bilinear lookups at chart seams clean."""
    tex = (texture * covered[..., None]).permute(2, 0, 1)[None]  # [1,3,S,S]
    cov = covered.float()[None, None]
    for _ in range(passes):
        total = F.avg_pool2d(tex, 3, stride=1, padding=1, count_include_pad=False)
        weight = F.avg_pool2d(cov, 3, stride=1, padding=1, count_include_pad=False)
        grow = (cov == 0) & (weight > 0)
        tex = torch.where(grow, total / weight.clamp(min=1e-8), tex)
        cov = torch.where(grow, torch.ones_like(cov), cov)
    mean = (tex * cov).sum((2, 3), keepdim=True) / cov.sum().clamp(min=1)
    return torch.where(cov > 0, tex, mean)[0].permute(1, 2, 0)


@torch.no_grad()
def bake_texture(
    albedo_fn: Callable[[torch.Tensor], torch.Tensor],
    verts: torch.Tensor,
    faces: torch.Tensor,
    uv: torch.Tensor,
    size: int,
    passes: int = 8,
    chunk: int = 1 << 16,
) -> torch.Tensor:
    """Texture [S,S,3]: albedo_fn at the surface point of every texel, found by rasterizing the mesh in UV space.

    Row 0 of the texture is v = 1 (the image top), as OBJ/glTF readers (and trimesh) expect of v-up UVs.
    """
    uv_clip = torch.cat([uv * 2 - 1, torch.zeros_like(uv[:, :1]), torch.ones_like(uv[:, :1])], -1)[None]  # [1,V,4]
    raster = TorchRasterizer().rasterize(uv_clip, faces, size, size)
    covered = raster.mask[0]  # [S,S]
    points = interpolate(verts, raster, faces)[0][covered]  # [P,3]
    texture = torch.zeros(size, size, 3)
    if points.shape[0]:
        texture[covered] = torch.cat([albedo_fn(p).float() for p in points.split(chunk)]).clamp(0, 1)
    return dilate(texture, covered, passes)


@torch.no_grad()
def nerf_level(
    model: SceneModel,
    grid: int = 64,
    levels: tuple[float, ...] = LEVELS,
    views: int = 8,
    size: int = 64,
    field: TauField | None = None,
) -> float:
    """silhouette_level of `field` (default θ) against the model's NeRF renderer, drawn in eval mode (no sample
    jitter: the same level from a training run's end and from its checkpoint); a one-line error where the model
    has no NeRF."""
    renderer = model.renderer
    if not isinstance(renderer, NeRFRenderer):
        raise UserError(
            "the silhouette level matches the NeRF's renders, and this model has no NeRF renderer; "
            "export the trained level instead"
        )
    was_training = renderer.training
    renderer.eval()
    try:
        return silhouette_level(
            model.field if field is None else field,
            lambda cams, size: renderer(cams, size, size, "albedo").opacity[..., 0],
            grid,
            levels,
            views,
            size,
        )
    finally:
        renderer.train(was_training)


def surface_level(
    model: SceneModel, level: str, p_dmtet: Scheduled, steps: int, grid: int = 64, smooth: int = SMOOTH_PASSES
) -> tuple[TauField, float]:
    """The field and ε of the surface to export from a scene model: "trained", θ at the explicit renderer's own
    ε as trained (system.fit_level_every moves it); "silhouette", θ at nerf_level; "offset", the trained surface
    (given `smooth` Taubin passes) as an OffsetField, moved by the d of OFFSETS whose mesh matches the NeRF's
    renders; "auto", trained where the explicit renderer drew at the last step (p_dmtet at `steps` > 0), else
    silhouette."""
    if level == "auto":
        level = "trained" if scheduled(p_dmtet, steps) > 0 else "silhouette"
    if level == "silhouette":
        return model.field, nerf_level(model, grid)
    geometry = model.explicit.geometry
    if level == "trained":
        return model.field, geometry.eps
    eps, geometry = geometry.eps, geometry if geometry.grid.res == grid else None
    offset = OffsetField(model.field, extract_mesh(model.field, grid, eps, geometry, max_faces=0, smooth=smooth), eps)
    return offset, nerf_level(model, grid, OFFSETS, field=offset)


def texture_mesh(
    field: TauField,
    grid: int = 64,
    texture_size: int = 512,
    eps: float = 0.1,
    geometry: DMTetGeometry | None = None,
    max_faces: int = MAX_FACES,
    smooth: int = SMOOTH_PASSES,
) -> TexturedMesh:
    """Mesh of θ at `grid` (Eq. 9, `smooth` Taubin passes, at most `max_faces` faces), unwrapped, with its
    albedo baked into a texture_size² texture."""
    verts, faces, uv = unwrap(extract_mesh(field, grid, eps, geometry, max_faces, smooth))
    return TexturedMesh(verts, faces, uv, bake_texture(field.albedo, verts, faces, uv, texture_size))


def _trimesh(mesh: TexturedMesh):  # -> trimesh.Trimesh
    import trimesh
    from PIL import Image

    material = trimesh.visual.material.PBRMaterial(  # white factors: the texture alone gives the colour
        baseColorTexture=Image.fromarray(to_uint8(mesh.texture)),
        baseColorFactor=[255, 255, 255, 255],
        metallicFactor=0.0,
        roughnessFactor=1.0,
    )
    visual = trimesh.visual.TextureVisuals(uv=mesh.uv.numpy(), material=material)
    return trimesh.Trimesh(mesh.verts[:, Y_UP].numpy(), mesh.faces.numpy(), visual=visual, process=False)


def _save_glb(path: Path, tm: Any) -> None:  # tm: trimesh.Trimesh
    with atomic_path(path) as tmp:
        tmp.write_bytes(tm.export(file_type="glb"))


def write_glb(path: Path, mesh: TexturedMesh) -> None:
    """Binary glTF with the texture embedded."""
    _save_glb(path, _trimesh(mesh))


@torch.no_grad()
def write_coloured_glb(path: Path, mesh: Mesh, colour: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Binary glTF with one colour per vertex (`colour`: points [V,3] → RGB [V,3] ∈ [0,1]) and no texture: the
    model of a metrics-only run (no UV atlas to bake), small enough for a report to embed many."""
    import trimesh

    rgb = to_uint8(colour(mesh.verts))
    rgba = np.concatenate([rgb, np.full((rgb.shape[0], 1), 255, np.uint8)], 1)
    _save_glb(path, trimesh.Trimesh(mesh.verts[:, Y_UP].numpy(), mesh.faces.numpy(), vertex_colors=rgba, process=False))


def read_glb(path: Path) -> Mesh:
    """The mesh of a GLB written here, back in world axes: verts [V,3] float32, faces [F,3]."""
    import trimesh

    try:
        tm = trimesh.load(path, force="mesh")
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path} as a GLB ({type(e).__name__}); export it again") from None
    if not isinstance(tm, trimesh.Trimesh):
        raise UserError(f"{path} holds no triangle mesh; export it again")
    verts = torch.tensor(np.asarray(tm.vertices), dtype=torch.float32)
    world = torch.empty_like(verts)
    world[:, Y_UP] = verts  # exported column j holds world axis Y_UP[j]
    return Mesh(world, torch.tensor(np.asarray(tm.faces)))


def write_obj(path: Path, mesh: TexturedMesh) -> None:
    """OBJ beside its MTL (same stem) and the texture PNG that the MTL names."""
    from trimesh.exchange.obj import export_obj

    tm = _trimesh(mesh)
    tm.visual.material.name = path.stem  # the texture is written as STEM.png beside STEM.obj / STEM.mtl
    text, files = export_obj(tm, include_normals=False, return_texture=True, mtl_name=path.with_suffix(".mtl").name)
    for name, data in files.items():
        with atomic_path(path.with_name(name)) as tmp:
            tmp.write_bytes(data)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@torch.no_grad()
def orbit_frames(
    mesh: Mesh,
    colour: Callable[[torch.Tensor], torch.Tensor],
    attrs: torch.Tensor | None = None,
    frames: int = 36,
    size: int = 256,
    elevation: float = 15.0,
    radius: float = 2.5,
    supersample: int = 1,
) -> torch.Tensor:
    """Frames [N,size,size,3] of a mesh on white around a turntable, lit from the camera, rasterized
    (render/raster.py); `colour` maps interpolated `attrs` [V,A] (default: positions) at pixels [P,A] → [P,3].
    supersample k rasterizes k·size² and averages each k×k block (anti-aliased edges and shading, as the toy
    world's GT renders are made)."""
    cams = orbit(frames, elevation, radius, 45.0)
    rasterizer, background = make_rasterizer(), SolidBackground(SolidBackground.Config())
    shading, out = ShadingConfig(ambient=0.45), []
    for k in range(frames):
        cam = cams.index(k)
        out.append(
            render_mesh(
                mesh,
                cam,
                size * supersample,
                size * supersample,
                rasterizer,
                background,
                colour,
                "lambertian",
                F.normalize(cam.position, dim=-1),
                shading,
                attrs=attrs,
            ).rgb[0]
        )
    frames_rgb = torch.stack(out)  # [N,k·size,k·size,3]
    if supersample == 1:
        return frames_rgb
    return F.avg_pool2d(frames_rgb.permute(0, 3, 1, 2), supersample).permute(0, 2, 3, 1)


def turntable(
    mesh: TexturedMesh,
    frames: int = 36,
    size: int = 256,
    elevation: float = 15.0,
    radius: float = 2.5,
    supersample: int = 1,
) -> torch.Tensor:
    """Frames [N,size,size,3] of the textured mesh (see orbit_frames), its texture sampled at the UVs."""
    tex = mesh.texture.permute(2, 0, 1)[None]  # [1,3,S,S]

    def sample_texture(uv: torch.Tensor) -> torch.Tensor:  # uv [P,2] → colour [P,3]
        grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], -1)[None, None]  # texture row 0 is v = 1
        return F.grid_sample(tex, grid, mode="bilinear", align_corners=False)[0, :, 0].T

    return orbit_frames(
        Mesh(mesh.verts, mesh.faces), sample_texture, mesh.uv, frames, size, elevation, radius, supersample
    )


def write_exports(
    mesh: TexturedMesh, out_dir: Path, stem: str = "mesh", frames: int = 36, frame_size: int = 256
) -> dict[str, Path]:
    """Write STEM.glb, STEM.obj/.mtl + texture, turntable.mp4/.gif and turntable.png (frame 0); the paths."""
    paths = {
        "glb": out_dir / f"{stem}.glb",
        "obj": out_dir / f"{stem}.obj",
        "mp4": out_dir / "turntable.mp4",
        "gif": out_dir / "turntable.gif",
        "frame": out_dir / "turntable.png",
    }
    write_glb(paths["glb"], mesh)
    write_obj(paths["obj"], mesh)
    video = turntable(mesh, frames, frame_size)
    save_video(paths["mp4"], list(video))
    save_video(paths["gif"], list(video))
    save_image(paths["frame"], video[0])
    return paths


def export(
    field: TauField,
    out_dir: Path,
    grid: int = 64,
    texture_size: int = 512,
    eps: float = 0.1,
    geometry: DMTetGeometry | None = None,
    frames: int = 36,
    frame_size: int = 256,
    max_faces: int = MAX_FACES,
    smooth: int = SMOOTH_PASSES,
) -> dict[str, Path]:
    """Mesh θ, bake its texture and write everything (see write_exports); the paths."""
    return write_exports(
        texture_mesh(field, grid, texture_size, eps, geometry, max_faces, smooth), out_dir, "mesh", frames, frame_size
    )
