"""Where does the prior's oversizing come from: the sampler, or the network at high t? (issue #19)

    python benchmarks/prior_layout.py

Two tables for single-object prompts (the object's share of the frame: pixels more than 0.1 from the white
background, as toyworld.metrics.object_masks):
1. the prior's samples of "PROMPT, front view" (8 per prompt, seed 0) under DDIM with `leading` spacing (the
   shipped sampler: the first step is t = 1000 − 1000/steps), DDIM with `trailing` spacing (first step
   t = 999, where ᾱ ≈ 0), and DDPM ancestral sampling;
2. one-step predictions x̂0 = (z_t − σ_t ε̂)/α_t of noised GT renders (32 random training views) at several t,
   CFG 1 and 4: share and mean brightness of x̂0 against the GT's own.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from object_size import share  # benchmarks/object_size.py (scripts run from benchmarks/ on sys.path)

from real3d.cameras import CameraConfig, sample_views
from real3d.priors.embedded import EmbeddedPrior
from real3d.toyworld.render import render
from real3d.toyworld.scene import parse, view_caption

PROMPTS = ["a blue sphere", "a red cube", "a green cylinder", "a yellow cone"]  # object_size.py's


def sampler_table(prior: EmbeddedPrior) -> None:
    config = prior.noise_scheduler.config
    samplers = {
        "DDIM leading (shipped)": lambda: DDIMScheduler.from_config(config, clip_sample=False),
        "DDIM trailing": lambda: DDIMScheduler.from_config(config, clip_sample=False, timestep_spacing="trailing"),
        "DDPM": lambda: DDPMScheduler.from_config(config, clip_sample=False),
    }
    print("| sampler | steps | first t | " + " | ".join(PROMPTS) + " |")
    print("|---|---:|---:|" + "---:|" * len(PROMPTS))
    for name, make in samplers.items():
        prior.sampling_scheduler = make  # type: ignore[method-assign]
        for steps in (10, 50):
            scheduler = make()
            scheduler.set_timesteps(steps)
            shares = [
                share(prior.sample([f"{p}, front view"], n=8, steps=steps, generator=torch.Generator().manual_seed(0)))
                for p in PROMPTS
            ]
            cells = " | ".join(f"{s:.2f}" for s in shares)
            print(f"| {name} | {steps} | {int(scheduler.timesteps[0])} | {cells} |", flush=True)


def x0_table(prior: EmbeddedPrior, views: int = 32) -> None:
    cams = sample_views(CameraConfig(), views, torch.Generator().manual_seed(0))
    alphas = prior.noise_scheduler.alphas_cumprod
    ts = (300, 700, 850, 900, 950)
    print("\n| prompt | GT share / brightness | " + " | ".join(f"t = {t}, CFG 1 / 4" for t in ts) + " |")
    print("|---|---|" + "---|" * len(ts))
    for prompt in PROMPTS[:2]:
        gt = render(parse(prompt), cams, prior.resolution, prior.resolution, supersample=2).rgb
        emb = prior.encode_text(
            [view_caption(prompt, float(a), float(e)) for a, e in zip(cams.azimuth, cams.elevation)]
        )
        x0 = prior.encode_images(gt)
        cells = []
        for t in ts:
            eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
            a = alphas[t]
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
            shown = []
            for scale in (1.0, 4.0):
                with torch.no_grad():
                    eps_hat = prior.predict_noise(x_t, torch.full((views,), t), emb, scale)
                rgb = prior.decode((x_t - (1 - a).sqrt() * eps_hat) / a.sqrt())
                shown.append(f"{share(rgb):.2f}, {float(rgb.mean()):.2f}")
            cells.append(" / ".join(shown))
        print(f"| {prompt} | {share(gt):.2f}, {float(gt.mean()):.2f} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    torch.set_num_threads(2)
    prior = EmbeddedPrior.from_pretrained()
    sampler_table(prior)
    x0_table(prior)


if __name__ == "__main__":
    main()
