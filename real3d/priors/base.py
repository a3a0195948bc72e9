"""The Prior protocol: the diffusion model p_φ that SDS (Eq. 2) and the reference images x̃ draw on.

A prior works in its own space ("model space"): pixels in [-1,1] for the embedded prior, VAE latents for
Stable Diffusion. Everything outside the priors speaks rgb [B,H,W,3] in [0,1] and converts with
`encode_images` (differentiable) and `decode`.

The forward process of Eq. 1: z_t = α_t x + σ_t ε with α_t² = alphas_cumprod[t], σ_t² = 1 − α_t²
(discrete timesteps 0..num_train_timesteps−1, as diffusers schedulers use them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TextEmbedding:
    """Conditional and unconditional text embeddings for classifier-free guidance, both [B,L,D]; with
    `negative` [B,K,L,D] and `negative_weight` [B,K], negative prompts for Perp-Neg guidance (perp_neg_combine);
    with `view` [B,5] (cameras.view_code), the camera of each image, for a prior conditioned on it (the others
    ignore it)."""

    cond: torch.Tensor
    uncond: torch.Tensor
    negative: torch.Tensor | None = None
    negative_weight: torch.Tensor | None = None
    view: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.cond.shape[0]

    def repeat(self, n: int) -> TextEmbedding:
        """Each embedding repeated n times along the batch (row i → rows i*n .. i*n+n−1)."""
        return self._map(lambda x: x.repeat_interleave(n, 0))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TextEmbedding:
        return self._map(lambda x: x.to(device, dtype))

    def _map(self, f: Any) -> TextEmbedding:  # f: tensor → tensor, applied to each batch-first field
        def g(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else f(x)

        return TextEmbedding(f(self.cond), f(self.uncond), g(self.negative), g(self.negative_weight), g(self.view))


@runtime_checkable
class Prior(Protocol):
    """What SDS, positional prompts and the reference cache need from a text-to-image diffusion model."""

    resolution: int  # rgb side length the prior sees (renders are resized to it by encode_images)

    @property
    def num_train_timesteps(self) -> int:
        """T, the number of DDPM steps the prior was trained with."""

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t = α_t² for t = 0..num_train_timesteps−1, float32 [T] on the prior's device."""

    @property
    def identity(self) -> str:
        """A string that changes whenever the weights change (keys the reference-image cache)."""

    def encode_text(self, prompts: list[str]) -> TextEmbedding:
        """Embeddings [B,L,D] of the prompts and of the empty prompt (repeated to B)."""

    def predict_noise(
        self, x_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding, guidance_scale: float
    ) -> torch.Tensor:
        """ε̂ = ε_φ(x_t; ∅, t) + s·(ε_φ(x_t; y, t) − ε_φ(x_t; ∅, t)) for x_t [B,C,h,w] in model space, t [B]."""

    def encode_images(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb [B,H,W,3] in [0,1] → model space [B,C,h,w], differentiable."""

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """model space [B,C,h,w] → rgb [B,H,W,3] in [0,1]."""

    def sample(
        self,
        prompts: list[str],
        n: int = 1,
        steps: int = 20,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        views: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n images per prompt, rgb [len(prompts)*n,H,W,3] in [0,1] (prompt-major); `views` [len(prompts),5]
        (cameras.view_code) the camera of each prompt's images, for a view-conditioned prior."""

    def redraw(
        self,
        rgb: torch.Tensor,
        emb: TextEmbedding,
        strength: float,
        steps: int = 20,
        generator: torch.Generator | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """SDEdit: images rgb [B,H,W,3] in [0,1] noised to t = strength·T and denoised with emb [B,...];
        rgb [B,h,w,3] at the prior's resolution; `keep` [B,h,w] the pixels held to rgb."""


def diffuse(a_bar: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Eq. 1: x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε for x0 and ε [B,C,h,w], ᾱ_t = alphas_cumprod[t] one value or [B]."""
    a_bar = a_bar.reshape(-1, *[1] * (x0.dim() - 1)) if a_bar.dim() else a_bar
    return a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps


def _repeat(view: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """The views [B,5] of n stacked copies of a batch ([n·B,5]), or None."""
    return None if view is None else view.repeat(n, 1)


def cfg_combine(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: ε_∅ + s (ε_y − ε_∅)."""
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def perp_neg_combine(
    eps_uncond: torch.Tensor, eps_cond: torch.Tensor, eps_negative: torch.Tensor, weight: torch.Tensor, scale: float
) -> torch.Tensor:
    """Perp-Neg guidance (Armandpour et al. 2023): ε_∅ + s (δ − Σ_k w_k δ_k^⊥), with δ = ε_y − ε_∅ and δ_k^⊥ the
    part of δ_k = ε_k − ε_∅ orthogonal to δ (per image), so a negative prompt ("…, back view" for a front
    view) is pushed away without cancelling what it shares with the prompt. eps_* [B,C,h,w], eps_negative
    [B,K,C,h,w], weight [B,K]."""
    d = eps_cond - eps_uncond  # [B,C,h,w]
    dk = eps_negative - eps_uncond[:, None]  # [B,K,C,h,w]
    flat = d.flatten(1)  # [B,N]
    along = (dk.flatten(2) * flat[:, None]).sum(-1) / flat.pow(2).sum(-1).clamp_min(1e-12)[:, None]  # [B,K]
    shape = (*weight.shape, *([1] * (d.dim() - 1)))
    perp = dk - along.view(shape) * d[:, None]
    return eps_uncond + scale * (d - (weight.view(shape).to(d.dtype) * perp).sum(1))


class DiffusionPrior(nn.Module):
    """Shared machinery of the priors: CFG noise prediction and the sampling loop over a diffusers scheduler.

    Subclasses provide `denoiser(x_t, t, context)` (one network evaluation), `encode_text`,
    `encode_images`, `decode`, `latent_shape`, `identity`, a training `noise_scheduler` and
    a `sampling_scheduler()` factory."""

    resolution: int
    unet: Any  # a diffusers UNet2DConditionModel (an nn.Module that diffusers' annotations do not show as one)
    noise_scheduler: Any  # a diffusers DDPMScheduler
    default_guidance_scale: float = 7.5
    use_graph: bool = True  # inference may run a traced graph of the network (see `eager`)

    @property
    def identity(self) -> str:
        """A string that changes whenever the weights change (each prior says how)."""
        raise NotImplementedError

    @contextmanager
    def eager(self) -> Iterator[None]:
        """Inside, the networks run eagerly, never as a traced graph: what FLOP counters and debuggers see."""
        before, self.use_graph = self.use_graph, False
        try:
            yield
        finally:
            self.use_graph = before

    def denoiser(
        self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, view: torch.Tensor | None = None
    ) -> torch.Tensor:
        """ε_φ(x_t; context, t) [B,C,h,w]; `view` [B,5] (cameras.view_code) where the prior is conditioned on it."""
        raise NotImplementedError

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of one image in model space."""
        raise NotImplementedError

    @property
    def num_train_timesteps(self) -> int:
        return int(self.noise_scheduler.config.num_train_timesteps)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.noise_scheduler.alphas_cumprod.to(self.device, torch.float32)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def predict_noise(
        self, x_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding, guidance_scale: float
    ) -> torch.Tensor:
        """ε̂ with classifier-free guidance; one batched network call over [uncond; cond] (and the negative
        prompts of Perp-Neg, where emb has them). x_t [B,C,h,w], t [B]."""
        assert len(emb) == x_t.shape[0], f"{len(emb)} embeddings for {x_t.shape[0]} images"
        if emb.negative is not None and emb.negative_weight is not None:
            b, k = emb.negative.shape[:2]
            negatives = emb.negative.transpose(0, 1).reshape(k * b, *emb.negative.shape[2:])  # negative-major
            context = torch.cat([emb.uncond, emb.cond, negatives])
            eps = self.denoiser(x_t.repeat(2 + k, 1, 1, 1), t.repeat(2 + k), context, _repeat(emb.view, 2 + k))
            eps_negative = eps[2 * b :].reshape(k, b, *x_t.shape[1:]).transpose(0, 1)
            return perp_neg_combine(eps[:b], eps[b : 2 * b], eps_negative, emb.negative_weight, guidance_scale)
        if guidance_scale == 1.0:
            return self.denoiser(x_t, t, emb.cond, emb.view)
        eps = self.denoiser(
            torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([emb.uncond, emb.cond]), _repeat(emb.view, 2)
        )
        eps_uncond, eps_cond = eps.chunk(2)
        return cfg_combine(eps_uncond, eps_cond, guidance_scale)

    @torch.no_grad()
    def sample(
        self,
        prompts: list[str],
        n: int = 1,
        steps: int = 20,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        views: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reverse process with the sampling scheduler: rgb [len(prompts)*n,H,W,3] in [0,1], prompt-major;
        `views` [len(prompts),5], the camera of each prompt's images (cameras.view_code; None: no view)."""
        scale = self.default_guidance_scale if guidance_scale is None else guidance_scale
        emb = self.encode_text(prompts)
        emb.view = None if views is None else views.to(emb.cond.device)
        emb = emb.repeat(n)
        scheduler = self.sampling_scheduler()
        scheduler.set_timesteps(steps, device=self.device)
        shape = (len(emb), *self.latent_shape)
        x = torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)
        return self.decode(self._denoise(x * scheduler.init_noise_sigma, scheduler, scheduler.timesteps, emb, scale))

    @torch.no_grad()
    def redraw(
        self,
        rgb: torch.Tensor,
        emb: TextEmbedding,
        strength: float,
        steps: int = 20,
        generator: torch.Generator | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """SDEdit (Meng et al. 2022): images rgb [B,H,W,3] in [0,1] noised to t = strength·T (Eq. 1) and
        denoised with emb [B,...] over the timesteps of the `steps`-step schedule at or below t. The prior
        redraws what it would change at that noise (a front feature on a plain body) and keeps what it would
        not (the shape, the colour, the place in the frame). rgb [B,h,w,3] at the prior's resolution. `keep`
        [B,h,w] (bool): those pixels are held to rgb, noised to each step's t, and only the others are
        redrawn (RePaint's replacement, Lugmayr et al. 2022; in model space, the mask's share ≥ ½ there)."""
        scheduler = self.sampling_scheduler()
        scheduler.set_timesteps(steps, device=self.device)
        timesteps = scheduler.timesteps[scheduler.timesteps <= strength * self.num_train_timesteps]
        x = self.encode_images(rgb.to(self.device)).float()  # [B,C,h,w]
        if len(timesteps):
            eps = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(self.device)
            held = None
            if keep is not None:
                share = F.interpolate(keep[:, None].float().to(self.device), size=x.shape[-2:], mode="area")
                held = (x, eps, share >= 0.5)  # [B,1,h,w] in model space
            x = self._denoise(
                diffuse(self.alphas_cumprod[timesteps[0]], x, eps),
                scheduler,
                timesteps,
                emb,
                self.default_guidance_scale,
                held,
            )
        return self.decode(x)

    def _denoise(
        self,
        x: torch.Tensor,
        scheduler: Any,
        timesteps: torch.Tensor,
        emb: TextEmbedding,
        scale: float,
        held: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x [B,C,h,w] taken down the sampler's `timesteps` (descending) with CFG scale `scale`; `held` (x0, ε,
        mask [B,1,h,w]): after each step the masked entries are x0 noised with ε to the next timestep (x0 after
        the last)."""
        for i, t in enumerate(timesteps):
            tt = t.expand(x.shape[0]).to(self.device)
            eps = self.predict_noise(scheduler.scale_model_input(x, t), tt, emb, scale)
            x = scheduler.step(eps.float(), t, x).prev_sample
            if held is not None:
                x0, noise, mask = held
                after = diffuse(self.alphas_cumprod[timesteps[i + 1]], x0, noise) if i + 1 < len(timesteps) else x0
                x = torch.where(mask, after, x)
        return x

    def sampling_scheduler(self):
        raise NotImplementedError

    def encode_text(self, prompts: list[str]) -> TextEmbedding:
        raise NotImplementedError

    def encode_images(self, rgb: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
