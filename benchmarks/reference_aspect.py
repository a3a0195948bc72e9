"""How tall does x̃ show each object, against its GT views? The start shape of `system.start_shape: reference`.

    .venv/bin/python benchmarks/reference_aspect.py [key.sub=value ...] [--prompts benchmarks/prompts-single.txt ...]

For each prompt, the x̃ a `real3d` run with these overrides samples (read from its x̃ cache, `reference.cache_dir`,
or sampled and cached there as a run would), its `reference_aspect` (`silhouette_aspect` of its views around the
object: height over width from the second moments of the object pixels, median over views) beside the same of
the 12 GT judge views (at the same 15° elevation), and the start blob's axes `shaped_start` takes from it
(x = y, z; 1, 1: the ball). A prompt of two objects keeps its balls.
"""

from __future__ import annotations

import argparse

import torch
from cell_scale import add_prompt_lists, listed_prompts  # benchmarks/cell_scale.py (scripts run from benchmarks/)

from real3d import precision
from real3d.guidance.reference import reference_aspect, reference_images, silhouette_aspect
from real3d.jobs.generate import run_config
from real3d.system import build_prior, shaped_start
from real3d.toyworld.runs import gt_views


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*")
    add_prompt_lists(p)
    args = p.parse_args()
    torch.set_num_threads(2)
    print(f"overrides: {' '.join(args.overrides) or 'none'}")
    print("| prompt | x̃ height ÷ width | GT height ÷ width | start axes x = y, z |\n|---|---:|---:|---|")
    for prompt in listed_prompts(args.prompts):
        cfg = run_config("real3d", prompt, [*args.overrides, "system.start_shape=reference"])
        with precision.use(cfg.precision):  # as a run samples them
            x_ref = reference_images(build_prior(cfg), prompt, cfg.reference, progress=False)
        axes = shaped_start(cfg, x_ref).field.blob_axes
        aspect, gt = reference_aspect(x_ref, cfg.reference), silhouette_aspect(gt_views(prompt))
        print(f"| {prompt} | {aspect:.2f} | {gt:.2f} | {axes[0]:.2f}, {axes[2]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
