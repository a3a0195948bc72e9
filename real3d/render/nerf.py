"""The implicit renderer g^ξ_θ (Eq. 5–8): stratified samples along rays, alpha compositing.

Cost follows the object, not the box: an occupancy grid (EMA of σ over cells, dilated by one cell) marks
where the field can be non-empty, and only samples in occupied cells are sent through the field (packed);
the compositing runs on the dense [rays, samples] grid with σ = 0 elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..cameras import Cameras
from ..config import bounded
from ..field import TriplaneField
from ..registry import register
from .base import RenderOutput
from .shading import ShadingConfig, ShadingMode, shade


def ray_box(rays_o: torch.Tensor, rays_d: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances [R] of rays [R,3] through the cube [−bound, bound]³ (t_far ≤ t_near: miss)."""
    inv = 1.0 / torch.where(rays_d.abs() < 1e-9, torch.full_like(rays_d, 1e-9), rays_d)
    t_a, t_b = (-bound - rays_o) * inv, (bound - rays_o) * inv
    t_near = torch.minimum(t_a, t_b).amax(-1).clamp(min=0.0)
    t_far = torch.maximum(t_a, t_b).amin(-1)
    return t_near, t_far


class OccupancyGrid(nn.Module):
    """A res³ grid over the scene cube: cell occupied when its EMA density exceeds `threshold` (dilated)."""

    density_ema: torch.Tensor  # [r,r,r] buffers
    occupied: torch.Tensor

    def __init__(self, res: int, bound: float, threshold: float, decay: float) -> None:
        super().__init__()
        self.res, self.bound, self.threshold, self.decay = res, bound, threshold, decay
        self.register_buffer("density_ema", torch.full((res, res, res), float("inf")))
        self.register_buffer("occupied", torch.ones(res, res, res, dtype=torch.bool))

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[torch.Tensor], torch.Tensor],
        generator: torch.Generator | None = None,
        chunk: int = 65536,
    ) -> None:
        """Re-measure σ at one random point per cell and refresh the occupied mask."""
        r = self.res
        idx = torch.stack(torch.meshgrid(*[torch.arange(r)] * 3, indexing="ij"), -1).reshape(-1, 3)
        pts = ((idx + torch.rand(idx.shape, generator=generator)) / r * 2 - 1) * self.bound  # [r³,3]
        sigma = torch.cat([density_fn(p) for p in pts.split(chunk)]).reshape(r, r, r)
        ema = torch.where(torch.isinf(self.density_ema), sigma, torch.maximum(self.density_ema * self.decay, sigma))
        self.density_ema.copy_(ema)
        occ = (ema > self.threshold).float()[None, None]
        self.occupied.copy_(F.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0)

    def lookup(self, pts: torch.Tensor) -> torch.Tensor:
        """Occupied flags [...] of points [...,3] (False outside the cube)."""
        cell = ((pts / self.bound + 1) / 2 * self.res).floor().long()
        inside = ((cell >= 0) & (cell < self.res)).all(-1)
        cell = cell.clamp(0, self.res - 1)
        flat = (cell[..., 0] * self.res + cell[..., 1]) * self.res + cell[..., 2]
        return inside & self.occupied.reshape(-1)[flat]

    def fraction(self) -> float:
        return float(self.occupied.float().mean())


