"""Would another export make the meshes fit? Each finished cell's θ re-meshed at other levels ε and grids.

    .venv/bin/python benchmarks/export_sweep.py BENCH_FOLDER [--preset real3d] [--seeds 0]
        [--eps 0.1,0.2,0.3,0.4] [--grids 64]

Reads every cell's checkpoint.pt (kept only on the machine that ran the bench; not committed), extracts the
surface τ = ε on an undeformed grid of each size (`export.extract_mesh`, unsmoothed; a bench cell's model.glb
is made at grid 64, smoothed, at ε = 0.1 for real3d) and scores it against the GT shape (`mesh_metrics`).
Prints, per prompt, mesh IoU / precision / recall for each (ε, grid), then the mean IoU over the cells. A field
with no surface at some ε scores 0 there. No training: this asks only whether the trained θ holds a better-fitting
level set.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from real3d.errors import UserError
from real3d.export import extract_mesh
from real3d.model import load_checkpoint
from real3d.toyworld.metrics import mesh_metrics

KEYS = ("mesh_iou", "mesh_precision", "mesh_recall")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--preset", default="real3d")
    p.add_argument("--seeds", default="0", help="comma-separated")
    p.add_argument("--eps", default="0.1,0.2,0.3,0.4", help="levels ε of τ to mesh at")
    p.add_argument("--grids", default="64", help="grid sizes (cells per axis)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    settings = [(float(e), int(g)) for g in args.grids.split(",") for e in args.eps.split(",")]
    seeds = args.seeds.split(",")
    runs = sorted(r for s in seeds for r in (args.folder / "cells" / args.preset).glob(f"*/seed-{s}") if r.is_dir())
    runs = [r for r in runs if (r / "checkpoint.pt").exists()]
    if not runs:
        raise SystemExit(f"no {args.preset} cell of seeds {args.seeds} with a checkpoint.pt under {args.folder}")
    names = [f"ε {e:g}, grid {g}" for e, g in settings]
    print("| cell | " + " | ".join(f"{n}: IoU / P / R" for n in names) + " |")
    print("|---|" + "---|" * len(settings))
    ious: dict[str, list[float]] = {n: [] for n in names}
    for run in runs:
        _, model, ckpt = load_checkpoint(run)
        prompt, cells = ckpt["config"]["prompt"], []
        for name, (eps, grid) in zip(names, settings, strict=True):
            try:
                mesh = extract_mesh(model.field, grid, eps)
                fit = mesh_metrics(mesh.verts, mesh.faces, prompt)
            except UserError:  # no surface at this level
                fit = dict.fromkeys(KEYS, 0.0)
            ious[name].append(fit["mesh_iou"])
            cells.append(" / ".join(f"{fit[k]:.2f}" for k in KEYS))
        print(f"| {prompt}, {run.name} | " + " | ".join(cells) + " |", flush=True)
    means = " | ".join(f"{statistics.fmean(v):.3f}" for v in ious.values())
    print(f"| **mean IoU, {len(runs)} cells** | {means} |")


if __name__ == "__main__":
    main()
