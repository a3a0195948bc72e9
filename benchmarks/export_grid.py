"""The finished cells of a bench, exported again on other tet grids and scored: is the judged mesh the one trained?

    .venv/bin/python benchmarks/export_grid.py --cells outputs/bench-fast3/cells/real3d --seed 0 [--grids 32,64]

Training draws x'2 through the DMTet renderer on its deformed grid (`explicit.grid_resolution`, 32 in the fast
presets); the export extracts τ = ε on `run.export_grid` (64), an undeformed finer grid whenever the two differ.
For every cell `PROMPT/seed-S/` with a checkpoint, this rebuilds θ from it, writes the bench's outputs (vertex
colours, the 12 judge views, metrics) for each grid into a temporary folder, and prints the judge score, mesh
IoU and silhouette IoU per prompt and their means: the grid the cell ran with reproduces its metrics.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import torch
from reexport import export_cell  # benchmarks/reexport.py (scripts run from benchmarks/)

from real3d import config as config_lib
from real3d.jobs.generate import GenerateConfig

COLUMNS = ("judge_score", "mesh_iou", "silhouette_iou")


def rescore(cell: Path, grid: int) -> dict[str, float]:
    """The cell's θ exported on `grid` (the explicit renderer's deformed grid when the sizes match) and scored."""
    cfg = config_lib.load(GenerateConfig, str(cell / "config.yaml"))
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, export_grid=grid, export_files=False))
    with tempfile.TemporaryDirectory() as tmp:
        metrics = export_cell(cfg, cell / "checkpoint.pt", Path(tmp), {}, 0.0)
    return {k: float(metrics[k]) for k in COLUMNS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=Path, required=True, help="a preset's folder of bench cells (…/cells/PRESET)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grids", default="32,64", help="comma-separated tet grid sizes (32, 64, 128)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    grids = [int(g) for g in args.grids.split(",")]
    cells = sorted(c for c in args.cells.glob(f"*/seed-{args.seed}") if (c / "checkpoint.pt").exists())
    if not cells:
        raise SystemExit(f"no cells with a checkpoint under {args.cells}/*/seed-{args.seed}")
    header = " | ".join(f"{c} @ {g}" for g in grids for c in ("judge", "mesh IoU", "silhouette IoU"))
    print(f"| prompt | {header} |\n|---|" + "---:|" * (3 * len(grids)))
    rows = []
    for cell in cells:
        row = [rescore(cell, g) for g in grids]
        rows.append(row)
        values = " | ".join(f"{r[k]:.3f}" for r in row for k in COLUMNS)
        print(f"| {cell.parent.name} | {values} |", flush=True)
    means = " | ".join(f"**{statistics.fmean(r[i][k] for r in rows):.3f}**" for i in range(len(grids)) for k in COLUMNS)
    print(f"| mean of {len(rows)} | {means} |")


if __name__ == "__main__":
    main()
