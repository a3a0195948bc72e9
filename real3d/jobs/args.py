"""argparse pieces the job modules share (below the jobs and the `real3d` dispatcher, so none imports up)."""

from __future__ import annotations

import argparse
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path

from .. import precision
from ..errors import UserError, shorten
from ..precision import MODES


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in [lo, hi] (anything else is a one-line usage error)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            value = None
        if value is None or value < lo or (hi is not None and value > hi):
            span = (
                "a positive integer"
                if (lo, hi) == (1, None)
                else f"an integer {lo} or more"
                if hi is None
                else f"an integer from {lo} to {hi}"
            )
            raise argparse.ArgumentTypeError(f"expected {span}, got {shorten(text)!r}")
        return value

    parse.__name__ = "integer"  # what argparse names in its message
    return parse


positive_int = int_in(1)
MAX_SEED = 2**63 - 1  # what torch.Generator.manual_seed takes
seed_int = int_in(0, MAX_SEED)


def finite_float(text: str) -> float:
    """argparse type: a finite number (nan, inf and 1e309 are a one-line usage error)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {shorten(text)!r}")
    return value


def csv(text: str) -> list[str]:
    """The items of a comma-separated option (blanks dropped)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def csv_seeds(text: str) -> list[int]:
    """The seeds of a comma-separated option, e.g. 0,1,2 (anything else is one line)."""
    try:
        seeds = [int(s) for s in csv(text)]
    except ValueError:
        seeds = []
    if not seeds or any(not 0 <= s <= MAX_SEED for s in seeds):
        raise UserError(f"--seeds expects comma-separated integers like 0,1,2, got {shorten(text)!r}")
    return seeds


def read_prompt_list(path: Path) -> list[str]:
    """Prompts of a text file, one per line; blank lines and # comments skipped, repeats dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the prompt list {path}: {getattr(e, 'strerror', None) or 'not UTF-8'}") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not prompts:
        raise UserError(f"{path} holds no prompts (one per line; # starts a comment)")
    return list(dict.fromkeys(prompts))


def add_config_arguments(p: argparse.ArgumentParser, default_preset: str, budget: bool = False) -> None:
    """The options every config-driven job shares: a preset or YAML file, dotted overrides (and --budget)."""
    p.add_argument(
        "--config",
        "--preset",
        dest="preset",
        default=default_preset,
        help=f"preset name from configs/ or a path to a YAML file (default: {default_preset})",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key.sub=value", help="dotted config overrides, e.g. renderer.num_samples=48"
    )
    if budget:
        add_budget_argument(p)


def add_budget_argument(p: argparse.ArgumentParser) -> None:
    """--budget NAME: a budget of configs/budgets/ (steps rescaled through config.rescale_steps)."""
    from ..config import budgets

    p.add_argument(
        "--budget",
        choices=budgets(),
        default=None,
        help="run budget: fast (the preset as written) or quality (4000 steps, finer grids, 1000 x̃); "
        "default: the preset's own",
    )


def flag_overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """Dotted overrides `key=value` from the flags that were given (argparse dest → config key; a flag left
    out is None and leaves the config's own value), so flag-driven jobs load their config like every other."""
    return [
        f"{key}={json.dumps(getattr(args, dest))}"
        for dest, key in flags.items()
        if getattr(args, dest, None) is not None
    ]


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    """--precision auto|fp32|bf16 (real3d.precision), and --fp32 as its short form."""
    p.add_argument(
        "--precision",
        choices=MODES,
        default="auto",
        help="compute precision of the networks: auto (bf16 only where this CPU runs it natively, "
        "the default), fp32 or bf16",
    )
    p.add_argument("--fp32", action="store_true", help="the same as --precision fp32")


def precision_of(args: argparse.Namespace) -> str:
    """The precision mode that --precision / --fp32 ask for (a contradiction is a one-line error)."""
    if args.fp32 and args.precision not in ("auto", "fp32"):
        raise UserError(f"--fp32 and --precision {args.precision} contradict each other; give one of them")
    return "fp32" if args.fp32 else args.precision


def in_precision(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Decorate a job's `run(args)` so that it runs in the precision its --precision / --fp32 ask for."""

    @functools.wraps(run)
    def wrapped(args: argparse.Namespace) -> int:
        with precision.use(precision_of(args)):
            return run(args)

    return wrapped
