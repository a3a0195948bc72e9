"""Fit θ through the NeRF renderer to views made by an independent renderer written here."""

import torch

from real3d import config as config_lib
from real3d.cameras import Cameras
from real3d.jobs.fit import FitConfig, fit


def ray_traced_ball(cams: Cameras, height: int, width: int) -> torch.Tensor:
    """Exact ray–sphere intersection (radius 0.55, centre (0.05, 0, 0)) coloured by a smooth pattern."""
    centre, radius = torch.tensor([0.05, 0.0, 0.0]), 0.55
    o, d = cams.rays(height, width)  # [B,HW,3]
    oc = o - centre
    b = (oc * d).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - radius**2)
    t = -b - disc.clamp(min=0).sqrt()
    n = (oc + t[..., None] * d) / radius
    colour = torch.stack([0.5 + 0.35 * n[..., 2], 0.45 + 0.3 * n[..., 0], 0.55 - 0.3 * n[..., 1]], -1)
    rgb = torch.where((disc > 0)[..., None], colour, torch.ones_like(colour))
    return rgb.reshape(len(cams), height, width, 3)


def test_fit_reaches_25db_on_held_out_views():
    cfg = config_lib.load(FitConfig, "fit", ["train_views=12", "test_views=4", "seed=0"])
    metrics = fit(cfg, progress=False, target=ray_traced_ball)
    assert metrics["psnr_test"] >= 25.0, metrics
