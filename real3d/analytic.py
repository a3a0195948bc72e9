"""An analytic coloured sphere, ray-cast exactly: the target of `real3d fit` (the demo of the field + NeRF)."""

from __future__ import annotations

import torch

from .cameras import Cameras


def sphere_colour(n: torch.Tensor) -> torch.Tensor:
    """Albedo [...,3] at unit sphere normals [...,3]: warm front (+x), cool back, latitude shading."""
    front = 0.5 + 0.5 * n[..., 0:1]
    warm = torch.tensor([0.9, 0.35, 0.2])
    cool = torch.tensor([0.2, 0.45, 0.85])
    return front * warm + (1 - front) * cool + 0.1 * n[..., 2:3]


def render_sphere(
    cams: Cameras, height: int, width: int, radius: float = 0.6, background: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact renders of the coloured sphere: rgb [B,H,W,3] (albedo) and mask [B,H,W,1]."""
    rays_o, rays_d = cams.rays(height, width)  # [B,HW,3]
    b = (rays_o * rays_d).sum(-1)
    c = (rays_o * rays_o).sum(-1) - radius**2
    disc = b * b - c
    hit = disc > 0
    t = -b - torch.sqrt(disc.clamp(min=0))
    n = (rays_o + t[..., None] * rays_d) / radius
    rgb = torch.where(hit[..., None], sphere_colour(n).clamp(0, 1), torch.full_like(n, background))
    shape = (len(cams), height, width)
    return rgb.reshape(*shape, 3), hit.float().reshape(*shape, 1)
