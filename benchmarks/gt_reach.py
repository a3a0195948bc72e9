"""How far does each prompt's GT object reach from the origin, and how much of it does a round bound keep?

    .venv/bin/python benchmarks/gt_reach.py [--balls 0.70,0.72,0.75] [--prompts benchmarks/prompts-single.txt]

The prompts default to the ten single objects (`--prompts benchmarks/prompts.txt` for all twenty).
For `field.ball`: a single object grown to the bound meshes as the bound, so the bound should be no larger
than the largest GT object. Prints a table: per prompt, the largest |x| of its GT voxels (a 96³ grid over
[−1, 1]³) and the share of its volume inside each ball.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from real3d.jobs.bench.quality import read_prompts
from real3d.toyworld.metrics import cell_centres
from real3d.toyworld.scene import parse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--balls", default="0.70,0.72,0.75", help="comma-separated bound radii")
    p.add_argument("--prompts", type=Path, default=Path("benchmarks/prompts-single.txt"))
    p.add_argument("--grid", type=int, default=96)
    args = p.parse_args()
    balls = [float(b) for b in args.balls.split(",")]
    points = cell_centres(args.grid)  # [G³,3]
    radius = points.norm(dim=-1)  # [G³]
    print("| prompt | reach | " + " | ".join(f"kept by ball {b:.2f}" for b in balls) + " |")
    print("|---|---:|" + "---:|" * len(balls))
    for prompt in read_prompts(args.prompts):
        inside = parse(prompt).sdf(points) < 0  # [G³]
        kept = " | ".join(f"{float((inside & (radius < b)).sum() / inside.sum()):.3f}" for b in balls)
        print(f"| {prompt} | {float(radius[inside].max()):.3f} | {kept} |")


if __name__ == "__main__":
    main()
