"""Diffusion priors p_φ: the shipped embedded prior and Stable Diffusion, behind one Prior protocol (base.py)."""

from __future__ import annotations

from typing import Any

from .. import registry
from . import embedded, stable_diffusion  # noqa: F401  (register ("prior", "embedded"), ("prior", "stable-diffusion"))
from .base import DiffusionPrior, Prior, TextEmbedding


def load_prior(prior_type: str, cfg: Any) -> DiffusionPrior:
    """The prior a run config names (`prior_type:` and its parsed `prior:` section), ready to use."""
    return registry.lookup("prior", prior_type).from_config(cfg)


__all__ = ["DiffusionPrior", "Prior", "TextEmbedding", "load_prior"]
