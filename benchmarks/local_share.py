"""How a run of a laid-out prompt shares its local steps between the objects: one `real3d generate` per seed
(2 threads), counting what `Real3DSystem.local_object` returns on each of its steps, with the run's judge
score. Shows what `system.local_order` changes: drawn at random, a seed's stream can give one object of a
pair far fewer steps than the other; `alternate` gives each its share.

    .venv/bin/python benchmarks/local_share.py "a green cylinder on top of a yellow cube" --seeds 0,4 \
        [system.local_order=random ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import torch

from real3d.jobs.generate import generate
from real3d.system import Real3DSystem


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("prompt")
    p.add_argument("--seeds", default="0")
    p.add_argument("--preset", default="real3d")
    p.add_argument("--cache", default="docs/results/fast12/cache", help="reference.cache_dir (x̃ already drawn)")
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args()
    torch.set_num_threads(2)
    drawn: list[int | None] = []
    local_object = Real3DSystem.local_object

    def counted(self: Real3DSystem, step: int, generator: torch.Generator) -> int | None:
        drawn.append(k := local_object(self, step, generator))
        return k

    Real3DSystem.local_object = counted  # type: ignore[method-assign]
    print("| seed | object 0 | object 1 | the scene | judge |\n|---|---:|---:|---:|---:|")
    for seed in map(int, args.seeds.split(",")):
        drawn.clear()
        with tempfile.TemporaryDirectory() as out:
            overrides = [f"reference.cache_dir={args.cache}", *args.overrides]
            generate(args.prompt, args.preset, seed=seed, out=out, overrides=overrides, progress=False)
            judge = json.loads((Path(out) / "metrics.json").read_text())["judge_score"]
        n = Counter(drawn)
        print(f"| {seed} | {n[0]} | {n[1]} | {n[None]} | {judge:.2f} |")


if __name__ == "__main__":
    main()
