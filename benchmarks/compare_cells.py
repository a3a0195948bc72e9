"""One lever against the table it changes: the same bench cells (preset, prompt, seed) of two or more bench
folders, side by side, from their metrics.json.

    .venv/bin/python benchmarks/compare_cells.py docs/results/fast3 outputs/bench-nc [--preset real3d] [--seeds 0]
        [--prompts benchmarks/prompts-single.txt]

Only the (prompt, seed) pairs finished in every folder count, so a lever run on some prompts is held against
exactly those cells of the table; `--prompts` keeps only the prompts of a list (a group over all its seeds).
Prints the means by prompt group (judge score per group, front feature and
Janus on the prompts with a front, mesh and silhouette IoU, colour error, seconds per cell), then the judge
score and mesh IoU of each prompt.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from real3d.jobs.bench.quality import category, read_prompts

COLUMNS = (
    ("judge", "judge ↑", lambda r: r["judge_score"]),
    ("single", "single", lambda r: r["judge_score"] if r["category"] == "single" else None),
    ("front", "with a front", lambda r: r["judge_score"] if r["category"] == "front" else None),
    ("pair", "two objects", lambda r: r["judge_score"] if r["category"] == "pair" else None),
    ("feature", "front feature ↑", lambda r: r.get("front_feature") if r["category"] == "front" else None),
    ("janus", "Janus ↓", lambda r: r["janus"] if r["category"] == "front" else None),
    ("mesh", "mesh IoU ↑", lambda r: r["mesh_iou"]),
    ("mesh_p", "mesh precision", lambda r: r.get("mesh_precision")),
    ("mesh_r", "mesh recall", lambda r: r.get("mesh_recall")),
    ("sil", "silhouette IoU ↑", lambda r: r.get("silhouette_iou")),
    ("colour", "colour error ↓", lambda r: r.get("colour_error")),
    ("s", "s / cell", lambda r: r["seconds"]),
)


def cells(folder: Path, preset: str, seeds: set[int] | None) -> dict[tuple[str, int], dict[str, Any]]:
    """(prompt, seed) → metrics.json (with its prompt group) of the finished cells of `preset` in a bench folder."""
    out = {}
    for path in sorted((folder / "cells" / preset).glob("*/seed-*/metrics.json")):
        m = json.loads(path.read_text())
        if seeds is None or m["seed"] in seeds:
            out[(m["prompt"], m["seed"])] = m | {"category": category(m["prompt"])}
    return out


def mean(values: list[float | None], digits: int = 3) -> str:
    xs = [v for v in values if v is not None]
    return f"{statistics.fmean(xs):.{digits}f}" if xs else "–"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", type=Path, nargs="+", help="bench folders (--out of real3d bench quality)")
    p.add_argument("--preset", default="real3d")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: all that every folder has)")
    p.add_argument("--prompts", type=Path, default=None, help="a prompt list: only its prompts count")
    args = p.parse_args()
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    runs = [cells(f, args.preset, seeds) for f in args.folders]
    common = sorted(set.intersection(*(set(r) for r in runs)))
    if args.prompts is not None:
        listed = set(read_prompts(args.prompts))
        common = [key for key in common if key[0] in listed]
    if not common:
        raise SystemExit(f"no {args.preset} cell is finished in every one of {', '.join(map(str, args.folders))}")
    print(f"{args.preset}: {len(common)} cells finished in every folder\n")
    print(f"| folder | {' | '.join(label for _, label, _ in COLUMNS)} |\n|---|{'---|' * len(COLUMNS)}")
    for folder, run in zip(args.folders, runs):
        rows = [run[k] for k in common]
        values = [mean([get(r) for r in rows], 0 if key == "s" else 3) for key, _, get in COLUMNS]
        print(f"| {folder} | {' | '.join(values)} |")
    names = " | ".join(str(f) for f in args.folders)
    print(f"\n| prompt, seed | judge: {names} | mesh IoU: {names} |\n|---|{'---|' * (2 * len(runs))}")
    for key in common:
        judge = " | ".join(f"{run[key]['judge_score']:.2f}" for run in runs)
        mesh = " | ".join(f"{run[key]['mesh_iou']:.2f}" for run in runs)
        print(f"| {key[0]}, {key[1]} | {judge} | {mesh} |")


if __name__ == "__main__":
    main()
