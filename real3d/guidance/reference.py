"""x̃: images pre-sampled from the prior p_φ for each prompt, the "real" side of the discriminator (Eq. 4).

The paper samples 1000 images per prompt in advance. Here the count is a config value; the prompts carry
view suffixes spread over the views the generator renders (azimuths evenly around the object at a fixed
elevation, named by real3d.cameras.view_direction, plus a share of overhead views). The images are cached
on disk as one uint8 .npz per (prior identity, prompt, count, sampler settings), so every later run with the
same prior and prompt reuses them; writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..cameras import view_direction
from ..config import bounded
from ..io import atomic_path
from ..priors.base import Prior
from .prompts import view_prompt

DEFAULT_CACHE = Path("outputs/cache/reference")


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


def reference_prompts(prompt: str, cfg: ReferenceConfig) -> list[str]:
    """`count` view-suffixed prompts: evenly spaced azimuths, the last `overhead_fraction` overhead."""
    n_over = round(cfg.count * cfg.overhead_fraction)
    n_around = cfg.count - n_over
    around = [view_direction(-180.0 + 360.0 * (i + 0.5) / n_around, cfg.elevation) for i in range(n_around)]
    return [view_prompt(prompt, v) for v in around + ["overhead"] * n_over]


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
    prompts = reference_prompts(prompt, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    chunks = []
    for i in tqdm(range(0, len(prompts), cfg.batch), desc=f"x̃ {prompt!r}", disable=not progress, dynamic_ncols=True):
        rgb = prior.sample(prompts[i : i + cfg.batch], 1, cfg.steps, cfg.guidance_scale, gen)
        chunks.append((rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu())
    images = torch.cat(chunks)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, images=images.numpy(), prompts=np.array(prompts))
    return images
