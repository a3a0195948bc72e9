"""Shared timing of the benchmarks: median milliseconds of forward + backward."""
from __future__ import annotations

import time
from typing import Callable

import torch


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> float:
    """Median ms of fn() + backward of a scalar made from its output, over `repeats` runs after two warm-ups."""
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        fn().float().square().mean().backward()
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]
