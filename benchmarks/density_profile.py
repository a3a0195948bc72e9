"""The field's density σ along rays out of the centre of a finished run: where the surface sits against the
round bound (`field.ball`), and whether the inside is saturated (issue #19: shapes held at the bound).

    .venv/bin/python benchmarks/density_profile.py RUN_DIR [RUN_DIR ...]   (folders with a checkpoint.pt)

Per run, one table row per direction (+x, the front, and +z, up): σ at radii 0 … 0.95 in steps of 0.05, with
τ > ε (Eq. 9's surface, ε = 0.1) wherever σ exceeds `tau_threshold_density`. Bench cells keep checkpoint.pt
only on the machine that ran them (it is not committed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from real3d.model import load_checkpoint

RADII = torch.arange(0, 20) * 0.05  # [20]
DIRECTIONS = {"+x": (1.0, 0.0, 0.0), "+z": (0.0, 0.0, 1.0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished run folders (each with checkpoint.pt)")
    args = p.parse_args()
    print("| run | direction | " + " | ".join(f"{r:.2f}" for r in RADII.tolist()) + " |")
    print("|---|---|" + "---:|" * len(RADII))
    for folder in args.runs:
        cfg, model, _ = load_checkpoint(folder)
        field = model.field
        surface = field.tau_threshold_density(cfg.explicit.eps)
        for name, direction in DIRECTIONS.items():
            with torch.no_grad():
                sigma = field.density(RADII[:, None] * torch.tensor(direction))  # [20]
            cells = " | ".join(f"{s:.0f}{'' if s > surface else '·'}" for s in sigma.tolist())
            print(f"| {folder} | {name} | {cells} |")
    print("\n· marks σ below the surface density (τ ≤ ε: outside)")


if __name__ == "__main__":
    main()
