"""Ground-truth renderer: batched sphere tracing of a scene's SDF with the cameras of real3d.cameras."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..cameras import Cameras
from .scene import Scene

Shading = Literal["albedo", "lambertian"]


@dataclass
class GTRender:
    """Sphere-traced views. rgb [B,H,W,3] in [0,1] over the background, mask [B,H,W] in {0,1},
    depth [B,H,W] (distance along the ray, 0 on the background), normal [B,H,W,3] (0 on the background),
    part [B,H,W] (index into scene.parts() of what a pixel shows, -1 on the background)."""

    rgb: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor
    part: torch.Tensor


EDGE_CONTRAST = 0.3  # a feature pixel on the edge must differ this much (some channel) from the background


def visible_pixels(
    scene: Scene, view: GTRender, background: tuple[float, float, float] = (1.0, 1.0, 1.0), slots: int = 2
) -> torch.Tensor:
    """Pixels [B,slots,2] that views show of each object: (all of it, its front feature).

    A feature pixel counts where it can be told from what surrounds it: against the body (its ink is chosen
    to contrast with the body), or on the silhouette's edge (next to the background) only where its rendered
    colour differs from the background by EDGE_CONTRAST — a white face seen edge-on against white is not seen."""
    part, b = view.part, view.part.shape[0]
    on_edge = F.max_pool2d(F.pad((part < 0).float()[:, None], (1, 1, 1, 1)), 3, stride=1)[:, 0] > 0  # [B,H,W]
    stands_out = (view.rgb - torch.tensor(background)).abs().amax(-1) >= EDGE_CONTRAST  # [B,H,W]
    flat, readable = part.reshape(b, -1), (~on_edge | stands_out).reshape(b, -1)
    out = torch.zeros(b, slots, 2, dtype=torch.long)
    for p, (obj, feature) in enumerate(scene.part_owners()):
        shown = flat == p
        out[:, obj, 0] += shown.sum(-1)
        if feature:
            out[:, obj, 1] += (shown & readable).sum(-1)
    return out


def default_light(cameras: Cameras) -> torch.Tensor:
    """Unit light directions [B,3]: from the camera, raised a little (the front of what is seen is lit)."""
    up = torch.tensor([0.0, 0.0, 0.6])
    return F.normalize(F.normalize(cameras.position, dim=-1) + up, dim=-1)


def trace(
    scene: Scene, rays_o: torch.Tensor, rays_d: torch.Tensor, steps: int = 64, eps: float = 2e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sphere tracing of rays_o, rays_d [R,3] (unit directions): returns hit [R] (bool) and distance t [R].

    Only rays that enter the scene's bounding sphere march, and finished rays leave the active batch.
    """
    bound = max(float(torch.tensor(o.position).norm()) + 1.2 * o.scale for o in scene.objects)
    b = (rays_o * rays_d).sum(-1)  # ray-sphere intersection |o + t d| = bound
    disc = b**2 - ((rays_o**2).sum(-1) - bound**2)
    t_near, t_far = -b - disc.clamp(min=0).sqrt(), -b + disc.clamp(min=0).sqrt()
    hit = torch.zeros(rays_o.shape[0], dtype=torch.bool)
    t = t_near.clamp(min=0)
    idx = torch.nonzero((disc > 0) & (t_far > 0)).squeeze(1)  # active rays
    o, d, ta, far = rays_o[idx], rays_d[idx], t[idx], t_far[idx]
    for _ in range(steps):
        if idx.numel() == 0:
            break
        dist = scene.sdf(o + ta[:, None] * d)
        ta = ta + dist
        done_hit = dist < eps
        hit[idx[done_hit]] = True
        t[idx] = ta
        keep = ~done_hit & (ta < far)
        idx, o, d, ta, far = idx[keep], o[keep], d[keep], ta[keep], far[keep]
    if idx.numel():  # out of steps: count rays already grazing the surface as hits
        hit[idx] = scene.sdf(o + ta[:, None] * d) < 10 * eps
    return hit, t


def normals(scene: Scene, points: torch.Tensor, h: float = 1e-3) -> torch.Tensor:
    """Outward unit normals [N,3] at points [N,3], from the SDF by the tetrahedron difference stencil."""
    k = points.new_tensor([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]])  # [4,3]
    d = scene.sdf((points[None] + h * k[:, None]).reshape(-1, 3)).reshape(4, -1)  # [4,N]
    return F.normalize((k[:, None] * d[..., None]).sum(0), dim=-1)


def render(
    scene: Scene,
    cameras: Cameras,
    height: int,
    width: int,
    shading: Shading = "lambertian",
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ambient: float = 0.35,
    light: torch.Tensor | None = None,
    supersample: int = 1,
    steps: int = 64,
) -> GTRender:
    """Render B views of a scene. light: unit directions [B,3] toward the light (default: default_light).

    supersample k traces k×k rays per pixel and averages them (anti-aliased edges); part ids take the
    first ray of each pixel.
    """
    assert shading in ("albedo", "lambertian"), f"unknown shading {shading}"
    hs, ws, n = height * supersample, width * supersample, len(cameras)
    rays_o, rays_d = cameras.rays(hs, ws)  # [B,HW,3]
    hit, t = trace(scene, rays_o.reshape(-1, 3), rays_d.reshape(-1, 3), steps)
    points = (rays_o.reshape(-1, 3) + t[:, None] * rays_d.reshape(-1, 3))[hit]  # [K,3]
    normal = torch.zeros(hit.shape[0], 3)
    normal[hit] = normals(scene, points)
    part = torch.full(hit.shape, -1, dtype=torch.long)
    part[hit] = scene.nearest_part(points)
    colour = torch.zeros(hit.shape[0], 3)
    colour[hit] = scene.palette()[part[hit]]
    if shading == "lambertian":
        lights = (default_light(cameras) if light is None else light)[:, None].expand(n, hs * ws, 3).reshape(-1, 3)
        diffuse = (normal[hit] * lights[hit]).sum(-1, keepdim=True).clamp(min=0)
        colour[hit] = colour[hit] * (ambient + (1 - ambient) * diffuse)
    mask = hit.float()
    rgb = colour + (1 - mask[:, None]) * torch.tensor(background)
    out = [x.reshape(n, hs, ws, -1) for x in (rgb, mask[:, None], (t * mask)[:, None], normal)]
    if supersample > 1:
        out = [F.avg_pool2d(x.permute(0, 3, 1, 2), supersample).permute(0, 2, 3, 1) for x in out]
    rgb_o, mask_o, depth_o, normal_o = out
    part = part.reshape(n, hs, ws)[:, ::supersample, ::supersample]
    return GTRender(rgb_o, mask_o[..., 0], depth_o[..., 0], normal_o, part)
