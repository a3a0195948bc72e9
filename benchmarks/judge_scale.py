"""Does the judge's score follow the size of a run's own mesh? Each run's model.glb (the vertex-coloured mesh a
bench cell writes) scaled k× about the origin, with the same surface and the same colours, rendered at the
judge's turntable exactly as the cell's views.png was (`orbit_frames`) and scored (`metrics.judge_score`).

    .venv/bin/python benchmarks/judge_scale.py RUN_DIR [RUN_DIR ...] [--scales 0.94,0.97,1,1.03] [--supersample 1]

A score that changes with k alone says the judge reads size, not only shape, colour and features: an export
that brings a mesh toward the GT's size then costs judge score whatever surface it takes (docs/results.md,
eleventh round). `--supersample 1` renders the views as views.png was made before the twelfth round, one
sample a pixel, to show the jitter that aliasing added (the last rows). The views interpolate the GLB's
vertex colours, where the cell's own views read θ's albedo at every pixel: compare the columns with the
k = 1 column, not with the score in metrics.json. `--gt-colour` paints each vertex in the GT body colour of
the prompt's object nearest to it instead (features too take their object's colour, so use it on prompts
without a front): the run's own shape in the GT's colours, which says how much of a score is lost to colour
and how much to shape. `--colour R,G,B` paints the whole mesh one colour.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from real3d.export import orbit_frames, read_glb
from real3d.render.dmtet import Mesh
from real3d.toyworld import metrics
from real3d.toyworld.judge import load_judge
from real3d.toyworld.runs import CAMERAS, VIEW_SIZE, VIEW_SUPERSAMPLE, VIEWS
from real3d.toyworld.scene import COLOURS, parse


def coloured_mesh(path: Path) -> tuple[Mesh, torch.Tensor]:
    """The mesh of a vertex-coloured model.glb in world axes (`read_glb`) and its colours [V,3] ∈ [0,1]."""
    import trimesh

    tm: Any = trimesh.load(path, force="mesh")  # loaded as read_glb loads it: the same vertices, in order
    return read_glb(path), torch.tensor(np.asarray(tm.visual.vertex_colors)[:, :3], dtype=torch.float32) / 255


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="bench cells (metrics.json and a vertex-coloured model.glb)")
    p.add_argument("--scales", default="0.94,0.97,1,1.03", help="magnifications k, comma-separated")
    p.add_argument(
        "--supersample", type=int, default=VIEW_SUPERSAMPLE, help="k×k samples a pixel (1: as views.png was before)"
    )
    paint = p.add_mutually_exclusive_group()
    paint.add_argument("--gt-colour", action="store_true", help="paint the mesh in the GT's body colours")
    paint.add_argument("--colour", help="paint the mesh one colour R,G,B in [0,1]")
    args = p.parse_args()
    torch.set_num_threads(2)
    judge, scales = load_judge(), [float(k) for k in args.scales.split(",")]
    print("| run | judge in metrics.json | " + " | ".join(f"k = {k:g}" for k in scales) + " |")
    print("|---|---:" + "|---:" * len(scales) + "|")
    table = []
    for run in args.runs:
        recorded = json.loads((run / "metrics.json").read_text())
        prompt = recorded["prompt"]
        mesh, colour = coloured_mesh(run / "model.glb")
        if args.gt_colour:
            scene = parse(prompt)
            body = torch.tensor([COLOURS[scene.objects[i].colour] for i, _ in scene.part_owners()])  # [P,3]
            colour = body[scene.nearest_part(mesh.verts)]  # [V,3]
        elif args.colour:
            colour = torch.tensor([float(c) for c in args.colour.split(",")]).expand(mesh.verts.shape[0], 3)
        row = []
        for k in scales:
            views = orbit_frames(
                Mesh(mesh.verts * k, mesh.faces), lambda c: c, colour, VIEWS, VIEW_SIZE, supersample=args.supersample
            )
            row.append(metrics.judge_score(judge, views, prompt, CAMERAS.azimuth)[0])
        print(f"| {run} | {recorded['judge_score']:.2f} | " + " | ".join(f"{s:.2f}" for s in row) + " |", flush=True)
        table.append(row)
    scores = torch.tensor(table)  # [runs,scales]
    change = (scores - scores[:, scales.index(1.0) : scales.index(1.0) + 1]).abs() if 1.0 in scales else None
    print("| mean | | " + " | ".join(f"{s:.3f}" for s in scores.mean(0).tolist()) + " |")
    if change is not None:
        print("| mean \\|change\\| against k = 1 | | " + " | ".join(f"{s:.3f}" for s in change.mean(0).tolist()) + " |")
        print("| largest change | | " + " | ".join(f"{s:.2f}" for s in change.amax(0).tolist()) + " |")


if __name__ == "__main__":
    main()
