"""Score distillation sampling (Eq. 2): the gradient a frozen diffusion prior gives a rendered image.

    ∇_θ L_SDS = E_{t,ε} [ w(t) (ε̂_φ(z_t; y, t) − ε) ∂x/∂θ ],   z_t = α_t x + σ_t ε

with ε̂ the classifier-free-guided noise prediction. The UNet Jacobian is skipped (no backprop through the
prior): the loss is written through the reparameterisation

    L = ½ ‖x − stopgrad(x − g)‖² / B,   g = w(t) (ε̂ − ε)

so that ∂L/∂x = g / B exactly, per image, and `loss.backward()` carries it to θ through the renderer.
t ~ U(t_min, t_max(step)) with t_max annealed linearly over the run (DreamFusion / threestudio), or, with
`t_window`, t ~ U(t_max(step) − window, t_max(step)): a window sliding down from noise to detail, so
that t decreases over the run as it does in a sampler (DreamTime's time-prioritised schedule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..config import Scheduled, bounded, check_scheduled, scheduled, step_count
from ..priors.base import Prior, TextEmbedding, diffuse


@dataclass
class SDSConfig:
    # CFG scale s (DreamFusion uses 100 with Stable Diffusion), or a schedule [s0, start, end, s1] over the run
    guidance_scale: Scheduled = 100.0
    t_min: float = bounded(0.02, 0.0, 1.0)  # fraction of the prior's train timesteps
    t_max: list[float] = bounded([0.98, 0.5], 0.0, 1.0)  # t_max at step 0 → at `anneal_steps`
    anneal_steps: int = step_count(0)  # 0: no annealing (t_max stays at its first value)
    t_window: float | None = bounded(None, 0.0, 1.0)  # t ~ U(t_max(step) − window, t_max(step)); None: t_min
    weighting: Literal["sigma2", "uniform", "snr"] = "sigma2"  # w(t) = σ_t², 1, or σ_t/α_t (Eq. 3's factor)
    grad_clip: float | None = None  # clip the per-pixel gradient g to [−c, c]
    perp_neg: float = bounded(0.0, 0.0)  # weight λ of the opposite view prompts (Perp-Neg, against Janus); 0: off

    def check(self, where: str) -> None:
        from ..errors import ConfigError

        check_scheduled(self.guidance_scale, f"{where}.guidance_scale", lo=1.0)
        if len(self.t_max) != 2 or not all(self.t_min <= t for t in self.t_max):
            raise ConfigError(
                f"{where}.t_max: expected [start, end], both at or above t_min={self.t_min}, got {self.t_max}"
            )


@dataclass
class SDSOutput:
    loss: torch.Tensor  # scalar; backward gives w(t)(ε̂ − ε) ∂x/∂θ / B
    t: torch.Tensor  # [B] timesteps used
    grad: torch.Tensor  # [B,C,h,w] g = w(t)(ε̂ − ε), detached: statistics are the caller's (no host sync here)


def t_max_at(cfg: SDSConfig, step: int) -> float:
    """The annealed upper end of the timestep range at `step` (linear from t_max[0] to t_max[1])."""
    if cfg.anneal_steps <= 0:
        return cfg.t_max[0]
    frac = min(step / cfg.anneal_steps, 1.0)
    return cfg.t_max[0] + frac * (cfg.t_max[1] - cfg.t_max[0])


def draw_t(
    cfg: SDSConfig,
    step: int,
    n_t: int,
    b: int,
    generator: torch.Generator | None,
    t_cap: list[float] | None = None,
) -> torch.Tensor:
    """t [B] among the prior's n_t train timesteps: U(bottom, top) with top = t_max(step) and bottom = t_min,
    or top − t_window; with `t_cap` [B], each image's top is min(t_max(step), its cap)."""
    top = t_max_at(cfg, step)
    if t_cap is None or all(c >= top for c in t_cap):  # one range for the batch
        lo, hi = window(cfg, top, n_t)
        return torch.randint(lo, max(hi, lo + 1), (b,), generator=generator)
    bounds = torch.tensor([window(cfg, min(top, c), n_t) for c in t_cap])  # [B,2]
    lows, highs = bounds[:, 0], torch.maximum(bounds[:, 1], bounds[:, 0] + 1)
    return lows + (torch.rand(b, generator=generator) * (highs - lows)).long()  # rand < 1: below highs


