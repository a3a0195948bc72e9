"""`real3d fit`: fit θ through the NeRF renderer to exact views of an analytic coloured sphere.

The demo of the foundation (field + Eq. 5–8 + Adan): a photometric fit with known answers, reported as PSNR on
held-out views, with the renders and a turntable written beside the resolved config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from tqdm import tqdm

from .. import config as config_lib
from .. import precision
from ..analytic import render_sphere
from ..cameras import Cameras, orbit, sample_views
from ..config import bounded
from ..io import contact_sheet, discard_replaced, prepare_out_dir, save_image, save_video, write_text
from ..model import SceneConfig, SceneModel, save_checkpoint
from ..optim import OptimizerConfig, make_optimizer
from ..regularizers import RegularizerConfig, regularizer_losses


@dataclass
class FitConfig(SceneConfig):
    name: str = "fit"
    seed: int = 0
    steps: int = bounded(500, 1)
    image_size: int = bounded(64, 8, 1024)
    train_views: int = bounded(12, 1)
    test_views: int = bounded(4, 1)
    sphere_radius: float = bounded(0.6, 0.05, 0.95)
    turntable_frames: int = bounded(36, 2)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    regularizers: RegularizerConfig = dataclasses.field(default_factory=RegularizerConfig)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [0,1]."""
    return float(-10 * torch.log10(((pred - target) ** 2).mean()))


Target = Callable[[Cameras, int, int], torch.Tensor]  # (cameras, H, W) -> rgb [B,H,W,3]


def fit(
    cfg: FitConfig, out_dir: Path | None = None, progress: bool = True, target: Target | None = None
) -> dict[str, float]:
    """Fit a fresh field to `train_views` renders of `target` (default: the analytic sphere of radius
    cfg.sphere_radius), in the config's precision; return PSNR on `test_views` unseen views."""
    with precision.use(cfg.precision):
        return _fit(cfg, out_dir, progress, target)


def _fit(cfg: FitConfig, out_dir: Path | None, progress: bool, target: Target | None) -> dict[str, float]:
    if target is None:
        target = lambda cams, h, w: render_sphere(cams, h, w, cfg.sphere_radius)[0]
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = SceneModel(cfg)
    renderer = model.renderer
    size = cfg.image_size
    train_cams = sample_views(cfg.camera, cfg.train_views, gen)
    test_cams = sample_views(cfg.camera, cfg.test_views, gen)
    train_rgb, test_rgb = target(train_cams, size, size), target(test_cams, size, size)
    opt, sched = make_optimizer(model.parameters(), cfg.optimizer, cfg.steps)

    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="fit", disable=not progress, dynamic_ncols=True)
    renderer.train()
    for step in bar:
        renderer.update_step(step, gen)
        i = int(torch.randint(cfg.train_views, (1,), generator=gen))
        out = renderer(train_cams.index(i), size, size, "albedo", generator=gen)
        losses = {"loss_rgb": torch.nn.functional.mse_loss(out.rgb, train_rgb[i : i + 1])}
        losses |= regularizer_losses(out, cfg.regularizers)
        loss = cast(torch.Tensor, sum(losses.values()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{psnr(out.rgb.detach(), train_rgb[i : i + 1]):.1f}")
    seconds = time.perf_counter() - start

    renderer.eval()
    with torch.no_grad():
        test_pred = renderer(test_cams, size, size, "albedo").rgb
    metrics = {"psnr_test": psnr(test_pred, test_rgb), "seconds": seconds, "steps": cfg.steps}
    if out_dir is not None:
        write_outputs(cfg, model, out_dir, test_cams, test_pred, test_rgb, metrics)
    return metrics


def write_outputs(
    cfg: FitConfig,
    model: SceneModel,
    out_dir: Path,
    test_cams: Cameras,
    test_pred: torch.Tensor,
    test_rgb: torch.Tensor,
    metrics: dict[str, float],
) -> None:
    """Resolved config, checkpoint, target/render contact sheet, turntable (MP4 + GIF), metrics."""
    config_lib.save(cfg, out_dir / "config.yaml")
    save_checkpoint(out_dir / "checkpoint.pt", cfg, model)
    pairs = [im for k in range(len(test_cams)) for im in (test_rgb[k], test_pred[k])]
    save_image(out_dir / "test_views.png", contact_sheet(pairs, cols=2))
    size = cfg.image_size
    with torch.no_grad():
        frames = list(model.renderer(orbit(cfg.turntable_frames, 15.0, 2.5, 45.0), size, size, "albedo").rgb)
    save_video(out_dir / "turntable.mp4", frames)
    save_video(out_dir / "turntable.gif", frames)
    write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))


def run(args: argparse.Namespace) -> int:
    cfg = config_lib.load(FitConfig, args.preset, args.overrides, default_base="fit")
    out_dir = prepare_out_dir(args.out, args.overwrite)
    metrics = fit(cfg, out_dir)
    discard_replaced(out_dir)
    print(
        f"PSNR on {cfg.test_views} held-out views: {metrics['psnr_test']:.2f} dB "
        f"({metrics['seconds']:.1f} s for {cfg.steps} steps); outputs in {out_dir}"
    )
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    from .args import add_config_arguments

    p = sub.add_parser("fit", help="fit the field to views of an analytic sphere (demo of field + NeRF)")
    add_config_arguments(p, default_preset="fit")
    p.add_argument("--out", type=Path, default=Path("outputs/fit"), help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)
