"""`real3d sample` and `real3d eval-prior`: images from the embedded prior, and their toy-world judge score.

real3d sample "a red cube, front view" -n 4 --out DIR [--view 0 15]   # --view: a view-conditioned prior's camera
real3d eval-prior --out DIR      # samples over the toy vocabulary, judge score mean ± std per group
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import torch

from ..cameras import VIEW_WORDS, view_code
from ..errors import UserError
from ..guidance.prompts import view_prompt
from ..io import contact_sheet, discard_replaced, prepare_out_dir, save_image, write_text
from ..priors.embedded import SHIPPED, EmbeddedPrior
from ..toyworld.scene import check_prompt
from .args import add_precision_argument, finite_float, in_precision, int_in, positive_int, seed_int


def vocabulary_prompts(pairs: int = 12, seed: int = 0) -> dict[str, list[str]]:
    """Evaluation prompts by group: every shape × colour, every feature on every shape that carries it
    (colours in turn), and `pairs` random two-object scenes."""
    from ..toyworld.scene import COLOURS, FEATURE_SHAPES, SHAPES, caption, random_scene

    colours = list(COLOURS)
    singles = [f"{'an' if c[0] in 'aeiou' else 'a'} {c} {s}" for s in SHAPES for c in colours]
    featured = [
        f"{'an' if colours[i % 9][0] in 'aeiou' else 'a'} {colours[i % 9]} {s} with a {f}"
        for i, (f, s) in enumerate((f, s) for f, shapes in FEATURE_SHAPES.items() for s in shapes)
    ]
    gen = random.Random(seed)
    two: list[str] = []
    while len(two) < pairs:
        scene = random_scene(gen, p_single=0.0)
        two.append(caption(scene))
    groups = {"single": singles, "feature": featured, "pair": two}
    return {name: prompts for name, prompts in groups.items() if prompts}  # --pairs 0: no pair group


# the camera (azimuth, elevation in degrees) each view word stands for, for a view-conditioned prior
VIEW_CAMERAS = {"front": (0.0, 15.0), "side": (90.0, 15.0), "back": (180.0, 15.0), "overhead": (0.0, 75.0)}


def view_prompts(prompt: str, n: int) -> tuple[list[str], torch.Tensor]:
    """n copies of a prompt with the view suffixes in turn (front, side, back, overhead, front, ...), and the
    camera code of each (cameras.view_code [n,5], read by a view-conditioned prior)."""
    views = [VIEW_WORDS[i % len(VIEW_WORDS)] for i in range(n)]
    cams = torch.tensor([VIEW_CAMERAS[v] for v in views])
    return [view_prompt(prompt, v) for v in views], view_code(cams[:, 0], cams[:, 1])


def judge_samples(
    prior: EmbeddedPrior,
    prompts: list[str],
    n: int,
    steps: int,
    guidance_scale: float | None,
    seed: int,
    judge_dir: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples per prompt (views in turn) → images [P,n,H,W,3] and judge scores [P,n]."""
    from ..toyworld.judge import WEIGHTS_DIR, load_judge
    from ..toyworld.metrics import prompt_probability
    from ..toyworld.scene import parse

    judge = load_judge(judge_dir or WEIGHTS_DIR)
    gen = torch.Generator().manual_seed(seed)
    images, scores = [], []
    for prompt in prompts:
        captions, views = view_prompts(prompt, n)
        rgb = prior.sample(captions, 1, steps, guidance_scale, gen, views=views).cpu()
        images.append(rgb)
        scores.append(prompt_probability(judge.probs(rgb), parse(prompt)))
    return torch.stack(images), torch.stack(scores)


@in_precision
def _sample(args: argparse.Namespace) -> int:
    check_prompt(args.prompt)  # the words the embedded prior was trained on, as generate checks them
    torch.set_num_threads(args.threads)
    prior = EmbeddedPrior.from_pretrained(args.weights)
    if args.view is not None and not prior.cfg.view_conditioned:  # before the output folder is touched
        raise UserError(
            f"--view needs a view-conditioned prior ('real3d train-prior --view-conditioned'); {args.weights} "
            "reads the view word of the prompt only"
        )
    out = prepare_out_dir(args.out, overwrite=True)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.time()
    views = None if args.view is None else view_code(torch.tensor(args.view[:1]), torch.tensor(args.view[1:]))
    rgb = prior.sample([args.prompt], args.n, args.steps, args.guidance, gen, views=views)
    for i, im in enumerate(rgb):
        save_image(out / f"sample_{i:02d}.png", im)
    save_image(out / "contact_sheet.png", contact_sheet(list(rgb), min(args.n, 8)))
    discard_replaced(out)
    print(f"{args.n} samples of {args.prompt!r} in {out} ({time.time() - start:.1f} s)")
    return 0


@in_precision
def _evaluate(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    prior = EmbeddedPrior.from_pretrained(args.weights)
    out = prepare_out_dir(args.out, overwrite=True)
    groups = vocabulary_prompts(args.pairs)
    result: dict[str, dict[str, Any]] = {}
    lines = ["| prompts | count | judge score (mean ± std over samples) |", "|---|---|---|"]
    for name, prompts in groups.items():
        images, scores = judge_samples(prior, prompts, args.n, args.steps, args.guidance, args.seed, args.judge)
        result[name] = {
            "mean": float(scores.mean()),
            "std": float(scores.std()),
            "prompts": len(prompts),
            "per_prompt": dict(zip(prompts, scores.mean(1).tolist())),
        }
        lines.append(f"| {name} | {len(prompts)} × {args.n} | {scores.mean():.3f} ± {scores.std():.3f} |")
        save_image(out / f"samples_{name}.png", contact_sheet(list(images[:24].flatten(0, 1)), args.n))
    all_scores = [s for r in result.values() for s in r["per_prompt"].values()]
    result["all"] = {"mean": sum(all_scores) / len(all_scores)}
    lines.append(f"| all | {len(all_scores)} | {result['all']['mean']:.3f} (mean of prompt means) |")
    write_text(out / "judge.json", json.dumps(result, indent=1))
    write_text(out / "judge.md", "\n".join(lines) + "\n")
    discard_replaced(out)
    print("\n".join(lines))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=str(SHIPPED), help="trained prior folder (default: %(default)s)")
    p.add_argument("--steps", type=int_in(1, 1000), default=20, help="DDIM steps (1 to 1000)")
    p.add_argument("--guidance", type=finite_float, default=None, help="CFG scale (default: the prior's)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=positive_int, default=2)
    add_precision_argument(p)


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample images of a prompt from the embedded prior")
    p.add_argument("prompt")
    p.add_argument("-n", type=int_in(1, 1024), default=4, help="number of images (1 to 1024)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--view",
        type=finite_float,
        nargs=2,
        metavar=("AZIMUTH", "ELEVATION"),
        default=None,
        help="the camera in degrees (azimuth 0 sees the front), for a view-conditioned prior (default: none)",
    )
    _common(p)
    p.set_defaults(func=_sample)
    e = sub.add_parser("eval-prior", help="judge score of the prior's samples over the toy vocabulary")
    e.add_argument("-n", type=int_in(1, 1024), default=8, help="samples per prompt (views in turn)")
    e.add_argument("--pairs", type=int_in(0, 1000), default=12, help="random two-object prompts")
    e.add_argument("--judge", default=None, help="judge weights folder (default: weights/)")
    e.add_argument("--out", required=True, help="output folder")
    _common(e)
    e.set_defaults(func=_evaluate)
