"""How large are the discriminator's reals? x̃'s object height and width against the GT's, per prompt.

    .venv/bin/python benchmarks/reference_size.py [key.sub=value ...] [--prompts benchmarks/prompts-single.txt]

For each prompt, the x̃ a `real3d` run with these overrides trains D against (read from the run's x̃ cache,
`reference.cache_dir`, or sampled and cached there as a run would), then the object's bounding box in each
image (`cell_scale.box_size`: pixels more than 0.1 from white), averaged over the images, divided by the same
for the 12 GT judge views brought to x̃'s resolution. 1.00: x̃ shows the object at its GT size; the prior's own
training data shows it at about that size (`object_size.py`). The x̃ ring is at 15° elevation and the judge's
views at theirs, so a flat shape (the torus) reads taller in x̃ than in the GT. The last two columns are the mean
colour of the object's pixels (the same 0.1 from white) in x̃ and in the GT views: the colour a discriminator
trained on x̃ pulls toward.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from cell_scale import box_size  # benchmarks/cell_scale.py (scripts run from benchmarks/ on sys.path)

from real3d import precision
from real3d.guidance.reference import reference_images
from real3d.jobs.bench.quality import read_prompts
from real3d.jobs.generate import run_config
from real3d.system import build_prior
from real3d.toyworld.metrics import object_masks
from real3d.toyworld.runs import gt_views


def object_colour(rgb: torch.Tensor) -> str:
    """'r, g, b': the mean of the object pixels (`object_masks`: more than 0.1 from white) of images rgb [N,h,w,3]."""
    pixels = rgb[object_masks(rgb)]  # [P,3]
    return ", ".join(f"{c:.2f}" for c in pixels.mean(0).tolist())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*")
    p.add_argument("--prompts", type=Path, default=Path("benchmarks/prompts-single.txt"))
    args = p.parse_args()
    torch.set_num_threads(2)
    print(f"overrides: {' '.join(args.overrides) or 'none'}")
    print("| prompt | x̃ height ÷ GT | x̃ width ÷ GT | x̃ colour | GT colour |\n|---|---:|---:|---|---|")
    ratios = []
    for prompt in read_prompts(args.prompts):
        cfg = run_config("real3d", prompt, args.overrides)
        with precision.use(cfg.precision):  # as a run samples them
            x_ref = reference_images(build_prior(cfg), prompt, cfg.reference).float() / 255  # [N,h,w,3]
        size = x_ref.shape[1]
        gt = F.interpolate(gt_views(prompt).permute(0, 3, 1, 2), size=(size, size), mode="bilinear", antialias=True)
        ratio = box_size(x_ref) / box_size(gt.permute(0, 2, 3, 1))
        ratios.append(ratio)
        colours = [object_colour(x_ref), object_colour(gt.permute(0, 2, 3, 1))]
        print(f"| {prompt} | {ratio[0]:.2f} | {ratio[1]:.2f} | {' | '.join(colours)} |", flush=True)
    mean = torch.stack(ratios).mean(0)
    print(f"| mean | {mean[0]:.2f} | {mean[1]:.2f} | | |")


if __name__ == "__main__":
    main()
