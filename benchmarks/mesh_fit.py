"""Too big or too small? Each bench cell's mesh against its GT shape: IoU, precision and recall of the volume.

    .venv/bin/python benchmarks/mesh_fit.py docs/results/fast5 [--presets real3d,dreamfusion] [--seeds 0,1,2]

Reads every finished cell's model.glb (the mesh that metrics.json's mesh IoU was computed on; not committed
with the bench folders, so it needs the cells run on this machine), voxelizes it as
`toyworld.metrics.mesh_metrics` does and prints, per prompt and preset, the mean over seeds of
IoU / precision / recall, then a row of all cells. Cells run since these metrics exist have them in
metrics.json already; `--write` adds them to the metrics.json of older cells (nothing else changes).
Precision < 1 is mesh outside the GT (too big), recall < 1 is GT the mesh misses (too small); a mesh of the
right shape 1.2× too large scores precision 1.2⁻³ = 0.58. `--yaw 10` meshes each cell also turned about the
up axis by 10°, 20°, … 80° and keeps the turn with the best IoU: a prompt without a front fixes no yaw, so a
cube turned 45° answers "a red cube" as well as the GT's (the square's octagon overlap alone costs IoU 0.71).
`--extent` also prints where each mesh reaches, as means over seeds: its bottom and top (z) and its half-width
(the largest |x| or |y|), beside the GT's, which says whether a shape is too tall, too wide or off centre.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import torch

from real3d.export import read_glb
from real3d.io import write_text
from real3d.toyworld.metrics import cell_centres, mesh_metrics
from real3d.toyworld.scene import parse

KEYS = ("mesh_iou", "mesh_precision", "mesh_recall")


def turned(verts: torch.Tensor, degrees: float) -> torch.Tensor:
    """Vertices [V,3] turned about the up axis (+z) by `degrees`."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return verts @ verts.new_tensor([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def iou(fit: dict[str, float]) -> float:
    return fit["mesh_iou"]


def extent(points: torch.Tensor) -> list[float]:
    """[bottom, top, half-width] of points [N,3]: min and max z, and the largest |x| or |y|."""
    return [float(points[:, 2].min()), float(points[:, 2].max()), float(points[:, :2].abs().max())]


def gt_extent(prompt: str, resolution: int = 128) -> list[float]:
    """extent() of the GT shape: the cell centres of a grid over [-1, 1]³ inside its SDF."""
    grid = cell_centres(resolution)  # [R³,3]
    return extent(grid[parse(prompt).sdf(grid) < 0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--presets", default="real3d,dreamfusion")
    parser.add_argument("--seeds", default=None, help="comma-separated (default: every seed found)")
    parser.add_argument(
        "--write", action="store_true", help="also add mesh_precision / mesh_recall to each cell's metrics.json"
    )
    parser.add_argument("--yaw", type=float, default=0.0, help="also try turns about the up axis in this step (°)")
    parser.add_argument("--extent", action="store_true", help="also print each mesh's bottom, top and half-width")
    args = parser.parse_args()
    if args.write and args.yaw > 0:
        parser.error("--write records the cell's own mesh: leave out --yaw")
    presets = args.presets.split(",")
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    fits: dict[str, dict[str, list[dict[str, float]]]] = {}
    reach: dict[str, dict[str, list[list[float]]]] = {}
    for preset in presets:
        for glb in sorted((args.folder / "cells" / preset).glob("*/seed-*/model.glb")):
            if seeds is not None and int(glb.parent.name.removeprefix("seed-")) not in seeds:
                continue
            path = glb.parent / "metrics.json"
            metrics = json.loads(path.read_text())
            mesh = read_glb(glb)
            fit = mesh_metrics(mesh.verts, mesh.faces, metrics["prompt"])
            for turn in [args.yaw * i for i in range(1, math.ceil(90 / args.yaw))] if args.yaw > 0 else []:
                fit = max(fit, mesh_metrics(turned(mesh.verts, turn), mesh.faces, metrics["prompt"]), key=iou)
            if args.write:  # only the two new keys: judge scores and mesh IoU stay as the run wrote them
                metrics |= {k: fit[k] for k in ("mesh_precision", "mesh_recall")}
                write_text(path, json.dumps(metrics, indent=2))
            fits.setdefault(metrics["prompt"], {}).setdefault(preset, []).append(fit)
            reach.setdefault(metrics["prompt"], {}).setdefault(preset, []).append(extent(mesh.verts))

    def cell(rows: list[dict[str, float]]) -> str:
        return " / ".join(f"{statistics.mean(r[k] for r in rows):.2f}" for k in KEYS) if rows else "–"

    print("| prompt | " + " | ".join(f"{p}: IoU / precision / recall" for p in presets) + " |")
    print("|---|" + "---|" * len(presets))
    for prompt, by_preset in fits.items():
        print(f"| {prompt} | " + " | ".join(cell(by_preset.get(p, [])) for p in presets) + " |")
    print("| **all cells** | " + " | ".join(cell([f for b in fits.values() for f in b.get(p, [])]) for p in presets)
          + " |")  # fmt: skip
    if args.extent:
        print("\n| prompt | GT: bottom / top / half-width | " + " | ".join(presets) + " |")
        print("|---|---|" + "---|" * len(presets))
        for prompt, ends in reach.items():
            means = [[statistics.mean(col) for col in zip(*ends[p])] if p in ends else [] for p in presets]
            row = [" / ".join(f"{v:+.2f}" for v in m) or "–" for m in [gt_extent(prompt), *means]]
            print(f"| {prompt} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
