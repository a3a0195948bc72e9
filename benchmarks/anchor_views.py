"""What the view anchors hold θ to: x̃'s front and back anchors (`guidance.anchor.view_anchors`; the medoids, or
with `system.anchor_pick=prior` the prior's own pick) per prompt,
and how surely the judge sees the prompt's front feature on x̃'s front views, its back views and each anchor,
and the whole prompt (`prompt_probability`: shapes, colours, relation) on the front views and the front anchor;
the last column is how long the anchors took to pick.

    .venv/bin/python benchmarks/anchor_views.py [key.sub=value ...] [--prompts benchmarks/prompts-front.txt]
        [--sheet outputs/anchor_views.png] [--threads N]

x̃ is read from the run's cache (`reference.cache_dir`) or sampled there as a `real3d` run with these overrides
would. The sheet has one row per prompt: x̃'s front views, then the front and the back anchor.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image

from real3d import precision
from real3d.cameras import view_direction
from real3d.guidance.anchor import ANCHOR_VIEWS, view_anchors
from real3d.guidance.reference import reference_images, reference_views
from real3d.jobs.bench.quality import read_prompts
from real3d.jobs.generate import run_config
from real3d.system import anchor_picker, build_prior
from real3d.toyworld.judge import load_judge
from real3d.toyworld.metrics import _as_scene, feature_seen, prompt_probability


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*")
    p.add_argument("--prompts", type=Path, default=Path("benchmarks/prompts-front.txt"))
    p.add_argument("--sheet", type=Path, default=Path("outputs/anchor_views.png"))
    p.add_argument("--threads", type=int, default=2, help="torch threads (a bench cell runs at 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    judge, rows = load_judge(), []
    print(
        "| prompt | x̃ front views: P(feature) | x̃ back views | front anchor | back anchor "
        "| x̃ front views: P(prompt) | front anchor | picked in (s) |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for prompt in read_prompts(args.prompts):
        cfg = run_config("real3d", prompt, args.overrides)
        prior, views = build_prior(cfg), reference_views(cfg.reference)
        with precision.use(cfg.precision):  # as a run samples and picks them
            x_ref = reference_images(prior, prompt, cfg.reference).float() / 255  # [N,h,w,3]
            start = time.perf_counter()
            anchors, _ = view_anchors(x_ref, views, pick=anchor_picker(cfg, prior))  # [2,h,w,3]
            picked_in = time.perf_counter() - start
        words, scene = [view_direction(a, e) for a, e in views.tolist()], _as_scene(prompt)

        def seen(images: torch.Tensor) -> torch.Tensor:
            return feature_seen(judge.probs(images), scene)  # called within this iteration

        front = x_ref[torch.tensor([w == "front" for w in words])]
        back = x_ref[torch.tensor([w == "back" for w in words])]
        medoids = seen(anchors)
        cells = [seen(front).mean(), seen(back).mean(), *(medoids[ANCHOR_VIEWS.index(w)] for w in ("front", "back"))]
        front_medoid = anchors[ANCHOR_VIEWS.index("front")][None]
        cells += [prompt_probability(judge.probs(images), scene).mean() for images in (front, front_medoid)]
        print(f"| {prompt} | " + " | ".join(f"{float(c):.2f}" for c in cells) + f" | {picked_in:.1f} |", flush=True)
        rows.append(torch.cat([*front, *anchors], 1))
    width = max(r.shape[1] for r in rows)
    sheet = torch.cat([torch.nn.functional.pad(r, (0, 0, 0, width - r.shape[1]), value=1.0) for r in rows])
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((sheet.clamp(0, 1) * 255).byte().numpy()).resize((sheet.shape[1] * 3, sheet.shape[0] * 3)).save(
        args.sheet
    )
    print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
