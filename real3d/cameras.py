"""Cameras: view sampling, rays for the implicit renderer, MVP matrices for the rasterizer.

The one camera convention of real3d (every renderer, the toy world and the prompts use it):

* World: right-handed, +z up, the object centred at the origin. The **front** of an object faces +x.
* A view is (azimuth φ, elevation θ, radius r, vertical field of view), angles in degrees.
  The camera sits at r·(cos θ cos φ, cos θ sin φ, sin θ) and looks at the origin, so **azimuth 0 sees the
  front**, azimuth 90 the object's left side (+y), ±180 its back, and elevation 90 looks straight down.
* Camera frame as OpenGL: x right, y up, looking along −z. `c2w` [B,4,4] maps camera to world.
* Images: row 0 is the top, pixel (row i, col j) has its centre at ((j+0.5)/W, (i+0.5)/H) of the image.
  NDC x ∈ [−1,1] maps left→right, NDC y ∈ [−1,1] maps bottom→top.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import torch

from .config import Scheduled, bounded, check_scheduled, scheduled


@dataclass
class CameraConfig:
    """Ranges that random training views are drawn from (uniformly), and the offset of the second view."""

    azimuth_range: list[float] = bounded([-180.0, 180.0], -360.0, 360.0)
    elevation_range: list[float] = bounded([-10.0, 60.0], -89.0, 89.0)
    radius_range: list[float] = bounded([2.2, 2.8], 0.5, 100.0)
    fovy_range: list[float] = bounded([40.0, 50.0], 5.0, 120.0)
    view_offset: float = bounded(90.0, -360.0, 360.0)  # v2 = v1 + view_offset degrees of azimuth
    # half-width (degrees) of the azimuths v1 is drawn from around the front, within azimuth_range (180 or more:
    # the whole range); a schedule [s0, a, 180, s1] lets views near the front place a front feature before the
    # others join (docs/results.md)
    azimuth_spread: Scheduled = 180.0
    near: float = bounded(0.1, 1e-4)
    far: float = bounded(100.0, 1e-3)

    def check(self, where: str) -> None:
        from .errors import ConfigError

        for name in ("azimuth_range", "elevation_range", "radius_range", "fovy_range"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise ConfigError(f"{where}.{name}: expected [low, high] with low <= high, got {lo_hi}")
        check_scheduled(self.azimuth_spread, f"{where}.azimuth_spread")
        narrowest = min(self.azimuth_spread[1:3] if isinstance(self.azimuth_spread, list) else [self.azimuth_spread])
        lo, hi = self.azimuth_range
        if narrowest < 0 or (narrowest < 180 and (lo > narrowest or hi < -narrowest)):
            raise ConfigError(
                f"{where}.azimuth_spread: each value must be >= 0 and reach into azimuth_range {self.azimuth_range} "
                f"from the front (0°), got {self.azimuth_spread}"
            )
        if self.near >= self.far:
            raise ConfigError(f"{where}.near must be smaller than {where}.far")


def off_front(azimuth: Any) -> Any:
    """|azimuth| folded into [0°, 180°] (a float or a tensor of degrees): how far a view is from the front."""
    return abs((azimuth + 180.0) % 360.0 - 180.0)


VIEW_WORDS = ("front", "side", "back", "overhead")  # what view_direction returns


def view_direction(azimuth: float, elevation: float) -> str:
    """DreamFusion's view word for a camera: 'overhead' above 60°, else front / side / back by azimuth."""
    if elevation > 60.0:
        return "overhead"
    a = off_front(azimuth)
    return "front" if a < 45.0 else "back" if a > 135.0 else "side"


_VIEW_SUFFIX = re.compile(r",?\s*(front|side|back|overhead) view\s*$")


def without_view(caption: str) -> str:
    """The caption with its view suffix (", front view", ...) taken off."""
    return _VIEW_SUFFIX.sub("", caption)


