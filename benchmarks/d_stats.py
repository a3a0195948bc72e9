"""Can the discriminator tell the renders from x̃? D's own numbers from the cells' training logs.

    .venv/bin/python benchmarks/d_stats.py docs/results/fast11 [--preset real3d] [--after 300]

For every finished cell of the preset, the mean over the logged steps after `--after` of D's loss (−Eq. 4; log 4
= 1.386 when D is at chance), D(x̃) and D(x'), then the mean per prompt group and over all cells. D(x̃) well
above D(x') means D separates them; both at 0.5 means its gradient on θ carries nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from real3d.jobs.bench.quality import category

KEYS = ("d_loss", "d_real", "d_fake")


def cell_means(log: Path, after: int) -> dict[str, float] | None:
    """Mean of each of KEYS over the log rows [one JSON object a line] past step `after`; None without D."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    rows = [r for r in rows if "d_loss" in r and r["step"] > after]
    return {k: statistics.mean(r[k] for r in rows) for k in KEYS} if rows else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="bench folder (--out of real3d bench quality)")
    p.add_argument("--preset", default="real3d")
    p.add_argument("--after", type=int, default=300, help="only the steps past this one")
    args = p.parse_args()
    groups: dict[str, list[dict[str, float]]] = {}
    for log in sorted((args.folder / "cells" / args.preset).glob("*/seed-*/train.log")):
        means = cell_means(log, args.after)
        if means is not None:
            prompt = json.loads((log.parent / "metrics.json").read_text())["prompt"]
            groups.setdefault(category(prompt), []).append(means)
    if not groups:
        raise SystemExit(f"no cell of {args.preset} in {args.folder} logged a discriminator step")
    groups["all"] = [m for cells in groups.values() for m in cells]
    print(f"{args.preset} in {args.folder}, steps after {args.after}\n")
    print("| cells | n | D loss (chance 1.386) | D(x̃) | D(x') |\n|---|---:|---:|---:|---:|")
    for name, cells in groups.items():
        mean = {k: statistics.mean(c[k] for c in cells) for k in KEYS}
        print(f"| {name} | {len(cells)} | {mean['d_loss']:.3f} | {mean['d_real']:.3f} | {mean['d_fake']:.3f} |")


if __name__ == "__main__":
    main()
