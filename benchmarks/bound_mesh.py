"""How a finished run's surface meets the round bound (`field.ball`): its exported level τ = ε on the export
grid, meshed from s = τ − ε alone (the hard cut's staircase) and through `DMTetGeometry.level_set` (s
intersected with the bound's signed distance, as every mesh is now made).

    .venv/bin/python benchmarks/bound_mesh.py RUN_DIR [RUN_DIR ...]   (folders with checkpoint.pt and config.yaml)

Per run and way, the radius of the mesh's vertices from the origin (mean, std, min, max) and the share of them
within 0.005 of the bound. On a sphere grown to the bound, the staircase spreads the radii over a cell or more;
the exact bound puts every vertex on it. Bench cells keep checkpoint.pt only on the machine that ran them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml
from reexport import trained_system  # benchmarks/ is on sys.path when a script there runs

from real3d import config as config_lib
from real3d.jobs.generate import GenerateConfig, export_surface, run_settings
from real3d.render.dmtet import DMTetGeometry, marching_tets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    args = p.parse_args()
    torch.set_num_threads(2)
    print("| run | ε | mesh | radius mean | std | min | max | on the bound |\n|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        cfg = config_lib.parse(GenerateConfig, yaml.safe_load((run / "config.yaml").read_text()))
        system = trained_system(cfg, run / "checkpoint.pt")
        field, eps = export_surface(system)
        geometry = DMTetGeometry(run_settings(system).export_grid, field.bound, eps, deform_scale=0.0, band_cells=1)
        grid, ball = geometry.grid, cfg.field.ball
        with torch.no_grad():
            meshes = {
                "τ − ε (staircase)": marching_tets(grid.verts, field.tau(grid.verts) - eps, grid.all_tets()),
                "level_set (exact bound)": geometry.mesh(field),
            }
        for name, mesh in meshes.items():
            r = mesh.verts.norm(dim=-1)
            on = float(((r - ball).abs() < 0.005).float().mean())
            print(
                f"| {run} | {eps:g} | {name} | {r.mean():.4f} | {r.std():.4f} | {r.min():.4f} | {r.max():.4f} | "
                f"{on:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
