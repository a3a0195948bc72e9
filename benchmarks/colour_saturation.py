"""Does SDS itself drive a colour to its ends? Free-image SDS (Eq. 2 alone, `optimize_image`) on the prior's
own pixels, started from a light grey frame, in a timestep window and at a learning rate of your choosing.

    .venv/bin/python benchmarks/colour_saturation.py [--prompts "a blue sphere,a green cylinder"]
        [--guidance 4,7.5,20] [--lr 0.3] [--steps 50] [--t-max 0.98,0.94] [--t-window 0.5] [--copies 2]

A 3D run's albedo goes to the sigmoid's ends within its first 50 steps (`growth.py "a blue sphere" --every 50`:
(0.50, 0.52, 0.49) at step 1, (0.00, 0.01, 0.99) at step 50), where the GT's body colour is (0.12, 0.24, 0.88),
and it stays there. Free pixels are the control: `--lr` sets how fast they can follow
the gradient (Adam on each pixel's logit; a 3D field's shared weights move a whole object's colour at once),
`--t-max START,END` and `--t-window` set t ~ U(t_max − window, t_max), with t_max linear over the steps (the
preset's window is 0.98 → 0.5 over 600 steps). Each row: the object pixels' mean colour (`object_masks`) and the
share of them with a channel under 0.03, against the GT views' own.
"""

from __future__ import annotations

import argparse

import torch

from real3d.guidance.sds import SDSConfig, optimize_image
from real3d.priors.embedded import EmbeddedPrior
from real3d.toyworld.metrics import object_masks
from real3d.toyworld.runs import gt_views

DARK = 0.03  # a channel below this is at the sigmoid's end (the palette's lowest channel is 0.06)


def colour_row(rgb: torch.Tensor) -> str:
    """'(r, g, b) | share' of the object pixels of views rgb [V,H,W,3]: mean colour, share with a channel < DARK."""
    px = rgb[object_masks(rgb)]  # [P,3]
    mean = ", ".join(f"{c:.2f}" for c in px.mean(0).tolist())
    return f"({mean}) | {float((px.amin(-1) < DARK).float().mean()):.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", default="a blue sphere,a green cylinder", help="comma-separated")
    p.add_argument("--guidance", default="4,7.5,20", help="CFG scales, comma-separated")
    p.add_argument("--lr", type=float, default=0.3, help="Adam's lr on each pixel's logit")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--t-max", default="0.98,0.94", help="t_max at the first and the last step")
    p.add_argument("--t-window", type=float, default=0.5)
    p.add_argument("--copies", type=int, default=2, help="SDS runs (noise draws) per prompt: front and side view")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prior = EmbeddedPrior.from_pretrained()
    t_max = [float(t) for t in args.t_max.split(",")]
    print(f"free-image SDS from grey 0.8: {args.steps} steps, lr {args.lr}, t_max {t_max}, window {args.t_window}\n")
    print("| prompt | CFG | object colour | share with a channel < 0.03 |")
    print("|---|---:|---|---:|")
    for prompt in args.prompts.split(","):
        print(f"| {prompt} | GT views | {colour_row(gt_views(prompt))} |")
        emb = prior.encode_text([prompt + (", front view", ", side view")[i % 2] for i in range(args.copies)])
        for scale in (float(s) for s in args.guidance.split(",")):
            cfg = SDSConfig(
                guidance_scale=scale, t_max=t_max, t_window=args.t_window, anneal_steps=max(args.steps - 1, 1)
            )
            gen = torch.Generator().manual_seed(0)
            out = optimize_image(prior, emb, cfg, args.steps, args.lr, gen, init=0.8).cpu()
            print(f"| {prompt} | {scale:g} | {colour_row(out)} |", flush=True)


if __name__ == "__main__":
    main()
