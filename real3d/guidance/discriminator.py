"""The discriminator D of Eq. 4 and its non-saturating losses.

    min_g max_D  E_{x̃∼p_φ(y)}[log D(x̃)] + E_{x'∼g_θ(v)}[log(1 − D(x'))]          (Eq. 4)

D is trained on x̃ (images pre-sampled from the prior, guidance/reference.py) against detached renders x';
θ receives the non-saturating generator loss −log D(x'). DiffAugment (the same random translation, colour
shift and cutout applied to real and fake) and a lazy R1 penalty keep D from memorising a small x̃.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import precision
from ..config import bounded
from ..registry import register
from .reference import object_pixels


def diff_augment(
    x: torch.Tensor, generator: torch.Generator | None = None, translate: float = 0.125, cutout: float = 0.25
) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020) on images x [B,3,H,W] in [−1,1]: brightness/saturation/contrast, a
    random translation with zero padding, and one random cutout square — all differentiable in x."""
    B, _, H, W = x.shape

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    x = x + (rand(B, 1, 1, 1) - 0.5)  # brightness
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (rand(B, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * (rand(B, 1, 1, 1) + 0.5) + mean  # contrast
    # translation: shift each image by up to translate·size pixels (padding with zeros)
    sy, sx = int(H * translate), int(W * translate)
    dy = torch.randint(-sy, sy + 1, (B,), generator=generator)
    dx = torch.randint(-sx, sx + 1, (B,), generator=generator)
    rows = torch.arange(H)[None, :] - dy[:, None]  # [B,H] source row of each target row
    cols = torch.arange(W)[None, :] - dx[:, None]  # [B,W]
    valid = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]  # [B,H,W]
    gathered = x[torch.arange(B)[:, None, None], :, rows.clamp(0, H - 1)[:, :, None], cols.clamp(0, W - 1)[:, None, :]]
    x = gathered.permute(0, 3, 1, 2) * valid[:, None]
    # cutout: zero one square of side cutout·size at a random centre
    ch, cw = int(H * cutout), int(W * cutout)
    cy = torch.randint(0, H, (B,), generator=generator)[:, None, None]
    cx = torch.randint(0, W, (B,), generator=generator)[:, None, None]
    yy, xx = torch.arange(H)[None, :, None], torch.arange(W)[None, None, :]
    keep = ~(((yy - cy).abs() <= ch // 2) & ((xx - cx).abs() <= cw // 2))  # [B,H,W]
    return x * keep[:, None]


@dataclass
class DiscriminatorConfig:
    resolution: int = bounded(32, 8, 512)  # images are resized to this before D
    channels: int = bounded(32, 4, 512)  # width of the first layer
    layers: int = bounded(3, 1, 6)  # hidden layers
    lr: float = bounded(2e-4, 0.0)  # D's own Adam optimiser
    betas: list[float] = bounded([0.5, 0.99], 0.0, 1.0)
    r1_gamma: float = bounded(1.0, 0.0)  # weight of the R1 penalty γ/2·E‖∇D(x̃)‖² (0 = off)
    r1_every: int = bounded(4, 1)  # lazy R1: applied every k D steps, scaled by k
    augment: bool = True  # DiffAugment on real and fake


class Discriminator(nn.Module):
    """D of Eq. 4: `features` (the architecture's own) → mean over pixels → one logit per image. Inputs of any
    size are resized to `resolution`, so the low-resolution NeRF render and the higher-resolution DMTet render
    share one D."""

    steps: torch.Tensor  # D updates so far (a buffer: resumes with the checkpoint)

    def __init__(self, cfg: DiscriminatorConfig, widths: list[int], kernel: int, stride: int) -> None:
        """`features`: one convolution (`kernel`, `stride`) + LeakyReLU per entry of `widths`, from RGB."""
        super().__init__()
        self.cfg = cfg
        mods: list[nn.Module] = []
        for cin, cout in zip([3, *widths], widths):
            mods += [nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - stride) // 2)]
            mods += [nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*mods)
        self.head = nn.Linear(widths[-1], 1)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, rgb: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits [B] of D for images rgb [B,H,W,3] in [0,1] (D(x) = sigmoid(logit))."""
        x = rgb.permute(0, 3, 1, 2) * 2 - 1
        if x.shape[-1] != self.cfg.resolution or x.shape[-2] != self.cfg.resolution:
            x = F.interpolate(x, size=(self.cfg.resolution,) * 2, mode="bilinear", align_corners=False, antialias=True)
        if self.cfg.augment and self.training:
            x = diff_augment(x, generator)
        with precision.autocast(x.device):
            return self.head(self.pool(self.features(x), x))[:, 0].float()

    def pool(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Features [B,C,h,w] of images x [B,3,H,W] → [B,C]: their mean over the image."""
        return feats.mean((2, 3))

    def generator_loss(self, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L_adv for θ (Eq. 4, non-saturating form): −log D(x') averaged over renders x' [B,H,W,3]."""
        return F.softplus(-self(fake, generator)).mean()

    def update(
        self, real: torch.Tensor, fakes: list[torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """One ascent step of D on Eq. 4: real x̃ [B,H,W,3] against detached renders (any sizes)."""
        real = real.detach().requires_grad_(self.cfg.r1_gamma > 0)
        real_logits = self(real, generator)
        fake_logits = torch.cat([self(f.detach(), generator) for f in fakes])
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # −Eq. 4
        stats = {
            "d_loss": loss.item(),
            "d_real": torch.sigmoid(real_logits).mean().item(),
            "d_fake": torch.sigmoid(fake_logits).mean().item(),
        }
        if self.cfg.r1_gamma > 0 and self.steps % self.cfg.r1_every == 0:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            r1 = grad.square().flatten(1).sum(1).mean()
            loss = loss + 0.5 * self.cfg.r1_gamma * self.cfg.r1_every * r1
            stats["r1"] = r1.item()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return stats


@register("discriminator", "conv")
class ConvDiscriminator(Discriminator):
    """A small strided conv net (4×4 kernels, stride 2, width doubling per layer): it sees shapes and sizes as
    well as colours, the paper's D."""

    Config = DiscriminatorConfig

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__(cfg, [cfg.channels * 2**i for i in range(cfg.layers)], kernel=4, stride=2)


@dataclass
class PixelDiscriminatorConfig(DiscriminatorConfig):
    lr: float = bounded(2e-3, 0.0)
    augment: bool = False  # DiffAugment's colour shifts would hide the colours, all that this D sees
    object_only: bool = False  # average over the object's pixels only (more than 0.1 from a white background)


@register("discriminator", "pixel")
class PixelDiscriminator(Discriminator):
    """A per-pixel D (1×1 convolutions: an MLP on each pixel's colour, its logits averaged over the image): it
    can tell the colours of the renders from those of x̃. Averaged over the whole image it also reads the share
    of object pixels against the background, and so the object's size; with `object_only` the mean is over the
    pixels more than 0.1 from white (a mask held constant: no gradient moves a pixel into or out of it), so D
    reads the object's colours alone and leaves its shape and size to SDS."""

    Config = PixelDiscriminatorConfig
    cfg: PixelDiscriminatorConfig

    def __init__(self, cfg: PixelDiscriminatorConfig) -> None:
        super().__init__(cfg, [cfg.channels] * cfg.layers, kernel=1, stride=1)

    def pool(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The mean of features [B,C,h,w] over the image, or with `object_only` over its object's pixels."""
        if not self.cfg.object_only:
            return super().pool(feats, x)
        mask = object_pixels((x.permute(0, 2, 3, 1) + 1) / 2)[:, None].to(feats.dtype)  # [B,1,H,W]: x in [−1,1]
        return (feats * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1.0)
