"""How large does each preset draw each object against its ground truth? Height and width ratios per prompt.

    .venv/bin/python benchmarks/cell_scale.py docs/results/fast11 [--presets real3d,dreamfusion]
        [--prompts benchmarks/prompts-single.txt ...]

For every prompt of the lists (default: the single objects and those with a front) and preset, the object's
bounding box in each of the 12 judge views (pixels more than 0.1 from the white background, as
`toyworld.metrics.object_masks`), averaged over the views and the bench folder's seeds, divided by the same
for the GT views: 1.00 is the GT's size, 1.10 an object drawn a tenth too tall or too wide. A shape grown to
the round bound of 0.75 shows about 0.75 / its GT reach (the spheres: 0.75 / 0.70 = 1.07; 1.09 at 64 px).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from real3d.jobs.bench.quality import read_prompts
from real3d.jobs.generate import slug
from real3d.toyworld.metrics import object_masks
from real3d.toyworld.runs import gt_views, load_views

ONE_OBJECT = [Path("benchmarks/prompts-single.txt"), Path("benchmarks/prompts-front.txt")]  # the one-object lists


def add_prompt_lists(p: argparse.ArgumentParser) -> None:
    """--prompts FILE …: the prompt lists a script reads (default: the one-object lists)."""
    p.add_argument("--prompts", type=Path, nargs="+", default=ONE_OBJECT)


def listed_prompts(paths: list[Path]) -> list[str]:
    """The prompts of the lists `paths`, in order."""
    return [q for path in paths for q in read_prompts(path)]


def box_size(views: torch.Tensor) -> torch.Tensor:
    """Mean (height, width) [2] in pixels of the object's bounding box over views [V,H,W,3]; an empty view
    counts 0."""
    sizes = []
    for mask in object_masks(views):  # [H,W]
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        empty = len(rows) == 0
        sizes.append([0.0, 0.0] if empty else [float(rows[-1] - rows[0] + 1), float(cols[-1] - cols[0] + 1)])
    return torch.tensor(sizes).mean(dim=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="bench folder (--out of real3d bench quality)")
    p.add_argument("--presets", default="real3d,dreamfusion")
    add_prompt_lists(p)
    args = p.parse_args()
    presets = args.presets.split(",")
    print(f"| prompt | {' | '.join(f'{q}: height / width ÷ GT' for q in presets)} |\n|---|{'---|' * len(presets)}")
    for prompt in listed_prompts(args.prompts):
        gt = box_size(gt_views(prompt))
        row = []
        for preset in presets:
            folders = sorted((args.folder / "cells" / preset / slug(prompt)).glob("seed-*"))
            if not folders:
                row.append("–")
                continue
            ratio = torch.stack([box_size(load_views(f)) for f in folders]).mean(dim=0) / gt
            row.append(f"{ratio[0]:.2f} / {ratio[1]:.2f}")
        print(f"| {prompt} | {' | '.join(row)} |")


if __name__ == "__main__":
    main()
