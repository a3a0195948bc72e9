"""Does the prior see a front in its redraw of a run's front view? The gate of the render anchors.

`system.anchor_source: render` redraws θ's front view with the prompt (SDEdit, `DiffusionPrior.redraw`) and
keeps the redraw the prior finds most "…, front view" against "…, back view" (`guidance.anchor.view_margins`);
below `system.anchor_margin` the run draws no anchors. Two ways to read that margin:

    .venv/bin/python benchmarks/redraw_margins.py [--cells docs/results/fast13] [--seed 0] [--strength 0.5]
        [--hold-background]
    .venv/bin/python benchmarks/redraw_margins.py --runs outputs/sdgF

The first takes each finished cell's front view (views.png, azimuth 0) of the prompts with a front and the single
objects, redraws it `--candidates` times and prints the margin of the view itself, the best redraw's and the
judge's P(feature) on that redraw: a prompt that names no front feature should stay near 0. With
`--hold-background` the white background is held (`redraw(keep=…)`) and only the object's pixels are
redrawn. The second reads the front anchor each run drew (its checkpoint) and prints its margin, the number
the gate compared.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from real3d.guidance.anchor import view_margins
from real3d.guidance.prompts import PositionalPrompt
from real3d.jobs.bench.quality import read_prompts
from real3d.jobs.generate import slug
from real3d.priors.embedded import EmbeddedPrior
from real3d.toyworld.judge import load_judge
from real3d.toyworld.metrics import feature_seen
from real3d.toyworld.runs import VIEW_SIZE
from real3d.toyworld.scene import parse

PROMPT_FILES = ("benchmarks/prompts-front.txt", "benchmarks/prompts-single.txt")
BACKGROUND = 0.9  # --hold-background: a pixel whose every channel is above this is the white background


def front_view(cell: Path) -> torch.Tensor:
    """The first view [1,H,W,3] of a cell's views.png (azimuth 0: the front)."""
    sheet = np.asarray(Image.open(cell / "views.png").convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(sheet[:, :VIEW_SIZE].copy())[None]


def from_cells(prior: EmbeddedPrior, folder: Path, seed: int, strength: float, candidates: int, hold: bool) -> None:
    judge = load_judge()
    held = ", the background held (`redraw(keep=…)`)" if hold else ""
    print(f"{candidates} redraws a view from noise {strength}{held}, the cells' seed {seed}\n")
    print("| prompt | the view's margin | best redraw's margin | P(feature) on it |")
    print("|---|---:|---:|---:|")
    for prompt in [p for f in PROMPT_FILES for p in read_prompts(Path(f))]:
        view = front_view(folder / "cells" / "real3d" / slug(prompt) / f"seed-{seed}")
        small = F.interpolate(view.permute(0, 3, 1, 2), size=prior.resolution, mode="area").permute(0, 2, 3, 1)
        positional, views = PositionalPrompt(prior, prompt), torch.tensor([[0.0, 15.0]]).expand(candidates, 2)
        generator = torch.Generator().manual_seed(seed)
        keep = (small.amin(-1) > BACKGROUND).expand(candidates, -1, -1) if hold else None  # [K,r,r]: white
        redrawn = prior.redraw(
            small.expand(candidates, -1, -1, -1),
            positional(views[:, 0], views[:, 1]),
            strength,
            generator=generator,
            keep=keep,
        )
        images = torch.cat([small, redrawn])  # [1+K,r,r,3]
        margins = view_margins(
            prior, positional, images, torch.tensor([[0.0, 15.0]]).expand(len(images), 2), 0.0, seed=seed
        )
        best = int(margins[1:].argmax()) + 1
        upsized = F.interpolate(images[best : best + 1].permute(0, 3, 1, 2), size=VIEW_SIZE, mode="bilinear")
        shown = feature_seen(judge.probs(upsized.permute(0, 2, 3, 1)), parse(prompt)).item()
        print(f"| {prompt} | {margins[0]:+.4f} | {margins[best]:+.4f} | {shown:.2f} |")


def from_runs(prior: EmbeddedPrior, folder: Path) -> None:
    print("| prompt | seed | anchored | the front anchor's margin |")
    print("|---|---:|---|---:|")
    for path in sorted(folder.glob("cells/*/*/seed-*/checkpoint.pt")):
        ckpt = torch.load(path, weights_only=False)
        if ckpt.get("anchors") is None or not len(anchors := ckpt["anchors"][0]):
            continue
        cfg = ckpt["config"]
        elevation = sum(cfg["camera"]["elevation_range"]) / 2
        positional = PositionalPrompt(prior, cfg["prompt"])
        view = torch.tensor([[0.0, elevation]])
        margin = float(view_margins(prior, positional, anchors[:1].float(), view, 0.0, seed=cfg["seed"]))
        anchored = margin >= cfg["system"]["anchor_margin"]  # the gate, as the run applied it
        print(f"| {cfg['prompt']} | {cfg['seed']} | {anchored} | {margin:+.4f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group()
    source.add_argument("--cells", type=Path, default=Path("docs/results/fast13"), help="finished bench cells")
    source.add_argument("--runs", type=Path, help="bench cells run with system.anchor_source=render")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strength", type=float, default=0.5, help="SDEdit's noise, t / T (system.anchor_strength)")
    p.add_argument("--candidates", type=int, default=8, help="redraws a view (system.anchor_candidates)")
    p.add_argument("--hold-background", action="store_true", help="redraw the object's pixels alone")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prior = EmbeddedPrior.from_pretrained(None)
    with torch.no_grad():
        if args.runs:
            from_runs(prior, args.runs)
        else:
            from_cells(prior, args.cells, args.seed, args.strength, args.candidates, args.hold_background)


if __name__ == "__main__":
    main()
