"""Differentiable rasterizer of triangle meshes: the image-forming step of the explicit renderer (Eq. 10).

Three operations with nvdiffrast's shape of interface, in pure torch for the CPU (and nvdiffrast itself when
CUDA and the package are both present):

* `rasterize(pos_clip [B,V,4], faces [F,3], H, W)` → `Raster`: per pixel the front face (z-buffer) and its
  perspective-correct barycentrics, differentiable w.r.t. the vertex positions;
* `interpolate(attr [V,C], raster, faces)` → [B,H,W,C] attributes at the pixels (world position, normal, …);
* `antialias(color [B,H,W,C], raster, pos_clip, faces)` → [B,H,W,C]: analytic blending across silhouette
  edges (as nvdiffrast's `antialias`), the only path by which the *coverage* of a pixel, and so the outline
  of the shape, receives gradients.

Pixels follow `real3d.cameras`: row 0 is the top and pixel centres sit at integer (col, row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import ConfigError

RasterBackend = Literal["auto", "torch", "nvdiffrast"]
_DEPTH_LEVELS = 2**30  # z-buffer depth quantisation (key = depth level · 2^32 + face id)


@dataclass
class Raster:
    """Which face covers each pixel and where on it."""

    face_id: torch.Tensor  # [B,H,W] long, index into faces, −1 where no face covers the pixel centre
    bary: torch.Tensor  # [B,H,W,3] perspective-correct barycentrics of the face's 3 vertices (0 where empty)
    native: object = None  # backend-specific state (nvdiffrast's rast tensor), used by its antialias

    @property
    def mask(self) -> torch.Tensor:
        """[B,H,W] bool: a face covers the pixel centre."""
        return self.face_id >= 0


def to_clip(verts: torch.Tensor, mvp: torch.Tensor) -> torch.Tensor:
    """World vertices [V,3] → homogeneous clip positions [B,V,4] for MVP matrices [B,4,4]."""
    homo = torch.cat([verts, torch.ones_like(verts[:, :1])], -1)  # [V,4]
    return torch.einsum("vj,bij->bvi", homo, mvp)


def to_screen(pos_clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clip positions [B,V,4] → (col, row, z_ndc) [B,V,3], pixel centres at integers, row 0 at the top."""
    w = pos_clip[..., 3:4]
    w = torch.where(w.abs() < 1e-8, torch.full_like(w, 1e-8), w)
    ndc = pos_clip[..., :3] / w
    return torch.stack([(ndc[..., 0] + 1) * (width / 2) - 0.5, (1 - ndc[..., 1]) * (height / 2) - 0.5, ndc[..., 2]], -1)


def interpolate(attr: torch.Tensor, raster: Raster, faces: torch.Tensor) -> torch.Tensor:
    """Barycentric interpolation of vertex attributes attr [V,C] or [B,V,C] → [B,H,W,C] (0 where empty)."""
    B, H, W = raster.face_id.shape
    if attr.dim() == 2:
        attr = attr[None].expand(B, -1, -1)
    fid = raster.face_id.clamp(min=0).reshape(B, -1)  # [B,HW]
    corner = faces[fid]  # [B,HW,3] vertex ids
    vals = torch.gather(attr, 1, corner.reshape(B, -1, 1).expand(-1, -1, attr.shape[-1]))  # [B,3HW,C]
    vals = vals.reshape(B, H * W, 3, -1)
    out = (raster.bary.reshape(B, H * W, 3, 1) * vals).sum(2)
    return out.reshape(B, H, W, -1) * raster.mask[..., None]


# ------------------------------------------------------------------------------------------- torch backend


def _edge_coefficients(scr: torch.Tensor) -> torch.Tensor:
    """Screen-space barycentrics of triangles scr [N,3,2+] as affine maps [N,3,3]: λ_i = a·col + b·row + c."""
    x, y = scr[..., 0], scr[..., 1]  # [N,3]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    j, k = [1, 2, 0], [2, 0, 1]  # λ_i is the area of the triangle (p, v_j, v_k) over the total
    a = y[:, j] - y[:, k]
    b = x[:, k] - x[:, j]
    c = x[:, j] * y[:, k] - x[:, k] * y[:, j]
    safe = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
    return torch.stack([a, b, c], -1) / safe[:, None, None]


