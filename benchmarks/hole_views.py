"""Would the prior carve the torus's hole? Free-image SDS started from a finished run's own view.

    .venv/bin/python benchmarks/hole_views.py RUN_DIR [--elevations 50,70] [--steps 200] [--copies 4]
        [--t-max 0.98] [--t-window 0.5] [--out outputs/hole-views]

RUN_DIR is a finished run of a prompt with a hole ("a purple torus"; a folder with checkpoint.pt). At each
elevation (azimuth 30°, the judge's radius and field of view) the run's NeRF render (albedo, at the prior's
resolution) starts free-image SDS (Eq. 2 alone, `optimize_image`) with that camera's positional prompt
embedding, CFG 20 and t ~ U(t_max − window, t_max): `--t-max 0.98 --t-window 0.5` is the preset's window at
step 0, `--t-max 0.5` its window at the end. The score is `enclosed_background`: the share of the frame that is
background (white) but walled in by the object, i.e. the hole seen through. The GT view sets the scale and the
run's own view is the control (a filled puck scores 0). If SDS opens the hole in 2D but the 3D run does not,
the loss holds the hole and the 3D optimisation cannot reach it (`density_profile.py` gives the column's
optical depth). `--out` gets a contact sheet: per elevation the GT, the run's view, then the copies.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from feature_views import add_sds_options  # benchmarks/feature_views.py (scripts run from benchmarks/)

from real3d.cameras import orbit
from real3d.guidance.prompts import PositionalPrompt
from real3d.guidance.sds import SDSConfig, optimize_image
from real3d.io import contact_sheet, save_image
from real3d.model import load_checkpoint
from real3d.priors.embedded import EmbeddedPrior
from real3d.toyworld.metrics import object_masks
from real3d.toyworld.render import render
from real3d.toyworld.scene import parse


def enclosed_background(rgb: torch.Tensor) -> torch.Tensor:
    """Share [V] of each view rgb [V,H,W,3] that is background not connected to the frame's border: the
    background flood-filled from the border (4-neighbour steps through background pixels) leaves the holes."""
    background = ~object_masks(rgb)  # [V,H,W]
    reached = torch.zeros_like(background)
    reached[:, 0], reached[:, -1], reached[:, :, 0], reached[:, :, -1] = (
        background[:, 0],
        background[:, -1],
        background[:, :, 0],
        background[:, :, -1],
    )
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    while True:
        grown = (F.conv2d(reached[:, None].float(), cross, padding=1)[:, 0] > 0) & background
        if torch.equal(grown, reached):
            break
        reached = grown
    return (background & ~reached).flatten(1).float().mean(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a finished run's folder (with checkpoint.pt)")
    p.add_argument("--elevations", default="50,70", help="camera elevations, degrees")
    add_sds_options(p, steps=200, t_max=0.98)
    p.add_argument("--t-window", type=float, default=0.5)
    p.add_argument("--out", type=Path, default=Path("outputs/hole-views"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    _, model, ckpt = load_checkpoint(args.run)
    model.eval()
    prompt = ckpt["config"]["prompt"]
    prior = EmbeddedPrior.from_pretrained(None)
    elevations = [float(e) for e in args.elevations.split(",")]
    r, k = prior.resolution, args.copies
    n = len(elevations)  # the judge's turntable camera (radius, field of view) at azimuth 30°, these elevations
    cams = dataclasses.replace(orbit(n), azimuth=torch.full((n,), 30.0), elevation=torch.tensor(elevations))
    gt = render(parse(prompt), cams, r, r, supersample=2).rgb  # [E,r,r,3]
    with torch.no_grad():
        start = model.renderer(cams, r, r, "albedo").rgb  # [E,r,r,3]
    emb = PositionalPrompt(prior, prompt)(cams.azimuth, cams.elevation).repeat(k)  # [E·K,...]
    cfg = SDSConfig(guidance_scale=20.0, t_max=[args.t_max, args.t_max], t_window=args.t_window)
    gen = torch.Generator().manual_seed(0)
    out = optimize_image(prior, emb, cfg, args.steps, 0.05, gen, start.repeat_interleave(k, 0)).cpu()
    after = enclosed_background(out).reshape(n, k).mean(1)
    window = f"t ~ U({args.t_max - args.t_window:g}, {args.t_max:g})"
    print(f"{prompt!r}, {args.run}: {args.steps} SDS steps, CFG 20, {window}, {k} copies\n")
    print("| elevation | hole seen, GT view | the run's view | after SDS from it |\n|---|---|---|---|")
    hole_gt, hole_start = enclosed_background(gt), enclosed_background(start)
    for i, e in enumerate(elevations):
        print(f"| {e:g}° | {hole_gt[i]:.3f} | {hole_start[i]:.3f} | {after[i]:.3f} |")
    sheet = [img for i in range(n) for img in (gt[i], start[i], *out[i * k : (i + 1) * k])]
    save_image(args.out / "hole_views.png", contact_sheet(sheet, k + 2))
    print(f"\ncontact sheet: {args.out / 'hole_views.png'}")


if __name__ == "__main__":
    main()
