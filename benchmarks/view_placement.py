"""Does the prior put a front feature where the camera says? Samples at mirrored cameras, scored against GT.

    .venv/bin/python benchmarks/view_placement.py [--weights DIR] [--prompts benchmarks/prompts-front.txt]
        [--azimuths 30,60,90] [-n 8] [--bare] [--out outputs/view-placement]

For each prompt and azimuth a, n samples are drawn at +a and n at −a (elevation 15°), with the same noise and
the same caption (the view word of |a|, or with `--bare` none, as `view_word_dropout` trains a share of
captions): only the camera tells the two apart. The GT views at +a and −a are
mirror images whose feature lies on opposite sides. A sample is placed right when it is nearer (mean squared
pixel error, after a blur that leaves the feature's position but not its detail) to the GT of its own camera
than to the GT of the mirrored one. A prior that reads no camera draws the same image at ±a, right for one
and wrong for the other: exactly 0.5, chance. The last two rows are how far apart the samples at +a and −a
are (mean absolute difference of rgb in [0,1]; 0 where the camera is not read), and the two GT views.
`--out` gets a contact sheet: per row GT(+a), the samples at +a, GT(−a), the samples at −a.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from real3d.cameras import orbit, view_code, view_direction
from real3d.guidance.prompts import view_prompt
from real3d.io import contact_sheet, save_image
from real3d.jobs.bench.quality import read_prompts
from real3d.priors.embedded import EmbeddedPrior
from real3d.toyworld.render import render
from real3d.toyworld.scene import parse

ELEVATION = 15.0


def blur(rgb: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Box blur of rgb [B,r,r,3] (position kept, detail and a pixel or two of jitter dropped)."""
    x = rgb.permute(0, 3, 1, 2)
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1).permute(0, 2, 3, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=None, help="a trained prior's folder (default: the shipped one)")
    p.add_argument("--prompts", type=Path, default=Path("benchmarks/prompts-front.txt"))
    p.add_argument("--azimuths", default="30,60,90", help="a of the camera pairs ±a, degrees")
    p.add_argument("-n", type=int, default=8, help="samples per camera")
    p.add_argument("--bare", action="store_true", help="captions without a view word: the camera alone says it")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("outputs/view-placement"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prior = EmbeddedPrior.from_pretrained(args.weights)
    r, n = prior.resolution, args.n
    angles = [float(a) for a in args.azimuths.split(",")]
    rows, sheet, totals = [], [], torch.zeros(len(angles))
    apart, gt_apart = torch.zeros(len(angles)), torch.zeros(len(angles))
    prompts = read_prompts(args.prompts)
    for prompt in prompts:
        scene = parse(prompt)
        line = f"| {prompt} |"
        for j, a in enumerate(angles):
            azimuth = torch.tensor([a, -a])
            cams = dataclasses.replace(orbit(2, ELEVATION), azimuth=azimuth)
            gt = render(scene, cams, r, r, supersample=2).rgb  # [2,r,r,3]: +a, −a
            caption = prompt if args.bare else view_prompt(prompt, view_direction(a, ELEVATION))
            images = []
            for az in azimuth:  # the same noise for both cameras
                views = view_code(az[None], torch.tensor([ELEVATION]))
                gen = torch.Generator().manual_seed(0)
                images.append(prior.sample([caption], n, 20, None, gen, views=views).cpu())
            right = 0.0
            for i in range(2):
                err = ((blur(images[i])[:, None] - blur(gt)[None]) ** 2).mean((2, 3, 4))  # [n,2]: to GT(+a), GT(−a)
                right += float((err[:, i] < err[:, 1 - i]).float().mean()) / 2
                sheet += [gt[i], *images[i]]
            totals[j] += right / len(prompts)
            apart[j] += float((images[0] - images[1]).abs().mean()) / len(prompts)
            gt_apart[j] += float((gt[0] - gt[1]).abs().mean()) / len(prompts)
            line += f" {right:.2f} |"
        rows.append(line)
        print(line, flush=True)
    sheet_path = args.out / "view_placement.png"
    save_image(sheet_path, contact_sheet(sheet, n + 1))
    table = [
        f"| prompt | {' | '.join(f'±{a:g}°' for a in angles)} |",
        "|---|" + "---|" * len(angles),
        *rows,
        "| mean | " + " | ".join(f"{x:.2f}" for x in totals.tolist()) + " |",
        "| samples at +a against −a, mean pixel difference | " + " | ".join(f"{x:.4f}" for x in apart.tolist()) + " |",
        "| GT at +a against −a, mean pixel difference | " + " | ".join(f"{x:.4f}" for x in gt_apart.tolist()) + " |",
    ]
    print(f"\n{n} samples a camera (DDIM 20), share placed on the side of their own camera (0.5: chance)\n")
    print("\n".join(table) + f"\n\ncontact sheet: {sheet_path}")


if __name__ == "__main__":
    main()