@torch.no_grad()
def _zbuffer(scr: torch.Tensor, valid: torch.Tensor, height: int, width: int, chunk: int) -> torch.Tensor:
    """Front face per pixel [B·H·W] (−1: none) of screen triangles scr [B,F,3,3] (col,row,z), valid [B,F].

    Each face's candidate pixels are the pixel centres in its bounding box (expanded in chunks of at most
    `chunk` candidates), kept where all three barycentrics are ≥ 0; the z-buffer is one `scatter_reduce(amin)`
    over keys that pack the quantised depth above the face index (ties go to the lower index).
    """
    B, F = valid.shape
    flat = scr.reshape(B * F, 3, 3)
    lo, hi = flat[..., :2].amin(1), flat[..., :2].amax(1)  # [BF,2]
    x0, y0 = lo[:, 0].ceil().clamp(min=0), lo[:, 1].ceil().clamp(min=0)
    x1, y1 = hi[:, 0].floor().clamp(max=width - 1), hi[:, 1].floor().clamp(max=height - 1)
    nw, nh = (x1 - x0 + 1).clamp(min=0).long(), (y1 - y0 + 1).clamp(min=0).long()
    count = nw * nh * valid.reshape(-1)  # [BF] candidate pixels per face
    faces = count.nonzero()[:, 0]
    coef = _edge_coefficients(flat[faces])
    z = flat[faces, :, 2]  # [N,3]
    count, nw, x0, y0 = count[faces], nw[faces], x0[faces].long(), y0[faces].long()
    batch = faces // F
    keys = torch.full((B * height * width,), torch.iinfo(torch.int64).max, dtype=torch.int64)
    ends = count.cumsum(0)
    start_face = 0
    while start_face < len(faces):  # chunks of whole faces, about `chunk` candidates each
        base = int(ends[start_face - 1]) if start_face else 0
        stop = max(int(torch.searchsorted(ends, base + chunk, right=True)), start_face + 1)
        sel = torch.arange(start_face, stop)
        idx = sel.repeat_interleave(count[sel])  # [M] face (position in `faces`) of each candidate
        off = torch.arange(idx.shape[0]) - (ends[idx] - count[idx] - base)
        col = x0[idx] + off % nw[idx]
        row = y0[idx] + off // nw[idx]
        pq = torch.stack([col.float(), row.float(), torch.ones_like(col, dtype=torch.float32)], -1)  # [M,3]
        lam = (coef[idx] * pq[:, None, :]).sum(-1)  # [M,3]
        depth = (lam * z[idx]).sum(-1)
        inside = (lam >= -1e-6).all(-1) & (depth >= -1) & (depth <= 1)
        level = ((depth[inside] + 1) * (_DEPTH_LEVELS / 2)).long().clamp(0, _DEPTH_LEVELS)
        key = level * 2**32 + (faces[idx[inside]] % F)
        pix = (batch[idx[inside]] * height + row[inside]) * width + col[inside]
        keys.scatter_reduce_(0, pix, key, reduce="amin")
        start_face = stop
    return torch.where(keys == torch.iinfo(torch.int64).max, -1, keys % 2**32)


