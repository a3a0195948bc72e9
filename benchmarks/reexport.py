"""A bench folder's finished cells exported again with today's export settings, into a new bench folder.

    .venv/bin/python benchmarks/reexport.py SRC DST [--presets real3d,dreamfusion] [--seeds 0,1,2] [KEY=VALUE ...]
    .venv/bin/real3d bench quality --presets ... --seeds ... --out DST --workers 2 --threads 1   # the tables

For every cell PRESET/PROMPT/seed-S of SRC with a checkpoint.pt (kept only on the machine that ran the bench),
θ is rebuilt from the checkpoint and `write_outputs` runs again into DST's cell: model.glb, views.png and
metrics.json, with the config's keys added since SRC ran (run.export_level, run.export_smooth) at their
defaults, then the dotted overrides given (only `run.export_*` keys: the rest is training), and written to the cell's
config.yaml. metrics.json keeps SRC's seconds and ms_per_step: the training
is SRC's. Training does not read the run.export_* keys and a run is deterministic on one machine, so DST's
cells are what `real3d bench quality` would make from scratch there, hours sooner; the bench then finds them
finished and writes the tables. SRC's x̃ cache, evolution.png and each cell's train.log, checkpoint.pt and
snapshots go along.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from real3d import config as config_lib
from real3d.jobs.generate import GenerateConfig, write_outputs
from real3d.loop import load
from real3d.system import Real3DSystem, build_prior, deterministic

CARRIED = ("checkpoint.pt", "train.log", "snapshots")


def reexport(src: Path, dst: Path, overrides: list[str]) -> dict:
    """Cell src exported again into dst (created), with `overrides` of run.export_* keys: its new metrics."""
    data = config_lib.apply_overrides(yaml.safe_load((src / "config.yaml").read_text()), overrides)
    cfg = config_lib.parse(GenerateConfig, data)  # later keys at their defaults
    dst.mkdir(parents=True, exist_ok=True)
    for name in CARRIED:
        if (src / name).is_dir() and not (dst / name).exists():
            shutil.copytree(src / name, dst / name)
        elif (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    config_lib.save(cfg, dst / "config.yaml")
    old = json.loads((src / "metrics.json").read_text())
    timing = {f"ms_{k}": v for k, v in old["ms_per_step"].items()}
    return export_cell(cfg, src / "checkpoint.pt", dst, timing, old["seconds"])


def trained_system(cfg: GenerateConfig, checkpoint: Path) -> Real3DSystem:
    """The system carrying the θ of a run's checkpoint under `cfg`, in eval mode. It is built without D, so no
    x̃ is sampled (an export reads neither)."""
    built = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, lambda_adv=0.0))
    system = Real3DSystem(built, build_prior(built), False)
    system.model.load_state_dict(load(checkpoint, "a run's checkpoint.pt")["model"])
    system.cfg = cfg
    return system.eval()


def export_cell(
    cfg: GenerateConfig, checkpoint: Path, out_dir: Path, timing: dict[str, float], seconds: float
) -> dict[str, Any]:
    """`write_outputs` of the θ in a cell's checkpoint under `cfg`, into out_dir: its metrics."""
    with deterministic():
        return write_outputs(trained_system(cfg, checkpoint), out_dir, timing, seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--presets", default="real3d,dreamfusion", help="comma-separated")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("overrides", nargs="*", help="run.export_* keys, e.g. run.export_level=silhouette")
    args = p.parse_intermixed_args()
    if any(not o.startswith("run.export_") for o in args.overrides):
        raise SystemExit("only run.export_* keys can change: the rest of a cell's config is its training")
    torch.set_num_threads(args.threads)
    cells = sorted(
        c
        for preset in args.presets.split(",")
        for seed in args.seeds.split(",")
        for c in (args.src / "cells" / preset).glob(f"*/seed-{seed}")
        if (c / "checkpoint.pt").exists() and (c / "metrics.json").exists()
    )
    if not cells:
        raise SystemExit(f"no finished cell with a checkpoint.pt under {args.src}/cells for {args.presets}")
    for name in ("cache", "evolution.png"):
        if (args.src / name).exists() and not (args.dst / name).exists():
            copy = shutil.copytree if (args.src / name).is_dir() else shutil.copy2
            copy(args.src / name, args.dst / name)
    print("| cell | ε | offset | judge | mesh IoU |\n|---|---|---|---|---|")
    for cell in cells:
        target = args.dst / cell.relative_to(args.src)
        if (target / "metrics.json").exists():
            continue
        m = reexport(cell, target, args.overrides)
        print(
            f"| {cell.relative_to(args.src / 'cells')} | {m['export_eps']:g} | {m['export_offset']:g} | "
            f"{m['judge_score']:.2f} | {m['mesh_iou']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
