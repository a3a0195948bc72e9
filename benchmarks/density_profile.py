"""The field's density σ along rays out of the centre of a finished run: where the surface sits against the
round bound (`field.ball`), and whether the inside is saturated (issue #19: shapes held at the bound).

    .venv/bin/python benchmarks/density_profile.py RUN_DIR [RUN_DIR ...]   (folders with a checkpoint.pt)

Per run, one table row per direction (+x, the front, and +z, up): σ at radii 0 … 0.95 in steps of 0.05, with
τ > ε (Eq. 9's surface, ε = 0.1) wherever σ exceeds `tau_threshold_density`. Then, per run, the optical depth
∫σ dz of the vertical ray through the centre (where a torus has its hole), at the end and for the same config
at step 0: a view from above sees through that ray with transmittance e^−depth, and thinning the column
changes the pixel only by about that much, so a saturated column (depth ≫ 1) cannot be carved by SDS. Bench
cells keep checkpoint.pt only on the machine that ran them (it is not committed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from real3d.model import SceneModel, load_checkpoint

RADII = torch.arange(0, 20) * 0.05  # [20]
COLUMN = torch.linspace(-1.0, 1.0, 401)  # [401] z of the vertical ray through the centre
DIRECTIONS = {"+x": (1.0, 0.0, 0.0), "+z": (0.0, 0.0, 1.0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished run folders (each with checkpoint.pt)")
    args = p.parse_args()
    print("| run | direction | " + " | ".join(f"{r:.2f}" for r in RADII.tolist()) + " |")
    print("|---|---|" + "---:|" * len(RADII))
    depths = []
    for folder in args.runs:
        cfg, model, ckpt = load_checkpoint(folder)
        torch.manual_seed(int(ckpt["config"].get("seed", 0)))
        depths.append(f"| {folder} | {column_depth(model):.1f} | {column_depth(SceneModel(cfg)):.1f} |")
        field = model.field
        surface = field.tau_threshold_density(cfg.explicit.eps)
        for name, direction in DIRECTIONS.items():
            with torch.no_grad():
                sigma = field.density(RADII[:, None] * torch.tensor(direction))  # [20]
            cells = " | ".join(f"{s:.0f}{'' if s > surface else '·'}" for s in sigma.tolist())
            print(f"| {folder} | {name} | {cells} |")
    print("\n· marks σ below the surface density (τ ≤ ε: outside)\n")
    print("| run | optical depth through the centre, end | at step 0 |\n|---|---:|---:|")
    print("\n".join(depths))


@torch.no_grad()
def column_depth(model: SceneModel) -> float:
    """∫σ dz along the vertical ray x = y = 0 through the scene cube (trapezoid rule on COLUMN)."""
    points = torch.stack([torch.zeros_like(COLUMN), torch.zeros_like(COLUMN), COLUMN * model.field.bound], -1)
    return float(torch.trapezoid(model.field.density(points), COLUMN * model.field.bound))


if __name__ == "__main__":
    main()