VIEW_CODE_DIM = 5  # width of view_code


def view_code(azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
    """The camera condition of a view-conditioned prior: (sin φ, cos φ, sin θ, cos θ, 1) [B,5] for azimuths φ
    (from the front) and elevations θ in degrees [B]. The last 1 tells a view apart from "no view" (all zeros)."""
    a, e = torch.deg2rad(azimuth.float()), torch.deg2rad(elevation.float())
    return torch.stack([a.sin(), a.cos(), e.sin(), e.cos(), torch.ones_like(a)], -1)


RAY_MAP_FOVY = 45.0  # the field of view ray_map assumes: the middle of the toy world's 40-50°


def ray_map(view: torch.Tensor, size: int) -> torch.Tensor:
    """Each pixel's ray direction in world space [B,3,size,size] for the cameras of view codes `view` [B,5]
    (view_code, at RAY_MAP_FOVY); a "no view" code (all zeros) gives zeros. The per-pixel camera input of a
    ray-conditioned prior, as CAT3D's ray maps: it says where in the image each side of the object lies."""
    azimuth = torch.rad2deg(torch.atan2(view[:, 0], view[:, 1])).float().cpu()
    elevation = torch.rad2deg(torch.atan2(view[:, 2], view[:, 3])).float().cpu()
    ones = torch.ones_like(azimuth)
    _, rays_d = Cameras(azimuth, elevation, ones, ones * RAY_MAP_FOVY).rays(size, size)  # [B,HW,3]
    rays = rays_d.transpose(1, 2).reshape(len(view), 3, size, size).to(view.device)
    return rays * view[:, 4, None, None, None].to(rays.dtype)


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Camera-to-world matrices [B,4,4] for eyes [B,3] looking at targets [B,3] (OpenGL camera frame)."""
    back = torch.nn.functional.normalize(eye - target, dim=-1)
    right = torch.nn.functional.normalize(torch.cross(up.expand_as(back), back, dim=-1), dim=-1)
    true_up = torch.cross(back, right, dim=-1)
    c2w = torch.eye(4, dtype=eye.dtype).repeat(eye.shape[0], 1, 1)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, true_up, back, eye
    return c2w


@dataclass
class Cameras:
    """A batch of B look-at cameras. Angles [B] in degrees, radius [B], fovy [B]; `target` [B,3] is the point
    they orbit and look at (None: the origin, as the convention above; one object of a scene, real3d/system.py)."""

    azimuth: torch.Tensor
    elevation: torch.Tensor
    radius: torch.Tensor
    fovy: torch.Tensor
    target: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.azimuth.shape[0]

    @property
    def position(self) -> torch.Tensor:
        """Camera centres [B,3]."""
        az, el = torch.deg2rad(self.azimuth), torch.deg2rad(self.elevation)
        eye = self.radius[:, None] * torch.stack(
            [torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)], dim=-1
        )
        return eye if self.target is None else eye + self.target

    @property
    def c2w(self) -> torch.Tensor:
        """Camera-to-world [B,4,4]."""
        eye = self.position
        up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype)
        return look_at(eye, torch.zeros_like(eye) if self.target is None else self.target, up)

    def offset(self, azimuth_deg: float) -> Cameras:
        """The same cameras turned by `azimuth_deg` around the up axis (the paper's v2 = v1 + offset)."""
        return dataclasses.replace(self, azimuth=self.azimuth + azimuth_deg)

    def focus(self, target: torch.Tensor, zoom: float) -> Cameras:
        """The same views of the point target [3] instead of the origin, the field of view narrowed by `zoom`
        (tan(fovy/2) / zoom): what they saw of a ball of radius r at the origin, they see of one of r / zoom."""
        fovy = torch.rad2deg(2 * torch.atan(torch.tan(torch.deg2rad(self.fovy) / 2) / zoom))
        return dataclasses.replace(self, fovy=fovy, target=target.expand(len(self), 3))

    def index(self, i: int | slice) -> Cameras:
        sl = slice(i, i + 1) if isinstance(i, int) else i
        target = None if self.target is None else self.target[sl]
        return Cameras(self.azimuth[sl], self.elevation[sl], self.radius[sl], self.fovy[sl], target)

    def directions(self) -> list[str]:
        """DreamFusion view word per camera (see view_direction)."""
        return [view_direction(a, e) for a, e in zip(self.azimuth.tolist(), self.elevation.tolist())]

    def rays(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through pixel centres: rays_o [B,H*W,3], rays_d [B,H*W,3] (unit length), row-major."""
        tan = torch.tan(torch.deg2rad(self.fovy) / 2)[:, None]  # [B,1]
        j = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2 - 1  # NDC x of columns
        i = 1 - (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2  # NDC y of rows
        y, x = torch.meshgrid(i, j, indexing="ij")
        dirs_cam = torch.stack(
            [
                x.reshape(-1)[None] * tan * (width / height),
                y.reshape(-1)[None] * tan,
                -torch.ones(1, height * width).expand(len(self), -1),
            ],
            dim=-1,
        )  # [B,HW,3]
        c2w = self.c2w
        rays_d = torch.nn.functional.normalize(dirs_cam @ c2w[:, :3, :3].transpose(1, 2), dim=-1)
        rays_o = c2w[:, None, :3, 3].expand_as(rays_d)
        return rays_o, rays_d

    def mvp(self, height: int, width: int, near: float = 0.1, far: float = 100.0) -> torch.Tensor:
        """Model-view-projection [B,4,4] (OpenGL clip space) that agrees with `rays`."""
        tan = torch.tan(torch.deg2rad(self.fovy) / 2)
        proj = torch.zeros(len(self), 4, 4)
        proj[:, 0, 0] = 1 / (tan * width / height)
        proj[:, 1, 1] = 1 / tan
        proj[:, 2, 2] = -(far + near) / (far - near)
        proj[:, 2, 3] = -2 * far * near / (far - near)
        proj[:, 3, 2] = -1
        return proj @ torch.linalg.inv(self.c2w)


def project(points: torch.Tensor, mvp: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """World points [B,N,3] → pixel coordinates [B,N,2] as (col, row), pixel centres at integers."""
    clip = torch.cat([points, torch.ones_like(points[..., :1])], -1) @ mvp.transpose(1, 2)
    ndc = clip[..., :2] / clip[..., 3:4]
    col = (ndc[..., 0] + 1) / 2 * width - 0.5
    row = (1 - ndc[..., 1]) / 2 * height - 0.5
    return torch.stack([col, row], -1)


def sample_views(cfg: CameraConfig, batch: int, generator: torch.Generator | None = None, step: int = 0) -> Cameras:
    """Random training views at `step`, each quantity uniform in its configured range (the azimuth also
    within ± azimuth_spread of the front)."""

    def uniform(lo_hi: list[float]) -> torch.Tensor:
        lo, hi = lo_hi
        return lo + (hi - lo) * torch.rand(batch, generator=generator)

    spread, (lo, hi) = scheduled(cfg.azimuth_spread, step), cfg.azimuth_range  # check() keeps them overlapping
    azimuth = [max(lo, -spread), min(hi, spread)] if spread < 180 else [lo, hi]
    return Cameras(uniform(azimuth), uniform(cfg.elevation_range), uniform(cfg.radius_range), uniform(cfg.fovy_range))


def orbit(
    n: int, elevation: float = 15.0, radius: float = 2.5, fovy: float = 45.0, start_azimuth: float = 0.0
) -> Cameras:
    """n evenly spaced views around the object (a turntable), starting at `start_azimuth`."""
    az = start_azimuth + torch.arange(n, dtype=torch.float32) * (360.0 / n)
    full = torch.full((n,), 1.0)
    return Cameras(az, full * elevation, full * radius, full * fovy)
