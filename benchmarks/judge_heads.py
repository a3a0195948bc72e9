"""What the judge reads in a finished run's views: each head's two likeliest classes, averaged over the 12
turntable views of views.png (`runs.load_views`, `Judge.probs`). Says which part of a prompt a low judge score
comes from: a wrong shape of the second object, a wrong colour, a missing relation.

    .venv/bin/python benchmarks/judge_heads.py RUN_DIR [RUN_DIR ...]   (a generate --out or a bench cell folder)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from real3d.toyworld.judge import HEADS, load_judge
from real3d.toyworld.runs import load_views


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished run folders (each with views.png)")
    p.add_argument("--weights", default=None, help="judge folder (default: the shipped weights/)")
    args = p.parse_args()
    torch.set_num_threads(1)
    judge = load_judge() if args.weights is None else load_judge(args.weights)
    for folder in args.runs:
        probs = judge.probs(load_views(folder))  # {head: [12,classes]}
        print(folder)
        for head, p_views in probs.items():
            mean = p_views.mean(0)
            top = mean.argsort(descending=True)[:2].tolist()
            print(f"  {head}: " + ", ".join(f"{HEADS[head][i]} {mean[i]:.2f}" for i in top))


if __name__ == "__main__":
    main()