def _perspective_bary(
    pos_clip: torch.Tensor, faces: torch.Tensor, face_id: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Differentiable perspective-correct barycentrics [B,H,W,3] at the pixel centres of their front faces."""
    B = pos_clip.shape[0]
    fid = face_id.reshape(B, -1)
    hit = (fid >= 0).nonzero()  # [P,2] (batch, pixel)
    corner = faces[fid[hit[:, 0], hit[:, 1]]]  # [P,3]
    clip = pos_clip[hit[:, 0, None], corner]  # [P,3,4]
    coef = _edge_coefficients(to_screen(clip, height, width))
    pix = hit[:, 1]
    pq = torch.stack([(pix % width).float(), (pix // width).float(), torch.ones_like(pix, dtype=torch.float32)], -1)
    lam = (coef * pq[:, None, :]).sum(-1)  # screen-space barycentrics [P,3]
    persp = lam / clip[..., 3]
    total = persp.sum(-1, keepdim=True)  # [P,1]; 0 on a triangle that is degenerate on screen
    ok = torch.isfinite(persp).all(-1, keepdim=True) & (total.abs() > 1e-20)
    persp = torch.where(ok, persp / torch.where(ok, total, torch.ones_like(total)), torch.full_like(persp, 1 / 3))
    bary = torch.zeros(B, height * width, 3, dtype=persp.dtype)
    bary = bary.index_put((hit[:, 0], hit[:, 1]), persp)
    return bary.reshape(B, height, width, 3)


def _silhouette_edges(scr: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Silhouette edges [S,3] as (view, vertex, vertex) of screen positions scr [B,V,3] (no gradients).

    An edge is a silhouette in a view when it bounds the mesh (one face) or its faces face opposite ways there.
    """
    V = scr.shape[1]
    tri = scr[:, faces, :2]  # [B,F,3,2]
    e1, e2 = tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]
    facing = (e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]).sign()  # [B,F]
    ends = torch.stack([faces, faces.roll(-1, 1)], -1).reshape(-1, 2).sort(-1).values  # [3F,2]
    keys, edge_id = torch.unique(ends[:, 0] * V + ends[:, 1], return_inverse=True)  # [E], [3F]
    count = torch.bincount(edge_id, minlength=keys.shape[0]).float()
    total = torch.zeros(scr.shape[0], keys.shape[0]).index_add_(1, edge_id, facing.repeat_interleave(3, 1))
    view, edge = ((count == 1) | (total.abs() < count)).nonzero().unbind(1)
    return torch.stack([view, keys[edge] // V, keys[edge] % V], 1)


def _antialias_axis(
    color: torch.Tensor,
    face_id: torch.Tensor,
    depth: torch.Tensor,
    scr: torch.Tensor,
    clip_w: torch.Tensor,
    faces: torch.Tensor,
    edges: torch.Tensor,
    axis: int,
    occlusion_tolerance: float,
) -> torch.Tensor:
    """Colour change [B,H,W,C] where silhouette edges [S,3] pass between neighbours along `axis` (2: cols, 1: rows).

    Each edge that runs more across the pixel-centre lines than along them (the others are handled by the
    other axis, so that the coverage gradient is counted once) is cut with those lines; where it passes between
    the centres of two pixels, at distance d ∈ [0,1] from the centre of the foreground one (the covered /
    nearer one, whose face shares a vertex with the edge or lies no deeper than the edge within
    `occlusion_tolerance`), the pair is blended as nvdiffrast does: d > ½ covers the background pixel by
    d − ½, d < ½ uncovers the foreground pixel by ½ − d. d is differentiable in the edge's screen positions:
    these are the silhouette gradients.
    """
    B, H, W, C = color.shape
    along, across = (0, 1) if axis == 2 else (1, 0)  # screen coordinate along the pairs / of the lines
    n_lines, n_along = (H, W) if axis == 2 else (W, H)
    view, v0, v1 = edges.unbind(1)
    with torch.no_grad():
        a, b = scr[view, v0, across], scr[view, v1, across]
        steep = (b - a).abs() - (scr[view, v1, along] - scr[view, v0, along]).abs()  # > 0: mostly across the lines
        own = steep >= 0 if axis == 2 else steep < 0  # each edge is handled along one axis only
        lo, hi = torch.minimum(a, b).ceil().clamp(min=0), torch.maximum(a, b).floor().clamp(max=n_lines - 1)
        count = (hi - lo + 1).clamp(min=0).long() * own
        idx = torch.arange(edges.shape[0]).repeat_interleave(count)  # [N] edge of each (edge, line) cut
        line = lo.long()[idx] + torch.arange(idx.shape[0]) - (count.cumsum(0) - count)[idx]
    view, v0, v1 = view[idx], v0[idx], v1[idx]
    p0, p1 = scr[view, v0, :2], scr[view, v1, :2]  # [N,2] differentiable
    span = p1[:, across] - p0[:, across]
    span = torch.where(span.abs() < 1e-9, torch.full_like(span, 1e-9), span)  # no 0/0 in the backward
    t = (line - p0[:, across]) / span
    pos = p0[:, along] + t * (p1[:, along] - p0[:, along])  # along-coordinate of the cut
    with torch.no_grad():
        first = pos.floor().long()
        inside = (t >= 0) & (t <= 1) & (first >= 0) & (first < n_along - 1)
        first_c = first.clamp(0, n_along - 2)
        pix_a = torch.stack([view, line, first_c], 1) if axis == 2 else torch.stack([view, first_c, line], 1)
        pix_b = pix_a + torch.tensor([0, 0, 1] if axis == 2 else [0, 1, 0])
        da, db = depth[pix_a.unbind(1)], depth[pix_b.unbind(1)]
        a_front = da <= db
        fg_depth = torch.minimum(da, db)
        fg_face = torch.where(a_front, face_id[pix_a.unbind(1)], face_id[pix_b.unbind(1)]).clamp(min=0)
        corners = faces[fg_face]  # [N,3]
        shares = ((corners == v0[:, None]) | (corners == v1[:, None])).any(1)
        edge_depth = 1 / ((1 - t) / clip_w[view, v0] + t / clip_w[view, v1])
        visible = shares | (edge_depth <= fg_depth * (1 + occlusion_tolerance))
        keep = (inside & torch.isfinite(fg_depth) & visible).nonzero()[:, 0]
        # a zig-zag silhouette can cut one pixel pair several times: keep the cut farthest from the foreground
        far = torch.where(a_front, pos - first, first + 1 - pos)[keep]
        pair = (pix_a[keep, 0] * H + pix_a[keep, 1]) * W + pix_a[keep, 2]
        order = torch.argsort(-far)
        order = order[torch.argsort(pair[order], stable=True)]  # by pair, then farthest first
        _, counts = torch.unique_consecutive(pair[order], return_counts=True)
        keep = keep[order[counts.cumsum(0) - counts]]
    a_front = a_front[keep]
    fg = torch.where(a_front[:, None], pix_a[keep], pix_b[keep])
    bg = torch.where(a_front[:, None], pix_b[keep], pix_a[keep])
    dist = torch.where(a_front, pos[keep] - first[keep], first[keep] + 1 - pos[keep])
    col_fg, col_bg = color[fg.unbind(1)], color[bg.unbind(1)]
    w_bg = (dist - 0.5).clamp(min=0)[:, None]
    w_fg = (0.5 - dist).clamp(min=0)[:, None]

    def flat(p: torch.Tensor) -> torch.Tensor:
        return (p[:, 0] * H + p[:, 1]) * W + p[:, 2]

    delta = torch.zeros(B * H * W, C, dtype=color.dtype)
    delta = delta.index_add(0, flat(bg), w_bg * (col_fg - col_bg))
    delta = delta.index_add(0, flat(fg), w_fg * (col_bg - col_fg))
    return delta.reshape(B, H, W, C)


class TorchRasterizer:
    """The pure-torch backend (CPU or any device torch runs on)."""

    def __init__(self, chunk: int = 1 << 21, occlusion_tolerance: float = 0.05) -> None:
        self.chunk = chunk  # candidate pixels per z-buffer pass
        self.occlusion_tolerance = occlusion_tolerance  # relative depth under which a silhouette counts as visible

    def rasterize(self, pos_clip: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> Raster:
        """Front faces and barycentrics of the triangles faces [F,3] over vertices pos_clip [B,V,4]."""
        B = pos_clip.shape[0]
        if faces.shape[0] == 0:
            return Raster(torch.full((B, height, width), -1, dtype=torch.long), pos_clip.new_zeros(B, height, width, 3))
        with torch.no_grad():
            scr = to_screen(pos_clip, height, width)[:, faces]  # [B,F,3,3]
            valid = (pos_clip[:, faces, 3] > 1e-6).all(-1)  # [B,F] in front of the camera
            face_id = _zbuffer(scr, valid, height, width, self.chunk).reshape(B, height, width)
        return Raster(face_id, _perspective_bary(pos_clip, faces, face_id, height, width))

    def antialias(
        self, color: torch.Tensor, raster: Raster, pos_clip: torch.Tensor, faces: torch.Tensor
    ) -> torch.Tensor:
        """Blend colour [B,H,W,C] across silhouette edges; gradients reach the edge vertices in pos_clip."""
        if faces.shape[0] == 0:
            return color
        H, W = color.shape[1:3]
        scr = to_screen(pos_clip, H, W)  # [B,V,3]
        clip_w = pos_clip[..., 3].detach()  # [B,V] view depth
        with torch.no_grad():
            edges = _silhouette_edges(scr, faces)
            depth = interpolate(clip_w[..., None], raster, faces)[..., 0]
            depth = torch.where(raster.mask, depth, torch.full_like(depth, float("inf")))  # [B,H,W]
        return color + sum(
            _antialias_axis(color, raster.face_id, depth, scr, clip_w, faces, edges, axis, self.occlusion_tolerance)
            for axis in (1, 2)
        )


class NvdiffrastRasterizer:
    """nvdiffrast on CUDA, with the same interface (clip y is mirrored so that row 0 is the top)."""

    def __init__(self) -> None:
        import nvdiffrast.torch as dr

        self.dr = dr
        self.ctx = dr.RasterizeCudaContext()

    @staticmethod
    def _flip(pos_clip: torch.Tensor) -> torch.Tensor:
        return pos_clip * torch.tensor([1.0, -1.0, 1.0, 1.0], device=pos_clip.device)

    def rasterize(self, pos_clip: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> Raster:
        rast, _ = self.dr.rasterize(
            self.ctx, self._flip(pos_clip).contiguous(), faces.int().contiguous(), (height, width)
        )
        u, v = rast[..., 0], rast[..., 1]
        return Raster(rast[..., 3].long() - 1, torch.stack([u, v, 1 - u - v], -1) * (rast[..., 3:4] > 0), rast)

    def antialias(
        self, color: torch.Tensor, raster: Raster, pos_clip: torch.Tensor, faces: torch.Tensor
    ) -> torch.Tensor:
        return self.dr.antialias(
            color.contiguous(), raster.native, self._flip(pos_clip).contiguous(), faces.int().contiguous()
        )


def nvdiffrast_available() -> bool:
    """CUDA and the nvdiffrast package are both present."""
    if not torch.cuda.is_available():
        return False
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError:
        return False
    return True


class AutoRasterizer:
    """nvdiffrast for CUDA tensors when `nvdiffrast_available()`, the torch backend for everything else."""

    def __init__(self) -> None:
        self.torch = TorchRasterizer()
        self.nvdiffrast = NvdiffrastRasterizer() if nvdiffrast_available() else None

    def _pick(self, pos_clip: torch.Tensor) -> TorchRasterizer | NvdiffrastRasterizer:
        return self.nvdiffrast if self.nvdiffrast is not None and pos_clip.is_cuda else self.torch

    def rasterize(self, pos_clip: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> Raster:
        return self._pick(pos_clip).rasterize(pos_clip, faces, height, width)

    def antialias(
        self, color: torch.Tensor, raster: Raster, pos_clip: torch.Tensor, faces: torch.Tensor
    ) -> torch.Tensor:
        return self._pick(pos_clip).antialias(color, raster, pos_clip, faces)


Rasterizer = TorchRasterizer | NvdiffrastRasterizer | AutoRasterizer


def make_rasterizer(backend: RasterBackend = "auto") -> Rasterizer:
    """The rasterizer backend by name ("auto": nvdiffrast for CUDA tensors when it is installed, else torch)."""
    if backend == "nvdiffrast" and not nvdiffrast_available():
        raise ConfigError("raster_backend nvdiffrast needs CUDA and the nvdiffrast package; use auto or torch")
    return {"auto": AutoRasterizer, "torch": TorchRasterizer, "nvdiffrast": NvdiffrastRasterizer}[backend]()
