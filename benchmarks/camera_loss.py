"""How much does a view-conditioned prior's denoising loss (Eq. 1) owe to the camera? The size of its gradient.

    .venv/bin/python benchmarks/camera_loss.py --weights outputs/prior/view3-prior
        [--data outputs/prior/data-32px-n65536-seed7.npz] [-n 512] [--seed 0]

Takes the n training images of objects with a front feature ("with a face / door / handle") and scores ε_φ on
them at 5 noise levels with the same noise, given (a) their own camera, (b) the mirrored camera (azimuth −φ:
the feature on the other side), (c) no camera (all zeros), each with the caption as trained (view word) and
without it (bare, as `view_word_dropout` gives it). If the prior reads the camera, (a) is lower than (b) and
(c); the gap is the share of the loss that the camera's layers can learn from. A text-only prior scores the
three the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from real3d.cameras import view_code, without_view
from real3d.priors.embedded import EmbeddedPrior

LEVELS = (50, 200, 400, 600, 800)  # DDPM steps t of the 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, required=True, help="a view-conditioned prior's folder")
    p.add_argument("--data", type=Path, default=Path("outputs/prior/data-32px-n65536-seed7.npz"))
    p.add_argument("-n", type=int, default=512, help="images with a front feature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prior = EmbeddedPrior.from_pretrained(args.weights)
    data = np.load(args.data)
    captions = data["captions"].tolist()
    chosen = [i for i, c in enumerate(captions) if " with a " in c and " next to " not in c][: args.n]
    x0 = torch.from_numpy(data["images"][chosen]).permute(0, 3, 1, 2).float() / 127.5 - 1  # [n,3,r,r]
    azimuth, elevation = (torch.from_numpy(data["views"][chosen, k]) for k in (0, 1))
    cameras = {
        "own camera": view_code(azimuth, elevation),
        "mirrored camera": view_code(-azimuth, elevation),
        "no camera": torch.zeros(len(chosen), 5),
    }
    worded = prior.encode_text([captions[i] for i in chosen]).cond
    bare = prior.encode_text([without_view(captions[i]) for i in chosen]).cond
    alphas = prior.noise_scheduler.alphas_cumprod
    gen = torch.Generator().manual_seed(args.seed)
    eps = torch.randn(x0.shape, generator=gen)
    noised = {t: alphas[t].sqrt() * x0 + (1 - alphas[t]).sqrt() * eps for t in LEVELS}  # Eq. 1's x_t, same ε

    def error(t: int, context: torch.Tensor, view: torch.Tensor) -> float:
        """Mean squared error of ε̂ at step t over the chosen images, in batches of 128."""
        steps, total = torch.full((len(chosen),), t), 0.0
        for b in torch.arange(len(chosen)).split(128):
            eps_hat = prior.denoiser(noised[t][b], steps[b], context[b], view[b])
            total += float(F.mse_loss(eps_hat, eps[b], reduction="sum"))
        return total / eps.numel()

    print(f"{len(chosen)} images with a front feature; mean squared error of ε̂ (×1000) at DDPM step t\n")
    print("| caption | camera | " + " | ".join(f"t={t}" for t in LEVELS) + " |")
    print("|---|---|" + "---|" * len(LEVELS))
    with torch.no_grad():
        for name, context in (("with view word", worded), ("bare", bare)):
            for label, view in cameras.items():
                cells = [1000 * error(t, context, view) for t in LEVELS]
                print(f"| {name} | {label} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
