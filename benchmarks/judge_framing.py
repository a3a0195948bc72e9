"""How the judge's score falls as a GT scene grows past the frame: each prompt's GT magnified k× about the
origin, rendered at the judge's turntable (`runs.CAMERAS`) and scored (`metrics.judge_score`).

    .venv/bin/python benchmarks/judge_framing.py [--weights weights] [--scales 1,1.2,1.35,1.5,1.8]

A box-filling generator output is the far end of this table; a judge that scores every column alike cannot
see it (the stage-8 judge did not: its box-filling spheres scored 0.70–0.95).
"""

from __future__ import annotations

import argparse
import random

from real3d.toyworld import metrics
from real3d.toyworld.judge import load_judge
from real3d.toyworld.render import render
from real3d.toyworld.runs import CAMERAS
from real3d.toyworld.scene import jitter, parse

PROMPTS = (
    "a blue sphere",
    "a red cube",
    "a green cylinder",
    "a purple torus",
    "a yellow cone",
    "an orange capsule",
    "a red cube on top of a blue sphere",
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="weights", help="folder of the judge")
    p.add_argument("--scales", default="1,1.2,1.35,1.5,1.8", help="magnifications k, comma-separated")
    args = p.parse_args()
    judge, scales = load_judge(args.weights), [float(k) for k in args.scales.split(",")]
    print("| prompt | " + " | ".join(f"k = {k:g}" for k in scales) + " |\n|---" + "|---:" * len(scales) + "|")
    for prompt in PROMPTS:
        scene = parse(prompt)
        scores = []
        for k in scales:
            grown = jitter(scene, random.Random(0), scale=(k, k), shift=0.0, yaw=0.0)
            scores.append(metrics.judge_score(judge, render(grown, CAMERAS, 64, 64, supersample=2).rgb, prompt)[0])
        print(f"| {prompt} | " + " | ".join(f"{s:.2f}" for s in scores) + " |")


if __name__ == "__main__":
    main()
