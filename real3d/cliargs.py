"""argparse pieces the job modules share (below the jobs and the `real3d` dispatcher, so none imports up)."""
from __future__ import annotations

import argparse
import functools
from typing import Callable

from . import precision
from .errors import UserError
from .precision import MODES


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (anything else is a one-line usage error)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def add_config_arguments(p: argparse.ArgumentParser, default_preset: str) -> None:
    """The options every config-driven job shares: a preset or YAML file, and dotted overrides."""
    p.add_argument("--config", "--preset", dest="preset", default=default_preset,
                   help=f"preset name from configs/ or a path to a YAML file (default: {default_preset})")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="dotted config overrides, e.g. renderer.num_samples=48")


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    """--precision auto|fp32|bf16 (real3d.precision), and --fp32 as its short form."""
    p.add_argument("--precision", choices=MODES, default="auto",
                   help="compute precision of the networks: auto (bf16 only where this CPU runs it natively, "
                        "the default), fp32 or bf16")
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