@register("renderer", "nerf")
class NeRFRenderer(nn.Module):
    """Volume rendering of the field (Eq. 6–8) with empty-space skipping."""

    @dataclass
    class Config:
        num_samples: int = bounded(64, 2, 1024)  # stratified samples per ray inside the scene cube
        jitter: bool = True  # random offset inside each stratum while training
        grid_resolution: int = bounded(64, 8, 256)  # occupancy grid cells per axis
        grid_threshold: float = bounded(0.1, 0.0)  # density under which a cell counts as empty
        grid_decay: float = bounded(0.95, 0.0, 1.0)  # EMA decay of the cell densities per update
        grid_update_every: int = bounded(16, 1)  # steps between occupancy updates while training
        normal_weight_min: float = bounded(1e-3, 0.0, 1.0)  # normals only at samples of larger weight w_i (0: all)

    def __init__(
        self, cfg: NeRFRenderer.Config, field: TriplaneField, background: nn.Module, shading: ShadingConfig
    ) -> None:
        super().__init__()
        self.cfg, self.field, self.background, self.shading = cfg, field, background, shading
        self.grid = OccupancyGrid(cfg.grid_resolution, field.bound, cfg.grid_threshold, cfg.grid_decay)

    def update_step(self, step: int, generator: torch.Generator | None = None) -> None:
        """Per-training-step upkeep: refresh the occupancy grid every `grid_update_every` steps."""
        if step % self.cfg.grid_update_every == 0:
            self.grid.update(self.field.density, generator)

    def forward(
        self,
        cams: Cameras,
        height: int,
        width: int,
        mode: ShadingMode = "albedo",
        light: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> RenderOutput:
        """Render B = len(cams) views; `light` [B,3] is needed by the lambertian and textureless modes."""
        B, S = len(cams), self.cfg.num_samples
        rays_o, rays_d = (r.reshape(-1, 3) for r in cams.rays(height, width))  # [R,3], R = B·H·W
        t_near, t_far = ray_box(rays_o, rays_d, self.field.bound)
        hit = t_far > t_near
        offset = (
            torch.rand(rays_o.shape[0], S, generator=generator)
            if self.training and self.cfg.jitter
            else torch.full((rays_o.shape[0], S), 0.5)
        )
        span = (t_far - t_near).clamp(min=0.0)[:, None]  # [R,1]
        t = t_near[:, None] + span * (torch.arange(S) + offset) / S  # [R,S] stratified distances
        delta = torch.cat([t[:, 1:], t_far[:, None].expand(-1, 1)], 1) - t  # [R,S] ‖μ_i − μ_{i+1}‖ (Eq. 8)
        pts = rays_o[:, None] + t[..., None] * rays_d[:, None]  # [R,S,3]
        active = hit[:, None] & self.grid.lookup(pts)  # [R,S] samples worth evaluating
        ray_id = active.nonzero()[:, 0]  # [M]

        x = pts[active]  # [M,3]
        sigma_m, albedo_m = self.field(x)  # Eq. 5
        sigma = torch.zeros_like(t).masked_scatter(active, sigma_m)
        alpha = 1 - torch.exp(-sigma * delta)  # Eq. 8
        trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-10], 1), 1)
        weights = alpha * trans  # Eq. 7
        w_m = weights[active]  # [M]

        normals_m = None if mode == "albedo" else self.normals(x, w_m.detach())
        if light is not None:
            light = light.repeat_interleave(height * width, 0)[ray_id]  # [M,3]
        color_m = shade(albedo_m, normals_m, light, mode, self.shading)
        rgb = torch.zeros(rays_o.shape[0], 3).index_add(0, ray_id, w_m[:, None] * color_m)  # Eq. 6
        opacity = weights.sum(1, keepdim=True)  # [R,1]
        rgb = rgb + (1 - opacity) * self.background(rays_d)
        depth = (weights * t).sum(1, keepdim=True)

        def img(v: torch.Tensor) -> torch.Tensor:
            return v.reshape(B, height, width, -1)

        share = span.clamp(min=1e-6)  # [R,1] the ray's span, for distances as shares of it
        intervals = torch.stack([t - t_near[:, None], t - t_near[:, None] + delta], -1) / share[..., None]  # [R,S,2]
        out = RenderOutput(
            rgb=img(rgb), opacity=img(opacity), depth=img(depth), weights=w_m, ray_weights=weights, intervals=intervals
        )
        if normals_m is not None:
            out.normal = img(torch.zeros(rays_o.shape[0], 3).index_add(0, ray_id, w_m[:, None] * normals_m))
            out.normals_dot_dirs = (normals_m * rays_d[ray_id]).sum(-1)
        return out

    def normals(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Normals [M,3] at samples x [M,3] of weight w [M] above `normal_weight_min`, zero elsewhere. Four
        extra field evaluations per normal (field.normals) are most of a lambertian render; behind the surface
        and in thin fog the weights are tiny, so a trained shape skips most of them (benchmarks/bench_levers.py)."""
        keep = w > self.cfg.normal_weight_min
        if bool(keep.all()):
            return self.field.normals(x)
        return x.new_zeros(x.shape).index_put((keep,), self.field.normals(x[keep]))
