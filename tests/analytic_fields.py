"""Tiny analytic stand-ins for the field θ (anything with `.tau`, `.albedo`, `.bound`) for renderer tests."""

from __future__ import annotations

import torch
from torch import nn

EPS = 0.1  # ε of Eq. 9 (the renderers' default)
RED, BLUE = (0.9, 0.1, 0.1), (0.1, 0.2, 0.9)


class SphereField(nn.Module):
    """τ = ε + (radius − |x|): the surface τ = ε is the sphere; albedo red in front (x > 0), blue behind."""

    bound = 1.0

    def __init__(self, radius: float) -> None:
        super().__init__()
        self.radius = nn.Parameter(torch.tensor(radius))

    def tau(self, x: torch.Tensor) -> torch.Tensor:
        return EPS + self.radius - x.norm(dim=-1)

    def albedo(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x[:, :1] > 0, torch.tensor(RED), torch.tensor(BLUE))
