"""`real3d toyworld ...`: show a prompt's GT views, render datasets, train and evaluate the judge."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from .. import config as config_lib
from ..cameras import orbit
from ..errors import UserError
from ..io import contact_sheet, save_image
from .args import add_precision_argument, finite_float, flag_overrides, int_in, positive_int, precision_of, seed_int


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text}")
    return value


def _show(args: argparse.Namespace) -> int:
    from ..toyworld.render import render
    from ..toyworld.scene import parse

    scene = parse(args.prompt)
    cams = orbit(args.views, args.elevation, args.radius, args.fovy)
    r = render(scene, cams, args.resolution, args.resolution, args.shading, tuple(args.background), supersample=2)
    out = Path(args.out)
    for i, (rgb, az) in enumerate(zip(r.rgb, cams.azimuth.tolist())):
        save_image(out / f"view_{i:02d}_az{az:03.0f}.png", rgb)
    save_image(out / "contact_sheet.png", contact_sheet(list(r.rgb), min(args.views, 8)))
    print(f"{scene.prompt}: {args.views} views in {out}")
    return 0


def _render_dataset(args: argparse.Namespace) -> int:
    from ..toyworld.dataset import DatasetSpec, build

    torch.set_num_threads(args.threads)
    spec = DatasetSpec(n=args.n, resolution=args.resolution, seed=args.seed, supersample=args.supersample)
    start = time.time()
    paths = build(spec, args.root, log=True, workers=args.workers)
    print(
        f"{spec.n} images of {spec.resolution}x{spec.resolution} in {paths[0].parent} "
        f"({time.time() - start:.1f} s, shards already present are reused)"
    )
    return 0


TRAIN_FLAGS = {
    f: f
    for f in ("train_n", "test_n", "steps", "batch", "lr", "seed", "feature_boost", "init", "artifacts", "cues", "zoom")
}  # argparse dest → JudgeTraining key


def _train_judge(args: argparse.Namespace) -> int:
    from ..toyworld.judge import JudgeTraining, train_judge

    torch.set_num_threads(args.threads)
    cfg = config_lib.load(JudgeTraining, args.config, [*flag_overrides(args, TRAIN_FLAGS), *args.overrides])
    if precision_of(args) != "auto":
        cfg = dataclasses.replace(cfg, precision=precision_of(args))
    train_judge(cfg, Path(args.out), args.root)
    return 0


def _eval_judge(args: argparse.Namespace) -> int:
    from ..toyworld.dataset import DatasetSpec, toy_dataset
    from ..toyworld.judge import DEGRADATIONS, EVAL_ZOOMS, evaluate, format_table, load_judge, test_spec

    torch.set_num_threads(args.threads)
    spec = test_spec(args.test_n) if args.seed is None else DatasetSpec(n=args.test_n, seed=args.seed)
    judge, test = load_judge(args.weights), toy_dataset(spec, args.root)
    if not 0 <= args.skip < len(test):
        raise UserError(f"--skip {args.skip}: expected 0 to {len(test) - 1}, to leave some of the {len(test)} views")
    test = test.index(slice(args.skip, None))
    results = {"clean": evaluate(judge, test)}
    results.update({name: evaluate(judge, test, degrade) for name, degrade in DEGRADATIONS.items()})
    results.update({f"zoomed {z:g}×": evaluate(judge, test, zoom=z) for z in EVAL_ZOOMS})
    print(format_table(results))
    return 0


def _score(args: argparse.Namespace) -> int:
    from ..toyworld.judge import load_judge
    from ..toyworld.runs import score_run
    from ..toyworld.scene import parse

    judge = load_judge(args.weights)
    for folder in args.runs:
        m = score_run(judge, Path(folder))
        fronted = any(o.feature for o in parse(m["prompt"]).objects)  # Janus means something only with a front
        print(
            f'{folder}: "{m["prompt"]}" judge score {m["judge_score"]:.3f} ± {m["judge_score_std"]:.3f}, '
            f"R-precision {m['r_precision']:.2f}"
            + (f", Janus {m['janus']:.0f}" if fronted else "")
            + " (metrics.json updated)"
        )
    return 0


def _vocabulary(args: argparse.Namespace) -> int:
    from ..toyworld.render import render
    from ..toyworld.scene import COLOURS, FEATURE_SHAPES, SHAPES, compose

    scenes = [compose([(shape, colour, None)]) for shape, colour in zip(SHAPES * 2, list(COLOURS) * 2)]
    scenes += [
        compose([(shapes[0], colour, feature)])
        for (feature, shapes), colour in zip(FEATURE_SHAPES.items(), ["yellow", "pink", "green"])
    ]
    scenes += [
        compose([("cube", "red", None), ("sphere", "blue", None)], "on top of"),
        compose([("cylinder", "orange", "handle"), ("torus", "cyan", None)], "next to"),
    ]
    cams = orbit(1, 20.0, start_azimuth=35.0)
    tiles = [render(s, cams, args.resolution, args.resolution, supersample=2).rgb[0] for s in scenes]
    save_image(args.out, contact_sheet(tiles, 6))
    print(f"{len(tiles)} scenes in {args.out}: " + "; ".join(s.prompt for s in scenes))
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    from ..toyworld.dataset import DEFAULT_ROOT

    p = subparsers.add_parser("toyworld", help="procedural 3D world with ground truth: views, datasets, judge")
    sub = p.add_subparsers(dest="toyworld_command", metavar="COMMAND", required=True, parser_class=type(p))

    show = sub.add_parser("show", help="write GT views (PNG) of a prompt and their contact sheet")
    show.add_argument("prompt")
    show.add_argument("--out", required=True)
    show.add_argument("--views", type=positive_int, default=8)
    show.add_argument("--resolution", type=positive_int, default=128)
    show.add_argument("--elevation", type=finite_float, default=15.0)
    show.add_argument("--radius", type=finite_float, default=2.5)
    show.add_argument("--fovy", type=finite_float, default=45.0)
    show.add_argument("--shading", choices=["lambertian", "albedo"], default="lambertian")
    show.add_argument("--background", type=finite_float, nargs=3, default=[1.0, 1.0, 1.0], metavar=("R", "G", "B"))
    show.set_defaults(func=_show)

    data = sub.add_parser("render-dataset", help="render (or reuse) a dataset of random GT views as shards")
    data.add_argument("--n", type=positive_int, default=50_000)
    data.add_argument("--resolution", type=positive_int, default=64)
    data.add_argument("--seed", type=seed_int, default=0)
    data.add_argument("--supersample", type=positive_int, default=1)
    data.add_argument(
        "--workers", type=positive_int, default=1, help="processes rendering shards at once (one per core)"
    )
    data.set_defaults(func=_render_dataset)

    train = sub.add_parser("train-judge", help="train the judge on GT renders only; writes weights + model card")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="JudgeTraining overrides, e.g. lr=1e-3")
    train.add_argument("--config", default=None, help="YAML file of JudgeTraining settings (default: its defaults)")
    train.add_argument("--train-n", type=positive_int, help="training views (default 50000)")
    train.add_argument("--test-n", type=positive_int, help="held-out views (default 4096)")
    train.add_argument("--steps", type=positive_int, help="optimiser steps (default 6000)")
    train.add_argument("--batch", type=positive_int, help="views per step (default 128)")
    train.add_argument("--lr", type=finite_float, help="peak learning rate (default 2e-3)")
    train.add_argument("--seed", type=seed_int, help="dataset and training seed (default 0)")
    train.add_argument(
        "--feature-boost",
        type=finite_float,
        help="draw views of scenes with a front feature this many times as often (default 1)",
    )
    train.add_argument("--init", help="fine-tune the judge in this folder instead of starting afresh")
    train.add_argument(
        "--artifacts",
        type=_fraction,
        help="share of training views given generator-like artifacts (blotchy shading, wobbly outline)",
    )
    train.add_argument(
        "--cues",
        type=finite_float,
        help="weight of a regression head of what decides facing (angle off the front, pixels of "
        "the feature shown); 0: none (the default)",
    )
    train.add_argument(
        "--zoom",
        type=_fraction,
        help="share of training views magnified 1-2.5x, often cut off by the frame (teaches the framing head)",
    )
    add_precision_argument(train)
    train.add_argument("--out", default="weights")
    train.set_defaults(func=_train_judge)

    ev = sub.add_parser("eval-judge", help="accuracy per attribute of a judge on held-out GT renders")
    ev.add_argument("--weights", default="weights")
    ev.add_argument("--test-n", type=positive_int, default=4096)
    ev.add_argument(
        "--seed",
        type=seed_int,
        default=None,
        help="views of this dataset seed instead of the held-out ones (a training seed: how well the "
        "judge fits the views it was trained on)",
    )
    ev.add_argument(
        "--skip",
        type=int_in(0),
        default=0,
        help="leave out the first SKIP views: e.g. --test-n 16384 --skip 4096 scores only views that "
        "the default 4096 (the same first views) do not hold",
    )
    ev.set_defaults(func=_eval_judge)

    score = sub.add_parser(
        "score",
        help="score finished generate runs again (their views.png) with a judge, "
        "e.g. after the judge changed; updates each run's metrics.json",
    )
    score.add_argument("runs", nargs="+", metavar="RUN", help="output folders of 'real3d generate'")
    score.add_argument("--weights", default="weights", help="the judge's folder (default: the shipped one)")
    score.set_defaults(func=_score)

    voc = sub.add_parser("vocabulary", help="contact sheet of the vocabulary (docs/toyworld-vocabulary.png)")
    voc.add_argument("--out", default="docs/toyworld-vocabulary.png")
    voc.add_argument("--resolution", type=positive_int, default=96)
    voc.set_defaults(func=_vocabulary)

    for q in (data, train, ev):
        q.add_argument("--root", default=str(DEFAULT_ROOT), help="dataset folder (shards are reused)")
        q.add_argument(
            "--threads",
            type=positive_int,
            default=1,
            help="torch CPU threads (default 1: fastest for these small ops on a shared machine)",
        )
