"""Shared timing of the benchmarks: median milliseconds of forward + backward."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from real3d.jobs.bench.speed import median_ms


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> float:
    """Median ms of fn() + backward of a scalar made from its output, over `repeats` runs after two warm-ups."""
    return median_ms(lambda: fn().float().square().mean().backward(), repeats, warmup=2)


def setup(description: str) -> argparse.Namespace:
    """The benchmarks' shared options (--threads, default 2; --repeats, default 10), applied and printed."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads\n")
    return args
