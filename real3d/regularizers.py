"""Geometry regularizers of DreamFusion, weighted by `lambda_*` config values (the paper keeps them, Eq. 11)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import bounded
from .render.base import RenderOutput


@dataclass
class RegularizerConfig:
    lambda_orient: float = bounded(0.0, 0.0)  # normals that face away from the camera (DreamFusion)
    lambda_sparsity: float = bounded(0.0, 0.0)  # mean opacity: discourages fog filling the views
    lambda_opacity_entropy: float = bounded(0.0, 0.0)  # binary entropy of opacity: masks become 0 or 1


def orientation_loss(out: RenderOutput) -> torch.Tensor:
    """DreamFusion: Σ_i stopgrad(w_i)·max(0, n_i·d)², averaged over rays; 0 when no normals were shaded."""
    if out.normals_dot_dirs is None or out.weights is None:
        return out.rgb.new_zeros(())
    per_sample = out.weights.detach() * out.normals_dot_dirs.clamp(min=0).square()
    return per_sample.sum() / out.opacity.numel()


def sparsity_loss(out: RenderOutput) -> torch.Tensor:
    """Mean accumulated opacity."""
    return out.opacity.mean()


def opacity_entropy_loss(out: RenderOutput) -> torch.Tensor:
    """Mean binary entropy of the accumulated opacity."""
    o = out.opacity.clamp(1e-5, 1 - 1e-5)
    return -(o * torch.log(o) + (1 - o) * torch.log(1 - o)).mean()


def regularizer_losses(out: RenderOutput, cfg: RegularizerConfig) -> dict[str, torch.Tensor]:
    """The weighted terms that are switched on, by name (`lambda_X` → loss_X)."""
    terms = {
        "orient": (cfg.lambda_orient, orientation_loss),
        "sparsity": (cfg.lambda_sparsity, sparsity_loss),
        "opacity_entropy": (cfg.lambda_opacity_entropy, opacity_entropy_loss),
    }
    return {f"loss_{name}": lam * fn(out) for name, (lam, fn) in terms.items() if lam > 0}
