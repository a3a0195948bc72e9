"""θ and how it is seen: the field, its background and its renderer, built from config by registry name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from . import config as config_lib
from . import loop, registry
from .cameras import CameraConfig
from .config import component
from .errors import UserError
from .io import save_torch
from .precision import Precision
from .render import dmtet, nerf, shading  # noqa: F401  (registers the renderers and backgrounds)
from .render.shading import ShadingConfig


@dataclass
class SceneConfig:
    """The config slots shared by every job that optimises a field: top-level keys of a run's YAML."""

    field_type: str = "triplane"
    field: Any = component("field")
    background_type: str = "solid"
    background: Any = component("background")
    renderer_type: str = "nerf"  # the implicit renderer g^ξ_θ (Eq. 5–8)
    renderer: Any = component("renderer")
    explicit_type: str = "dmtet"  # the explicit renderer g^ζ_θ of the same θ (Eq. 9–10)
    explicit: Any = component("renderer")
    shading: ShadingConfig = dataclasses.field(default_factory=ShadingConfig)
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    precision: Precision = "auto"  # networks in bf16 only where this CPU runs it natively (real3d/precision.py)


class SceneModel(nn.Module):
    """Holds θ (`field`), the background and both renderers of θ as one module (one state_dict)."""

    def __init__(self, cfg: SceneConfig) -> None:
        super().__init__()
        self.field = registry.build("field", cfg.field_type, cfg.field)
        self.background = registry.build("background", cfg.background_type, cfg.background)
        self.renderer = registry.build(
            "renderer",
            cfg.renderer_type,
            cfg.renderer,
            field=self.field,
            background=self.background,
            shading=cfg.shading,
        )
        self.explicit = registry.build(
            "renderer",
            cfg.explicit_type,
            cfg.explicit,
            field=self.field,
            background=self.background,
            shading=cfg.shading,
        )


def save_checkpoint(path: Path, cfg: SceneConfig, model: SceneModel, **extra: Any) -> None:
    """Atomically write {config, model state, extra} (extra: step, optimiser state, RNG, …)."""
    save_torch(path, {"config": config_lib.to_dict(cfg), "model": model.state_dict(), **extra})


def load_checkpoint(path: Path) -> tuple[SceneConfig, SceneModel, dict[str, Any]]:
    """Rebuild the scene model of any job's checkpoint (only the SceneConfig keys of its config are used)."""
    path = path / "checkpoint.pt" if path.is_dir() else path  # a run's folder names its checkpoint
    ckpt = loop.load(path, "give the checkpoint.pt of a run, or its folder")
    try:
        keys = {f.name for f in dataclasses.fields(SceneConfig)}
        cfg = config_lib.parse(SceneConfig, {k: v for k, v in ckpt["config"].items() if k in keys})
        model = SceneModel(cfg)
        model.load_state_dict(ckpt["model"])
        model.field.decal_shown = ckpt.get("decal_shown", True)  # a run hides a decal no anchor drew
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"checkpoint {path} is not a real3d checkpoint ({type(e).__name__}); use another or rerun the job"
        ) from None
    return cfg, model, ckpt
