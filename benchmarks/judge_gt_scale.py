"""The judge's own response to size, on the ground truth: each prompt's GT scene scaled k× (shapes and
positions, as the judge's training jitter scales them), rendered at the judge's turntable exactly as the bench
renders its GT column (`runs.gt_views`) and scored (`metrics.judge_score`, against the camera).

    .venv/bin/python benchmarks/judge_gt_scale.py [--prompts benchmarks/prompts.txt] [--scales 0.9,0.95,1,...] [--mesh]

With `--mesh` the GT is drawn as a run is: its SDF meshed by marching tetrahedra on the export's 64-grid,
given the export's Taubin passes, each vertex in the colour of its nearest part, rasterized and lit as
views.png is (`export.orbit_frames`, 2×2 supersampled). A perfect object has no flaw for a lever to mend,
so whatever its score does across k is the judge's (and the renderer's), not the generator's: a dip at some
size is a score a run's mesh gets or loses by being that size, whatever its surface (docs/results.md,
twelfth round). The judge trained on scales 0.85–1.1 of these scenes (`scene.jitter`). `--chroma 2` scores the
same views with their colours pushed toward the pure hues (`judge.saturate`), as SDS draws a run's albedo: what
the judge makes of a perfect shape in a run's colours (docs/results.md, nineteenth round).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch

from real3d.export import orbit_frames, taubin_smooth
from real3d.jobs.generate import RunSettings
from real3d.render.dmtet import marching_tets, tet_grid
from real3d.toyworld import metrics
from real3d.toyworld.judge import load_judge, saturate
from real3d.toyworld.render import render
from real3d.toyworld.runs import CAMERAS, VIEW_SIZE, VIEW_SUPERSAMPLE, VIEWS
from real3d.toyworld.scene import Scene, jitter, parse


def scaled(scene: Scene, k: float) -> Scene:
    """The scene k× larger about the origin: the judge's training jitter with its scale pinned to k and no
    shift or turn (each object's size and position; contacts are kept)."""
    return jitter(scene, random.Random(0), scale=(k, k), shift=0.0, yaw=0.0)


def views(scene: Scene, mesh: bool) -> torch.Tensor:
    """The judge's 12 views [12,64,64,3] of a GT scene: sphere-traced as the bench's GT column, or meshed and
    rasterized as a run's views.png."""
    if not mesh:
        return render(scene, CAMERAS, VIEW_SIZE, VIEW_SIZE, supersample=VIEW_SUPERSAMPLE).rgb
    settings = RunSettings()
    grid = tet_grid(settings.export_grid, 1.0)
    surface = taubin_smooth(marching_tets(grid.verts, -scene.sdf(grid.verts), grid.all_tets()), settings.export_smooth)
    colour = scene.palette()[scene.nearest_part(surface.verts)]  # [V,3]
    return orbit_frames(surface, lambda c: c, colour, VIEWS, VIEW_SIZE, supersample=VIEW_SUPERSAMPLE)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=Path, default=Path(__file__).parent / "prompts.txt")
    p.add_argument("--scales", default="0.85,0.9,0.95,1,1.05,1.1,1.15", help="magnifications k, comma-separated")
    p.add_argument("--mesh", action="store_true", help="draw the GT as a run is drawn: meshed and rasterized")
    p.add_argument("--chroma", type=float, default=1.0, help="scale each pixel's distance from grey (1: as drawn)")
    p.add_argument("--weights", default=None, help="judge folder (default: the shipped weights/)")
    args = p.parse_args()
    torch.set_num_threads(2)
    judge = load_judge() if args.weights is None else load_judge(args.weights)
    scales = [float(k) for k in args.scales.split(",")]
    prompts = [ln.strip() for ln in args.prompts.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    print("| prompt | " + " | ".join(f"k = {k:g}" for k in scales) + " | max − min |")
    print("|---" + "|---:" * (len(scales) + 1) + "|")
    table = []
    for prompt in prompts:
        scene = parse(prompt)
        row = []
        for k in scales:
            drawn = saturate(views(scaled(scene, k), args.mesh), args.chroma)
            row.append(metrics.judge_score(judge, drawn, scene, CAMERAS.azimuth)[0])
        table.append(row)
        print(f"| {prompt} | " + " | ".join(f"{s:.2f}" for s in row) + f" | {max(row) - min(row):.2f} |", flush=True)
    mean = torch.tensor(table).mean(0)
    print("| mean | " + " | ".join(f"{s:.3f}" for s in mean.tolist()) + f" | {float(mean.max() - mean.min()):.3f} |")


if __name__ == "__main__":
    main()
