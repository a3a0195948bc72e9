"""Does the prior keep a front feature where the camera puts it? Free-image SDS started from the GT view.

    .venv/bin/python benchmarks/feature_views.py [--prompts benchmarks/prompts-front.txt]
        [--azimuths 0,30,-30,60,-60,90,-90,180] [--steps 100] [--copies 4] [--weights DIR]
        [--out outputs/feature-views]

For each prompt and camera azimuth (elevation 15°, the judge's radius and field of view) the ground-truth view
at the prior's resolution starts free-image SDS (Eq. 2 alone, `optimize_image`), with the positional prompt
embedding of that camera (what a 3D run gives SDS there) and the fast preset's late timesteps: CFG 20,
t ~ U(0.02, 0.5). The table gives the judge's probability that the view shows the prompt's feature
(`metrics.feature_seen`) for the GT view and after SDS, mean over `--copies` noise draws. A feature the prior
keeps at every azimuth that sees it can be built up from many views; one that SDS erases or moves off the
views it should be in cannot. The azimuth 180° (the back) is the control: there the GT has no feature to keep
and SDS should not add one. `--start plain` starts from the GT view of the object without its feature
instead: does SDS draw the feature, and where? `--out` gets a contact sheet: per row a prompt at one azimuth,
the start then the copies.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from real3d.cameras import orbit
from real3d.guidance.prompts import PositionalPrompt
from real3d.guidance.sds import SDSConfig, optimize_image
from real3d.io import contact_sheet, save_image
from real3d.jobs.bench.quality import read_prompts
from real3d.priors.embedded import EmbeddedPrior
from real3d.toyworld.judge import load_judge
from real3d.toyworld.metrics import feature_seen
from real3d.toyworld.render import render
from real3d.toyworld.scene import parse


def add_sds_options(p: argparse.ArgumentParser, steps: int, t_max: float) -> None:
    """The free-image SDS options of this benchmark and hole_views.py: steps, copies, t_max, threads."""
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--copies", type=int, default=4, help="SDS runs (noise draws) per view")
    p.add_argument("--t-max", type=float, default=t_max)
    p.add_argument("--threads", type=int, default=2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=Path, default=Path("benchmarks/prompts-front.txt"))
    p.add_argument("--azimuths", default="0,30,-30,60,-60,90,-90,180", help="camera azimuths, degrees")
    add_sds_options(p, steps=100, t_max=0.5)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--guidance", type=float, default=20.0)
    p.add_argument("--start", choices=("gt", "plain"), default="gt", help="GT view, or the object without its feature")
    p.add_argument("--weights", type=Path, default=None, help="a trained prior's folder (default: the shipped one)")
    p.add_argument("--out", type=Path, default=Path("outputs/feature-views"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prior, judge = EmbeddedPrior.from_pretrained(args.weights), load_judge()
    azimuths = torch.tensor([float(a) for a in args.azimuths.split(",")])
    v, k, r = len(azimuths), args.copies, prior.resolution
    cams = dataclasses.replace(orbit(v), azimuth=azimuths)  # the judge's turntable camera at these azimuths
    cfg = SDSConfig(guidance_scale=args.guidance, t_max=[args.t_max, args.t_max])
    gen = torch.Generator().manual_seed(0)
    rows, sheet = [], []
    before_all, after_all = torch.zeros(v), torch.zeros(v)
    prompts = read_prompts(args.prompts)
    for prompt in prompts:
        scene = parse(prompt)
        gt = render(scene, cams, r, r, supersample=2).rgb  # [V,r,r,3]
        if args.start == "plain":
            scene_plain = dataclasses.replace(
                scene, objects=tuple(dataclasses.replace(o, feature=None) for o in scene.objects)
            )
            start = render(scene_plain, cams, r, r, supersample=2).rgb
        else:
            start = gt
        emb = PositionalPrompt(prior, prompt)(azimuths, cams.elevation)
        emb = emb.repeat(k)  # [V·K,...]
        out = optimize_image(prior, emb, cfg, args.steps, args.lr, gen, start.repeat_interleave(k, 0)).cpu()
        before = feature_seen(judge.probs(start), scene)  # [V]
        after = feature_seen(judge.probs(out), scene).reshape(v, k).mean(1)  # [V]
        before_all += before / len(prompts)
        after_all += after / len(prompts)
        for i, a in enumerate(azimuths.tolist()):
            rows.append(f"| {prompt} | {a:g} | {before[i]:.2f} | {after[i]:.2f} |")
            sheet += [start[i], *out[i * k : (i + 1) * k]]
        print(rows[-1], flush=True)
    print(
        f"\n{args.steps} SDS steps, CFG {args.guidance:g}, t ~ U(0.02, {args.t_max:g}), lr {args.lr:g}, "
        f"{k} copies, start: {args.start}\n"
    )
    print("| prompt | azimuth | feature seen: start | after SDS |\n|---|---|---|---|")
    print("\n".join(rows))
    print("\n| azimuth | " + " | ".join(f"{a:g}" for a in azimuths.tolist()) + " |")
    print("|---|" + "---|" * v)
    print("| start, mean over prompts | " + " | ".join(f"{x:.2f}" for x in before_all.tolist()) + " |")
    print("| after SDS | " + " | ".join(f"{x:.2f}" for x in after_all.tolist()) + " |")
    save_image(args.out / "feature_views.png", contact_sheet(sheet, k + 1))
    print(f"\ncontact sheet: {args.out / 'feature_views.png'}")


if __name__ == "__main__":
    main()
