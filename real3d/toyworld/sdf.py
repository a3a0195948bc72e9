"""Exact signed distance functions of the toy world's primitives (negative inside), in torch.

Every primitive is centred at the origin, +z up, at *unit size*: it fits in the unit sphere and its
vertical extent is [-half_height, +half_height]. `Primitive.front_x(y, z)` is where the +x surface
(the object's front) lies, so that features (a face, a door, a handle) can be placed on it; shapes
without a flat-enough front (cone, torus) take no features.
All functions take points p [N,3] and return distances [N].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


def _xy_len(p: torch.Tensor) -> torch.Tensor:
    """Distance from the z axis [N]."""
    return torch.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2)


def _corner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact distance of a 2D 'inside if both a,b < 0' region: outside length + inside max, [N]."""
    return torch.sqrt(a.clamp(min=0) ** 2 + b.clamp(min=0) ** 2) + torch.maximum(a, b).clamp(max=0)


def sphere(p: torch.Tensor, radius: float) -> torch.Tensor:
    return p.norm(dim=-1) - radius


def box(p: torch.Tensor, half: tuple[float, float, float]) -> torch.Tensor:
    """Axis-aligned box with half extents `half`."""
    q = p.abs() - p.new_tensor(half)
    return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)


def cylinder(p: torch.Tensor, radius: float, half_height: float) -> torch.Tensor:
    """Capped cylinder around the z axis."""
    return _corner(_xy_len(p) - radius, p[:, 2].abs() - half_height)


def cone(p: torch.Tensor, radius: float, half_height: float) -> torch.Tensor:
    """Capped cone around the z axis: base disc of `radius` at z=-half_height, apex at z=+half_height."""
    q_r, q_z = _xy_len(p), p[:, 2]
    # distance to the flat base cap (the apex cap has zero radius)
    cap_r = q_r - torch.where(q_z < 0, q_r.clamp(max=radius), torch.zeros_like(q_r))
    cap_z = q_z.abs() - half_height
    # distance to the slanted side: segment from (0, h) to (radius, -h) in the (r, z) half plane
    k_r, k_z = -radius, 2 * half_height  # side direction from apex to base, negated in r (iq's k2)
    t = ((0 - q_r) * k_r + (half_height - q_z) * k_z) / (k_r**2 + k_z**2)
    t = t.clamp(0.0, 1.0)
    side_r, side_z = q_r + k_r * t, q_z - half_height + k_z * t
    inside = (side_r < 0) & (cap_z < 0)
    dist = torch.sqrt(torch.minimum(cap_r**2 + cap_z**2, side_r**2 + side_z**2))
    return torch.where(inside, -dist, dist)


def torus(p: torch.Tensor, major: float, minor: float, axis: int = 2) -> torch.Tensor:
    """Torus of ring radius `major` and tube radius `minor`, ring perpendicular to coordinate `axis`."""
    plane = [i for i in range(3) if i != axis]
    ring = torch.sqrt(p[:, plane[0]] ** 2 + p[:, plane[1]] ** 2) - major
    return torch.sqrt(ring**2 + p[:, axis] ** 2) - minor


def capsule(p: torch.Tensor, radius: float, half_length: float) -> torch.Tensor:
    """Segment from z=-half_length to z=+half_length, thickened by `radius`."""
    axis_z = p[:, 2].clamp(-half_length, half_length)
    return torch.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2 + (p[:, 2] - axis_z) ** 2) - radius


@dataclass(frozen=True)
class Primitive:
    """A unit-size shape: its SDF, vertical half extent and where its front (+x) surface is."""

    sdf: Callable[[torch.Tensor], torch.Tensor]
    half_height: float
    front_x: Callable[[float, float], float] | None  # (y, z) → x of the front surface; None: no features


def _round_front(radius: float) -> Callable[[float, float], float]:
    return lambda y, z: math.sqrt(max(radius**2 - y**2, 0.0))


PRIMITIVES: dict[str, Primitive] = {
    "sphere": Primitive(lambda p: sphere(p, 1.0), 1.0, lambda y, z: math.sqrt(max(1.0 - y * y - z * z, 0.0))),
    "cube": Primitive(lambda p: box(p, (0.6, 0.6, 0.6)), 0.6, lambda y, z: 0.6),
    "cylinder": Primitive(lambda p: cylinder(p, 0.6, 0.75), 0.75, _round_front(0.6)),
    "cone": Primitive(lambda p: cone(p, 0.75, 0.75), 0.75, None),
    "torus": Primitive(lambda p: torus(p, 0.68, 0.3), 0.3, None),
    "capsule": Primitive(lambda p: capsule(p, 0.45, 0.5), 0.95, _round_front(0.45)),
}
