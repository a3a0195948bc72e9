"""What every renderer of θ returns and promises (the NeRF renderer of Eq. 5–8, the DMTet one of Eq. 9–10)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from ..cameras import Cameras
from .shading import ShadingMode


@dataclass
class RenderOutput:
    """What a renderer returns for B views of H×W pixels."""

    rgb: torch.Tensor  # [B,H,W,3] shaded colour over the background
    opacity: torch.Tensor  # [B,H,W,1] accumulated alpha (mask)
    depth: torch.Tensor  # [B,H,W,1] expected ray distance of the surface (0 where empty)
    normal: torch.Tensor | None = None  # [B,H,W,3] composited world normals, when shading needed them
    # per-sample terms of the implicit renderer, packed over the M evaluated samples (regularizers use them)
    weights: torch.Tensor | None = None  # [M] compositing weights w_i (Eq. 7)
    normals_dot_dirs: torch.Tensor | None = None  # [M] n_i · d (positive = normal faces away from the camera)
    ray_weights: torch.Tensor | None = None  # [R,S] the same weights w_i laid out per ray (0 where not evaluated)
    intervals: torch.Tensor | None = None  # [R,S,2] each sample's interval along its ray, as a share of the ray's span
    # the explicit renderer's surface (Eq. 9), for the mesh regularizers
    mesh_verts: torch.Tensor | None = None  # [V,3] world positions, differentiable
    mesh_faces: torch.Tensor | None = None  # [F,3] vertex ids, outward counter-clockwise


class Renderer(Protocol):
    """A differentiable renderer of the field θ: the system draws views of θ through it."""

    def update_step(self, step: int, generator: torch.Generator | None = None) -> None:
        """Per-step upkeep before rendering at `step` (occupancy grid, tet band, ...)."""

    def __call__(
        self,
        cams: Cameras,
        height: int,
        width: int,
        mode: ShadingMode = "albedo",
        light: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> RenderOutput:
        """Render B = len(cams) views; `light` [B,3] is needed by the lambertian and textureless modes."""
        ...
