"""Shading of surface albedo (DreamFusion): albedo, lambertian with a random light, textureless; backgrounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded
from ..errors import ConfigError
from ..field import mlp
from ..registry import register

ShadingMode = Literal["albedo", "lambertian", "textureless"]


@dataclass
class ShadingConfig:
    """Which shading a training render uses, drawn per render with these probabilities (DreamFusion)."""

    probs: dict[str, float] = field(default_factory=lambda: {"albedo": 0.2, "lambertian": 0.6, "textureless": 0.2})
    ambient: float = bounded(0.3, 0.0, 1.0)  # ambient share of the light
    light_elevation_jitter: float = bounded(30.0, 0.0, 90.0)  # light direction = camera direction ± jitter (deg)
    textureless_albedo: float = bounded(0.8, 0.0, 1.0)  # grey level of the textureless mode

    def check(self, where: str) -> None:
        modes = ("albedo", "lambertian", "textureless")
        for k, v in self.probs.items():
            if k not in modes:
                raise ConfigError(f"{where}.probs: unknown shading mode '{k}'; modes: {', '.join(modes)}")
            if v < 0:
                raise ConfigError(f"{where}.probs.{k}: must be >= 0, got {v}")
        if sum(self.probs.values()) <= 0:
            raise ConfigError(f"{where}.probs: at least one mode needs a positive probability")


def sample_mode(cfg: ShadingConfig, generator: torch.Generator | None = None) -> ShadingMode:
    """Draw one shading mode with the configured probabilities."""
    modes = list(cfg.probs)
    p = torch.tensor([cfg.probs[m] for m in modes])
    return modes[int(torch.multinomial(p, 1, generator=generator))]  # type: ignore[return-value]


def sample_light(cam_pos: torch.Tensor, cfg: ShadingConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Unit light directions [B,3] (from the surface toward the light), near each camera position [B,3]."""
    jitter = torch.randn(cam_pos.shape, generator=generator) * torch.deg2rad(torch.tensor(cfg.light_elevation_jitter))
    return F.normalize(F.normalize(cam_pos, dim=-1) + jitter, dim=-1)


def shade(
    albedo: torch.Tensor, normal: torch.Tensor | None, light: torch.Tensor | None, mode: ShadingMode, cfg: ShadingConfig
) -> torch.Tensor:
    """Colour [...,3] of surface points: albedo [...,3], outward normals [...,3], light directions [...,3]."""
    if mode == "albedo":
        return albedo
    assert normal is not None and light is not None, f"{mode} shading needs normals and a light"
    diffuse = (normal * light).sum(-1, keepdim=True).clamp(min=0.0)
    light_amount = cfg.ambient + (1 - cfg.ambient) * diffuse
    base = torch.full_like(albedo, cfg.textureless_albedo) if mode == "textureless" else albedo
    return base * light_amount


@register("background", "solid")
class SolidBackground(nn.Module):
    """A fixed colour behind the object."""

    @dataclass
    class Config:
        color: list[float] = bounded([1.0, 1.0, 1.0], 0.0, 1.0)

    def __init__(self, cfg: SolidBackground.Config) -> None:
        super().__init__()
        self.color: torch.Tensor
        self.register_buffer("color", torch.tensor(cfg.color, dtype=torch.float32), persistent=False)

    def forward(self, rays_d: torch.Tensor) -> torch.Tensor:
        """Colour [...,3] for ray directions [...,3]."""
        return self.color.expand(*rays_d.shape[:-1], 3)


@register("background", "mlp")
class MLPBackground(nn.Module):
    """A small learned environment: colour = MLP(ray direction) (DreamFusion)."""

    @dataclass
    class Config:
        hidden: int = bounded(16, 4, 256)
        layers: int = bounded(1, 1, 4)

    def __init__(self, cfg: MLPBackground.Config) -> None:
        super().__init__()
        self.net = mlp(3, cfg.hidden, 3, cfg.layers)

    def forward(self, rays_d: torch.Tensor) -> torch.Tensor:
        shape = rays_d.shape
        return torch.sigmoid(self.net(rays_d.reshape(-1, 3))).reshape(shape)
