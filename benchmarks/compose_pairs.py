"""Composed guidance for two-object prompts, in 2D: does adding one guidance term per object prompt (composable
diffusion) raise the judge score of the prior's own samples? (Issue #19: two-object scenes score ~0 in 3D.)

    python benchmarks/compose_pairs.py [--n 16] [--weights 0,0.5,1] [--normalised 0.25]

For each of the bench's five two-object prompts P with objects A and B ("a red cube", "a blue sphere"), 16
samples of "P, front view" (DDIM 20 steps, CFG 4, seed 0, as `real3d sample`) are drawn with

    ε̂ = ε_∅ + s [ w_P (ε_P − ε_∅) + w (ε_A − ε_∅) + w (ε_B − ε_∅) ]

where w_P = 1 (`--weights`: the terms are added on top, the total guidance grows) or w_P = 1 − 2w
(`--normalised`: the total guidance stays s). w = 0 is the plain prior. Prints the judge score per prompt.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from real3d import precision
from real3d.priors.embedded import EmbeddedPrior
from real3d.toyworld.judge import load_judge
from real3d.toyworld.metrics import prompt_probability
from real3d.toyworld.scene import caption, parse

PAIRS = (
    "a red cube on top of a blue sphere",
    "a green cylinder on top of a yellow cube",
    "a pink sphere next to a cyan cone",
    "a yellow cone next to a purple torus",
    "a blue sphere on top of a red cylinder",
)
SUFFIX = ", front view"


def object_prompts(prompt: str) -> list[str]:
    """The prompts of the scene's objects alone ("a red cube", "a blue sphere")."""
    scene = parse(prompt)
    return [caption(dataclasses.replace(scene, objects=(o,), relation=None)) for o in scene.objects]


@torch.no_grad()
def sample(prior: EmbeddedPrior, prompt: str, n: int, weights: list[float], scale: float = 4.0) -> torch.Tensor:
    """n DDIM samples rgb [n,r,r,3] guided by the prompt and its objects' prompts with `weights` (prompt first)."""
    texts = [prompt + SUFFIX] + [p + SUFFIX for p in object_prompts(prompt)]
    emb = prior.encode_text(texts)  # cond [K,L,D]
    k = len(texts)
    scheduler = prior.sampling_scheduler()
    scheduler.set_timesteps(20)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((n, 3, prior.resolution, prior.resolution), generator=gen) * scheduler.init_noise_sigma
    context = torch.cat([emb.uncond[:1].expand(n, -1, -1)] + [emb.cond[i : i + 1].expand(n, -1, -1) for i in range(k)])
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t).repeat(k + 1, 1, 1, 1)
        eps = prior.denoiser(x_in, t.expand(n * (k + 1)), context).float().chunk(k + 1)  # ∅, P, A, B
        guided = eps[0] + scale * sum(w * (e - eps[0]) for w, e in zip(weights, eps[1:]))
        x = scheduler.step(guided, t, x).prev_sample
    return prior.decode(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16, help="samples per prompt")
    p.add_argument("--weights", default="0,0.5,1", help="w of the object terms, added on top of the prompt's")
    p.add_argument("--normalised", default="0.25", help="w of the object terms, the prompt's weight 1 − 2w")
    args = p.parse_args()
    torch.set_num_threads(2)
    prior, judge = EmbeddedPrior.from_pretrained(), load_judge()
    settings = [(f"added, w = {w:g}", [1.0, w, w]) for w in map(float, args.weights.split(",") if args.weights else [])]
    settings += [
        (f"normalised, w = {w:g}", [1 - 2 * w, w, w])
        for w in map(float, args.normalised.split(",") if args.normalised else [])
    ]
    print("| guidance | " + " | ".join(PAIRS) + " | mean |\n|---|" + "---|" * (len(PAIRS) + 1))
    with precision.use("auto"):
        for name, weights in settings:
            scores = [
                float(prompt_probability(judge.probs(sample(prior, q, args.n, weights)), parse(q)).mean())
                for q in PAIRS
            ]
            cells = " | ".join(f"{s:.2f}" for s in scores)
            print(f"| {name} | {cells} | {sum(scores) / len(scores):.3f} |", flush=True)


if __name__ == "__main__":
    main()