def window(cfg: SDSConfig, top: float, n_t: int) -> tuple[int, int]:
    """[lo, hi) in train timesteps under the upper end `top` (a fraction): from t_min, or top − t_window."""
    bottom = cfg.t_min if cfg.t_window is None else max(cfg.t_min, top - cfg.t_window)
    return int(bottom * n_t), int(top * n_t)


def weight(cfg: SDSConfig, alphas_cumprod_t: torch.Tensor) -> torch.Tensor:
    """w(t) [B] from ᾱ_t [B]."""
    if cfg.weighting == "uniform":
        return torch.ones_like(alphas_cumprod_t)
    sigma2 = 1 - alphas_cumprod_t
    return sigma2 if cfg.weighting == "sigma2" else (sigma2 / alphas_cumprod_t).sqrt()


def sds(
    prior: Prior,
    x: torch.Tensor,
    emb: TextEmbedding,
    cfg: SDSConfig,
    step: int = 0,
    generator: torch.Generator | None = None,
    t_cap: list[float] | None = None,
) -> SDSOutput:
    """Eq. 2 for images x [B,C,h,w] already in the prior's model space (see `sds_rgb` for renders).
    `t_cap` [B]: each image's t range ends at or below its cap (the window slides down under it)."""
    b = x.shape[0]
    t = draw_t(cfg, step, prior.num_train_timesteps, b, generator, t_cap).to(x.device)
    eps = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device)
    a_bar = prior.alphas_cumprod[t]  # [B]
    with torch.no_grad():
        x_t = diffuse(a_bar, x.detach().float(), eps)  # z_t = α_t x + σ_t ε
        eps_hat = prior.predict_noise(x_t.to(x.dtype), t, emb, scheduled(cfg.guidance_scale, step)).float()
        grad = weight(cfg, a_bar)[:, None, None, None] * (eps_hat - eps)
        grad = torch.nan_to_num(grad)
        if cfg.grad_clip is not None:
            grad = grad.clamp(-cfg.grad_clip, cfg.grad_clip)
        target = x.detach().float() - grad
    loss = 0.5 * ((x.float() - target) ** 2).sum() / b
    return SDSOutput(loss, t, grad)


def sds_rgb(
    prior: Prior,
    rgb: torch.Tensor,
    emb: TextEmbedding,
    cfg: SDSConfig,
    step: int = 0,
    generator: torch.Generator | None = None,
) -> SDSOutput:
    """Eq. 2 for renders rgb [B,H,W,3] in [0,1]: into model space (VAE-encoded for latent priors) with
    gradients, then `sds`."""
    return sds(prior, prior.encode_images(rgb), emb, cfg, step, generator)


def optimize_image(
    prior: Prior,
    emb: TextEmbedding,
    cfg: SDSConfig,
    steps: int = 300,
    lr: float = 0.05,
    generator: torch.Generator | None = None,
    init: float | torch.Tensor = 0.5,
) -> torch.Tensor:
    """SDS alone on free pixels (no 3D): rgb [B,r,r,3] = sigmoid(logits), starting as grey level `init` (or
    as the images init [B,r,r,3] in [0,1]), optimised by Adam with Eq. 2 for embeddings emb [B,...]; returns
    the final images. The sanity check of the guidance. The start sets the size of what SDS paints: from the
    toy world's white (0.95) the object stays small, from 0.5 it fills the frame; the embedded prior's bench
    uses 0.8 (its model card)."""
    r = prior.resolution
    start = torch.as_tensor(init, dtype=torch.float32).clamp(0.01, 0.99).expand(len(emb), r, r, 3)
    logits = torch.logit(start).to(emb.cond.device).clone().requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=lr)
    for step in range(steps):
        out = sds_rgb(prior, torch.sigmoid(logits), emb, cfg, step, generator)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    return torch.sigmoid(logits).detach()
