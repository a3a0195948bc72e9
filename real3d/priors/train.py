"""Training the embedded prior with the denoising objective (Eq. 1), resumable through real3d.loop.

    L_Diff(φ, x) = E_{t,ε} ‖ε_φ(α_t x + σ_t ε; y, t) − ε‖²      (w(t) = 1, t uniform over the DDPM steps)

The data is any set of images uint8 [N,r,r,3] with captions (`real3d train-prior` brings the toy world's GT
renders). Captions are encoded once by the frozen MiniLM encoder (cached beside the data when given a path);
a share `caption_dropout` of them is replaced by the empty prompt (CFG) and, for a view-conditioned
prior, a share `view_word_dropout` by the caption without its view word. Model, EMA, optimizer and step are
checkpointed every `checkpoint_every` steps; the EMA weights are written as the trained prior at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import precision
from ..cameras import view_code, without_view
from ..config import bounded
from ..errors import UserError
from ..io import save_torch
from ..loop import Loop, halve_learning_rate
from ..precision import Precision
from .embedded import VIEW_LAYERS, EmbeddedPrior


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
    view_dropout: float = bounded(0.1, 0.0, 1.0)  # a view-conditioned prior: share of views given as "none"
    # the view's layers learn this many times faster than the rest: at the base rate they barely leave their
    # zero start (docs: weights/embedded-prior/README.md, stage 4)
    view_lr_scale: float = bounded(20.0, 0.0)
    # a view-conditioned prior: share of captions given without their view word, so that on those the camera
    # alone says where the view is from and the view's layers get the whole of that gradient
    view_word_dropout: float = bounded(0.0, 0.0, 1.0)
    checkpoint_every: int = bounded(500, 1)
    precision: Precision = "auto"  # real3d.precision: bf16 autocast only where it is native
    seed: int = 0


PROBE = "a red cube next to a blue sphere, front view"  # its embedding stands for the encoder in cache keys


def caption_table(
    prior: EmbeddedPrior, captions: list[str], device: torch.device, cache: Path | None = None
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


class PriorTraining:
    """The state of one prior training (real3d.loop.Stateful): UNet, EMA, optimiser, schedule, RNG, time."""

    def __init__(self, prior: EmbeddedPrior, cfg: TrainConfig, device: torch.device) -> None:
        self.prior, self.cfg, self.device = prior, cfg, device
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        self.ema = {k: v.detach().clone().float() for k, v in prior.unet.state_dict().items()}
        named = list(prior.unet.named_parameters())
        view = [p for n, p in named if n.startswith(VIEW_LAYERS)]
        groups = [{"params": [p for n, p in named if not n.startswith(VIEW_LAYERS)], "lr": cfg.lr}]
        groups += [{"params": view, "lr": cfg.lr * cfg.view_lr_scale}] if view else []
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg))
        self.started = time.time()

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.prior.unet.state_dict(),
            "ema": self.ema,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "elapsed": time.time() - self.started,
            "config": dataclasses.asdict(self.cfg),
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        self.prior.unet.load_state_dict(ckpt["model"])
        for k, v in ckpt["ema"].items():
            self.ema[k].copy_(v)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.generator.set_state(ckpt["generator"])
        self.started = time.time() - ckpt["elapsed"]


def check_settings(prior: EmbeddedPrior, cfg: TrainConfig) -> None:
    """UserError for settings this prior cannot train with (before any data is built)."""
    if cfg.view_word_dropout > 0 and not prior.cfg.view_conditioned:
        raise UserError(
            f"view_word_dropout={cfg.view_word_dropout} needs a view-conditioned prior (train-prior "
            "--view-conditioned): a text-only one has no camera to say the view instead"
        )


def train(
    prior: EmbeddedPrior,
    cfg: TrainConfig,
    images: torch.Tensor,
    captions: list[str],
    views: torch.Tensor | None,
    checkpoint_dir: Path,
    out: Path,
    device: str = "cpu",
    resume: bool = False,
    log_every: int = 50,
    max_minutes: float = 0.0,
    cache: Path | None = None,
    resume_hint: str = "real3d train-prior --resume",
) -> dict[str, float]:
    """Train `prior` on images uint8 [N,r,r,3] + captions (and, for a view-conditioned prior, each image's
    azimuth from the front and elevation, degrees [N,2]) from scratch or from the checkpoint to cfg.steps,
    or for one leg of `max_minutes` (0: no limit) after which the checkpoint is kept and a resume continues;
    write the EMA prior to `out`. `cache`: where the caption embeddings are kept (see caption_table)."""
    check_settings(prior, cfg)
    if prior.cfg.view_conditioned and views is None:
        where = cache or "the training data"
        raise UserError(f"{where} holds no views (built before they were kept): delete it to build it again")
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    prior.to(dev).train()
    prior.unet.requires_grad_(True)
    images = images.to(dev)
    views = views.to(dev) if views is not None and prior.cfg.view_conditioned else None  # [N,2]; text-only: none
    bare = views is not None and cfg.view_word_dropout > 0
    table, caption_index = caption_table(
        prior, captions + ([without_view(c) for c in captions] if bare else []), dev, cache
    )
    caption_index, bare_index = caption_index[: len(captions)], caption_index[len(captions) :]  # [N], [N] or [0]
    empty = table.shape[0] - 1
    run = PriorTraining(prior, cfg, dev)
    loop = Loop(
        checkpoint_dir / "checkpoint.pt",
        run,
        cfg.steps,
        cfg.checkpoint_every,
        resume_hint,
        on_rollback=lambda step: halve_learning_rate(run.optimizer, run.scheduler),
    )
    start = loop.begin(resume)
    if start:
        print(f"resumed from {loop.path} at step {start}", flush=True)
    state = prior.unet.state_dict(keep_vars=True)
    ema_tensors, model_tensors = [run.ema[k] for k in state], [v.data for v in state.values()]
    alphas = prior.noise_scheduler.alphas_cumprod.to(dev)
    T, gen = prior.num_train_timesteps, run.generator
    running: list[float] = []
    mean = float("nan")
    leg_end = time.time() + 60 * max_minutes if max_minutes > 0 else float("inf")

    def train_step(step: int) -> float:
        idx = torch.randint(len(images), (cfg.batch,), generator=gen, device=dev)
        x0 = images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1  # [B,3,r,r] in [-1,1]
        drop = torch.rand(cfg.batch, generator=gen, device=dev) < cfg.caption_dropout
        index = caption_index[idx]
        if bare:
            index = torch.where(
                torch.rand(cfg.batch, generator=gen, device=dev) < cfg.view_word_dropout, bare_index[idx], index
            )
        context = table[torch.where(drop, empty, index)]
        view = None
        if views is not None:
            keep = torch.rand(cfg.batch, generator=gen, device=dev) >= cfg.view_dropout
            view = view_code(views[idx, 0], views[idx, 1]) * keep[:, None]  # [B,5], dropped views all zeros
        t = torch.randint(T, (cfg.batch,), generator=gen, device=dev)
        eps = torch.randn(x0.shape, generator=gen, device=dev)
        a = alphas[t].sqrt()[:, None, None, None]
        x_t = a * x0 + (1 - a**2).sqrt() * eps  # Eq. 1: α_t x + σ_t ε
        loss = F.mse_loss(prior.denoiser(x_t, t, context, view).float(), eps)  # in the precision real3d.precision picks
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.unet.parameters(), 1.0)
        run.optimizer.step()
        run.scheduler.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_tensors, model_tensors, 1 - cfg.ema_decay)
        return float(loss.detach())

    def on_step(step: int, loss: float) -> None:
        nonlocal mean
        running.append(loss)
        if step % log_every == 0 or step == cfg.steps:
            mean = sum(running) / len(running)
            running.clear()
            print(
                f"step {step}/{cfg.steps} loss {mean:.4f} lr {run.scheduler.get_last_lr()[0]:.2e} "
                f"({time.time() - run.started:.0f} s)",
                flush=True,
            )

    with precision.use(cfg.precision):
        done = loop.run(start, train_step, on_step, stop=lambda step: time.time() > leg_end)
    prior.save_pretrained(out, run.ema)
    prior.eval().requires_grad_(False)
    return {"steps": done, "seconds": time.time() - run.started, "final_loss": mean}
