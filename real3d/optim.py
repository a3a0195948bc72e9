"""Optimiser of the paper's Implementation Details: Adan, lr 5e-3 with cosine annealing to 1e-6."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from adan_pytorch import Adan

from .config import bounded


@dataclass
class OptimizerConfig:
    lr: float = bounded(5e-3, 0.0)
    lr_min: float = bounded(1e-6, 0.0)  # end of the cosine annealing
    betas: list[float] = bounded([0.02, 0.08, 0.01], 0.0, 1.0)  # Adan's (β1, β2, β3)
    weight_decay: float = bounded(0.0, 0.0)
    eps: float = bounded(1e-8, 0.0)


def make_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adan over `params` and a cosine schedule from cfg.lr to cfg.lr_min over `total_steps`."""
    opt = Adan(list(params), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1), eta_min=cfg.lr_min)
    return opt, sched
