"""How big is the object? Share of the frame it covers, for ground truth, the prior's training data, the prior's
own samples and generated runs (issue #19: spheres that grow into the bounding box).

    python benchmarks/object_size.py [RUN_FOLDER ...]   # e.g. outputs/bench-fast/cells/real3d/a-blue-sphere/seed-0

Prints a table: per single-object prompt, the object pixels' share of the frame (more than 0.1 from the white
background, as toyworld.metrics.object_masks) in
- the 12 GT judge views (at 32 px, the prior's resolution),
- the prior's training data: GT renders of random single objects of that shape (toy_dataset, 64 px),
- the prior's own samples of "PROMPT, front view" (10 DDIM steps, as x̃ is drawn; 8 samples, seed 0),
- each run folder given whose prompt it is (its views.png).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from real3d.priors.embedded import EmbeddedPrior
from real3d.toyworld.dataset import DatasetSpec, toy_dataset
from real3d.toyworld.metrics import object_masks
from real3d.toyworld.runs import gt_views, load_views

PROMPTS = {"a blue sphere": "sphere", "a red cube": "cube", "a green cylinder": "cylinder", "a yellow cone": "cone"}


def share(rgb: torch.Tensor) -> float:
    return float(object_masks(rgb).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    prior = EmbeddedPrior.from_pretrained()
    data = toy_dataset(DatasetSpec(n=2000, resolution=64, seed=11))
    single = [i for i, s in enumerate(data.scenes) if len(s.objects) == 1]
    runs: dict[str, list[tuple[Path, float]]] = {}
    for folder in args.runs:
        prompt = json.loads((folder / "metrics.json").read_text())["prompt"]
        runs.setdefault(prompt, []).append((folder, share(load_views(folder))))
    print("| prompt | GT views | training data (n) | prior samples | runs |")
    print("|---|---|---|---|---|")
    for prompt, shape in PROMPTS.items():
        gt = gt_views(prompt).permute(0, 3, 1, 2)
        gt32 = F.interpolate(gt, size=(32, 32), mode="bilinear", antialias=True).permute(0, 2, 3, 1)
        same = [i for i in single if data.scenes[i].objects[0].shape == shape]
        train = float(data.masks[same].float().mean() / 255)
        samples = prior.sample([f"{prompt}, front view"], n=8, steps=10, generator=torch.Generator().manual_seed(0))
        shown = ", ".join(f"{f.parent.parent.name} {s:.2f}" for f, s in runs.get(prompt, []))
        print(f"| {prompt} | {share(gt32):.2f} | {train:.2f} ({len(same)}) | {share(samples):.2f} | {shown or '–'} |")


if __name__ == "__main__":
    main()
