"""What colour does a run draw, against x̃'s and the GT's? The mean over the inner object pixels, as
`system.lambda_colour` matches them.

    .venv/bin/python benchmarks/inner_colour.py BENCH [BENCH ...] [--prompts benchmarks/prompts-single.txt]
        [--preset real3d] [--seed 0] [--set key.sub=value ...]

For each prompt: x̃'s colour (`guidance.reference.object_colour`: pixels more than 0.1 from white whose 8
neighbours are too, so an edge pixel blended with the background is left out), read from the first bench
folder's x̃ cache (`BENCH/cache`) or sampled there as a run with these overrides would; the GT judge views';
and each bench folder's cell (preset, prompt, seed) as its views.png shows it.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from real3d import precision
from real3d.guidance.reference import object_colour, reference_images
from real3d.jobs.bench.quality import read_prompts
from real3d.jobs.cells import Cell
from real3d.jobs.generate import run_config
from real3d.system import build_prior
from real3d.toyworld.runs import gt_views, load_views


def rgb(colour: torch.Tensor) -> str:
    return "(" + ", ".join(f"{c:.2f}" for c in colour.tolist()) + ")"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("benches", nargs="+", type=Path, help="bench folders (their cells/PRESET/PROMPT/seed-S)")
    p.add_argument("--prompts", type=Path, default=Path("benchmarks/prompts-single.txt"))
    p.add_argument("--preset", default="real3d")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="key=value", help="the runs' overrides (x̃'s sampler)")
    args = p.parse_args()
    torch.set_num_threads(2)
    print("| prompt | x̃ | GT | " + " | ".join(str(b) for b in args.benches) + " |")
    print("|---" * (len(args.benches) + 3) + "|")
    prompts = read_prompts(args.prompts)
    prior = build_prior(run_config(args.preset, prompts[0], args.set))  # the prompt does not change the prior
    for prompt in prompts:
        cfg = run_config(args.preset, prompt, args.set)
        reference = dataclasses.replace(cfg.reference, cache_dir=str(args.benches[0] / "cache"))
        with precision.use(cfg.precision):  # as a run samples them
            x_ref = reference_images(prior, prompt, reference, progress=False).float() / 255
        runs = [Cell(args.preset, prompt, args.seed).folder(b) for b in args.benches]
        drawn = [rgb(object_colour(load_views(r))) if (r / "views.png").exists() else "–" for r in runs]
        print(
            f"| {prompt} | {rgb(object_colour(x_ref))} | {rgb(object_colour(gt_views(prompt)))} | "
            + " | ".join(drawn)
            + " |"
        )


if __name__ == "__main__":
    main()
