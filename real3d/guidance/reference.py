"""x̃: images pre-sampled from the prior p_φ for each prompt, the "real" side of the discriminator (Eq. 4).

The paper samples 1000 images per prompt in advance. Here the count is a config value; the prompts carry
view suffixes spread over the views the generator renders (azimuths evenly around the object at a fixed
elevation, named by real3d.cameras.view_direction, plus a share of overhead views); a view-conditioned prior
also gets each one's camera. The images are cached on disk as one uint8 .npz per (prior identity, prompt,
count, sampler settings), so every later run with the same prior and prompt reuses them; writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..cameras import VIEW_WORDS, view_code, view_direction
from ..config import bounded
from ..io import atomic_path
from ..priors.base import Prior
from .prompts import view_prompt

DEFAULT_CACHE = Path("outputs/cache/reference")
ColourPull = Literal["match", "solid"]  # colour_matching_loss: the colour itself, or a faint one's distance from white
OVERHEAD_ELEVATION = 75.0  # degrees: the overhead views of x̃ (the toy world's highest cameras)


@dataclass
class ReferenceConfig:
    count: int = bounded(1000, 1)  # images per prompt (the paper: 1000)
    steps: int = bounded(20, 1)  # sampler steps
    guidance_scale: float = bounded(4.0, 1.0)
    elevation: float = bounded(15.0, -89.0, 89.0)  # elevation of the around-the-object views
    overhead_fraction: float = bounded(0.1, 0.0, 1.0)
    batch: int = bounded(100, 1)
    seed: int = 0
    cache_dir: str = str(DEFAULT_CACHE)


def reference_views(cfg: ReferenceConfig) -> torch.Tensor:
    """The `count` cameras of x̃, (azimuth, elevation) in degrees [count,2]: evenly spaced azimuths at
    cfg.elevation, then the last `overhead_fraction` evenly spaced at OVERHEAD_ELEVATION."""
    n_over = round(cfg.count * cfg.overhead_fraction)
    n_around = cfg.count - n_over

    def ring(n: int, elevation: float) -> torch.Tensor:
        azimuth = -180.0 + 360.0 * (torch.arange(n, dtype=torch.float64) + 0.5) / max(n, 1)
        return torch.stack([azimuth, torch.full((n,), elevation, dtype=torch.float64)], -1)

    return torch.cat([ring(n_around, cfg.elevation), ring(n_over, OVERHEAD_ELEVATION)]).float()


def reference_prompts(prompt: str, cfg: ReferenceConfig) -> list[str]:
    """The view-suffixed prompt of each camera of `reference_views` (DreamFusion's view word)."""
    return [view_prompt(prompt, view_direction(a, e)) for a, e in reference_views(cfg).tolist()]


def cache_path(prior: Prior, prompt: str, cfg: ReferenceConfig) -> Path:
    """The cache file of (prior identity, prompt, count and sampler settings)."""
    key = {
        "prior": prior.identity,
        "prompt": prompt,
        **{k: v for k, v in asdict(cfg).items() if k not in ("batch", "cache_dir")},
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cfg.cache_dir) / f"{digest}.npz"


def reference_images(prior: Prior, prompt: str, cfg: ReferenceConfig, progress: bool = True) -> torch.Tensor:
    """x̃ for `prompt`: uint8 [count,H,W,3], sampled once and read back from the cache afterwards."""
    path = cache_path(prior, prompt, cfg)
    if path.exists():
        return torch.from_numpy(np.load(path)["images"])
    prompts, views = reference_prompts(prompt, cfg), reference_views(cfg)
    codes = view_code(views[:, 0], views[:, 1])  # [count,5]: a view-conditioned prior samples each at its camera
    gen = torch.Generator().manual_seed(cfg.seed)
    chunks = []
    for i in tqdm(range(0, len(prompts), cfg.batch), desc=f"x̃ {prompt!r}", disable=not progress, dynamic_ncols=True):
        batch = slice(i, i + cfg.batch)
        rgb = prior.sample(prompts[batch], 1, cfg.steps, cfg.guidance_scale, gen, views=codes[batch])
        chunks.append((rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu())
    images = torch.cat(chunks)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, images=images.numpy(), prompts=np.array(prompts))
    return images


def object_pixels(rgb: torch.Tensor) -> torch.Tensor:
    """Mask [B,H,W] of the object's pixels in views rgb [B,H,W,3] in [0,1] on a white background: more than 0.1
    from white in some channel. Held constant: no gradient moves a pixel into or out of it."""
    return (1 - rgb.detach()).amax(-1) > 0.1


def eroded(mask: torch.Tensor) -> torch.Tensor:
    """The pixels of mask [B,H,W] whose 8 neighbours are in it too (an erosion by one pixel)."""
    return -F.max_pool2d(-mask.float()[:, None], 3, 1, 1)[:, 0] > 0.5


def inner_object_pixels(rgb: torch.Tensor) -> torch.Tensor:
    """`object_pixels` [B,H,W] whose 8 neighbours are object pixels too: an edge pixel, part background, is left
    out."""
    return eroded(object_pixels(rgb))


def object_colour(rgb: torch.Tensor) -> torch.Tensor:
    """Mean colour [3] of the inner object pixels of views rgb [B,H,W,3]; white where no view has any."""
    mask = inner_object_pixels(rgb)
    if not bool(mask.any()):
        return rgb.new_ones(3)
    return rgb[mask].mean(0)


def silhouette_aspect(images: torch.Tensor) -> float:
    """The median over views rgb [B,H,W,3] in [0,1] of the object's height over its width, each as the root of
    the second moment of its `object_pixels` about their centroid, down the rows and across the columns (1: as
    tall as wide; blur adds to both, so a blurred sample reads nearer 1). 1.0 where no view has an object."""
    mask = object_pixels(images).float()  # [B,H,W]
    h, w = mask.shape[1:]
    count = mask.sum((1, 2))  # [B]
    keep = count > 0
    if not bool(keep.any()):
        return 1.0
    mask, count = mask[keep], count[keep]

    def spread(profile: torch.Tensor, n: int) -> torch.Tensor:  # profile [B,n]: object pixels per row (column)
        pos = torch.arange(n, dtype=mask.dtype)
        mean = (profile * pos).sum(-1) / count
        return ((profile * (pos - mean[:, None]) ** 2).sum(-1) / count).sqrt()

    rows, cols = spread(mask.sum(2), h), spread(mask.sum(1), w)  # [B]
    return float((rows / cols.clamp(min=0.5)).median())


def reference_aspect(images: torch.Tensor, cfg: ReferenceConfig) -> float:
    """`silhouette_aspect` of x̃ uint8 [count,H,W,3] (drawn at `reference_views(cfg)`) over its views around the
    object, at cfg.elevation: how many times as tall as wide the prior draws it (the overhead views left out)."""
    around = reference_views(cfg)[:, 1] == cfg.elevation  # [count]
    return silhouette_aspect(images[around].float() / 255)


def object_colours_by_view(images: torch.Tensor, cfg: ReferenceConfig) -> torch.Tensor:
    """x̃'s mean inner object colour per view word of VIEW_WORDS [4,3], from images [count,H,W,3] in [0,1]
    drawn at `reference_views(cfg)`: a front view of "a cube with a door" shows the door and a back view does
    not. A view word without images of its own gets the mean over all of them."""
    words = [view_direction(a, e) for a, e in reference_views(cfg).tolist()]
    every = object_colour(images)
    picked = [[i for i, w in enumerate(words) if w == word] for word in VIEW_WORDS]
    return torch.stack([object_colour(images[torch.tensor(ids)]) if ids else every for ids in picked])


def colour_matching_loss(fake: torch.Tensor, real_colour: torch.Tensor, pull: ColourPull = "match") -> torch.Tensor:
    """Feature matching (Salimans et al. 2016) on one fixed feature, a pixel's colour, over the inner object
    pixels of the renders fake [B,H,W,3] against x̃'s mean colour real_colour [3]; 0 where a render shows no
    object inside. Only pixels inside the object carry the gradient, so no edge pixel is pushed to a full colour
    (what widened shapes under the pixel D); through a faint object's inner pixels it still reaches the density
    (docs/results.md, twenty-first round: the capsule grows).
    - "match": ||E c(x') − E c(x̃)||², the colour itself;
    - "solid": max(0, ||1 − E c(x̃)|| − ||1 − E c(x')||)², only a render whose colour lies nearer white than x̃'s,
      a faint fog, is pulled, and only away from white along its own hue: a feature, a hue or a shade that x̃
      and the render tell apart is left alone."""
    mask = inner_object_pixels(fake)
    if not bool(mask.any()):
        return fake.sum() * 0.0
    colour = fake[mask].mean(0)
    if pull == "solid":
        return F.relu((1 - real_colour).norm() - (1 - colour).norm()).square()
    return (colour - real_colour).square().sum()
