"""Which way does SDS push an object's size, by timestep band? (issue #19: spheres that grow into the box)

    python benchmarks/size_force.py [--prompts "a blue sphere,a red cube"] [--scales 1.0,1.4,1.8]

For each prompt, its ground-truth scene uniformly scaled by k (k = 1: the GT size) is rendered at random
training views (lambertian, 32 px, the prior's resolution). Eq. 2 gives the gradient g on those pixels; a
step of SDS moves the image by −g, so the size force is F = ⟨−g, ∂I/∂k⟩ (∂I/∂k by a 5 % finite
difference), averaged over the views and noise draws. F > 0: SDS grows the object at that size;
F < 0: it shrinks it. A size where F changes sign from + to − is where SDS alone would hold it.

Prints one table per prompt: rows are t bands (fractions of the prior's 1000 steps), columns the scales k.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from real3d.cameras import CameraConfig, sample_views
from real3d.guidance.sds import SDSConfig, sds_rgb
from real3d.priors.embedded import EmbeddedPrior
from real3d.toyworld.render import render
from real3d.toyworld.scene import Scene, parse, view_caption

BANDS = [(0.02, 0.3), (0.3, 0.6), (0.6, 0.8), (0.8, 0.9), (0.9, 0.98)]


def scaled(scene: Scene, k: float) -> Scene:
    """The scene with every object's size and position multiplied by k (about the origin)."""
    objects = tuple(
        replace(o, position=(k * o.position[0], k * o.position[1], k * o.position[2]), scale=k * o.scale)
        for o in scene.objects
    )
    return replace(scene, objects=objects)


def size_forces(
    prior: EmbeddedPrior, prompt: str, scales: list[float], views: int, draws: int, guidance: float
) -> dict[tuple[float, float], list[float]]:
    """{t band: [F per scale k]}, F = ⟨−g, ∂I/∂k⟩, mean over `views` random training views and `draws` noise
    draws (the views, their captions and each scale's renders are made once and shared by the bands)."""
    cams = sample_views(CameraConfig(), views, torch.Generator().manual_seed(0))
    emb = prior.encode_text([view_caption(prompt, float(a), float(e)) for a, e in zip(cams.azimuth, cams.elevation)])
    scene, r = parse(prompt), prior.resolution
    renders = []  # (rgb [B,r,r,3], ∂I/∂k per unit k by a 5 % step) per scale
    for k in scales:
        rgb = render(scaled(scene, k), cams, r, r, supersample=2).rgb
        renders.append((rgb, (render(scaled(scene, 1.05 * k), cams, r, r, supersample=2).rgb - rgb) / 0.05))
    out: dict[tuple[float, float], list[float]] = {}
    for band in BANDS:
        cfg = SDSConfig(guidance_scale=guidance, t_min=band[0], t_max=[band[1], band[1]])
        out[band] = []
        for rgb, d_rgb in renders:
            total = 0.0
            for draw in range(draws):
                x = rgb.clone().requires_grad_(True)
                sds_rgb(prior, x, emb, cfg, 0, torch.Generator().manual_seed(draw)).loss.backward()
                assert x.grad is not None
                total += float(-(x.grad * d_rgb).sum())  # x.grad = g / B: the sum is the mean over the views
            out[band].append(total / draws)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default="a blue sphere,a red cube,a green cylinder,a yellow cone")
    parser.add_argument("--scales", default="1.0,1.4,1.8")
    parser.add_argument("--views", type=int, default=48)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--guidance-scale", type=float, default=20.0, help="CFG scale s (the real3d preset's)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    prior = EmbeddedPrior.from_pretrained()
    scales = [float(k) for k in args.scales.split(",")]
    for prompt in args.prompts.split(","):
        print(f"\n{prompt} (s={args.guidance_scale:g}, {args.views} views × {args.draws} draws)\n")
        print("| t band | " + " | ".join(f"k = {k:g}" for k in scales) + " |")
        print("|---|" + "---:|" * len(scales))
        for band, forces in size_forces(prior, prompt, scales, args.views, args.draws, args.guidance_scale).items():
            print(f"| {band[0]:g}–{band[1]:g} | " + " | ".join(f"{f:+.0f}" for f in forces) + " |", flush=True)


if __name__ == "__main__":
    main()
