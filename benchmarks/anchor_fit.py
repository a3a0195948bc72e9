"""How close a finished run came to its view anchors: for each run folder, θ drawn by its NeRF at each anchor's
camera (the medoid's own) in albedo shading (as `Real3DSystem.view_anchor` draws it, at 64²), beside the anchor
fitted to the box of that render's solid pixels (`guidance.anchor.fit_to_box`), with the anchor loss and the
judge's P(feature) on both.

    .venv/bin/python benchmarks/anchor_fit.py RUN_DIR [RUN_DIR ...] [--sheet outputs/anchor_fit.png]

A run folder is one `real3d generate` wrote (config.yaml, checkpoint.pt); x̃ is read from its
`reference.cache_dir`. The sheet has one row per run: for each anchored view, the fitted anchor, then the render.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from real3d import config as config_lib
from real3d import precision
from real3d.cameras import orbit
from real3d.guidance.anchor import anchor_loss, fit_to_box, solid_pixels, view_anchors
from real3d.guidance.reference import reference_images, reference_views
from real3d.io import contact_sheet
from real3d.jobs.generate import GenerateConfig
from real3d.model import load_checkpoint
from real3d.system import anchor_picker, build_prior
from real3d.toyworld.judge import load_judge
from real3d.toyworld.metrics import _as_scene, feature_seen

SIZE = 64


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--sheet", type=Path, default=Path("outputs/anchor_fit.png"))
    args = p.parse_args()
    torch.set_num_threads(2)
    judge, rows = load_judge(), []
    print("| run | azimuth | anchor loss | P(feature): anchor | render |\n|---|---|---:|---:|---:|")
    for run in args.runs:
        cfg = config_lib.load(GenerateConfig, str(run / "config.yaml"))
        _, model, _ = load_checkpoint(run)
        prior, words = build_prior(cfg), cfg.system.anchor_views
        with precision.use(cfg.precision):  # as the run sampled and picked them
            x_ref = reference_images(prior, cfg.prompt, cfg.reference).float() / 255  # [N,h,w,3]
            pick = anchor_picker(cfg, prior)
            anchors, cams = view_anchors(x_ref, reference_views(cfg.reference), words, pick)  # [A,h,w,3], [A,2]
        cam, scene, row = cfg.camera, _as_scene(cfg.prompt), []
        for (azimuth, elevation), anchor in zip(cams.tolist(), anchors):
            view = orbit(1, elevation, sum(cam.radius_range) / 2, sum(cam.fovy_range) / 2, azimuth)
            with torch.no_grad():
                out = model.renderer(view, SIZE, SIZE, "albedo", None, torch.Generator().manual_seed(0))
            rgb, fitted = out.rgb, fit_to_box(anchor, solid_pixels(out.opacity))  # [1,H,W,3] each
            fitted = torch.ones_like(rgb) if fitted is None else fitted
            seen = feature_seen(judge.probs(torch.cat([fitted, rgb])), scene)  # [2]: 0 without a feature
            cells = [f"{float(anchor_loss(rgb, out.opacity, anchor)):.4f}", *(f"{float(s):.2f}" for s in seen)]
            print(f"| {run.name} | {azimuth:.0f} | " + " | ".join(cells) + " |", flush=True)
            row += [fitted[0], rgb[0]]
        rows.append(row)
    cols = max(len(r) for r in rows)  # runs with fewer anchors are padded with white
    sheet = contact_sheet([t for r in rows for t in r + [torch.ones_like(r[0])] * (cols - len(r))], cols)
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).resize((sheet.shape[1] * 3, sheet.shape[0] * 3), Image.Resampling.NEAREST).save(args.sheet)
    print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
