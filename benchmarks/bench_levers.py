"""The speed levers of the Eq. 11 step, each switched off in turn, measured turn about in one process.

    .venv/bin/python benchmarks/bench_levers.py [--threads 2] [--rounds 6] [--steps 8] [--checkpoint CKPT]

The system is `real3d bench speed`'s (preset real3d, both renders every step, lambertian shading). With
`--checkpoint` (a real3d run's checkpoint.pt, e.g. outputs/demo/checkpoint.pt) θ is a trained shape instead
of the initial blob, where every NeRF sample has weight and skipping normals cannot help. Variants run in
turn, `--rounds` times `--steps` steps each, so that the drift of a shared machine falls on all of them;
the table gives the median ms of a whole step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

from real3d import precision
from real3d.jobs.bench.speed import _generator, build_system, eager
from real3d.loop import load
from real3d.system import Real3DSystem, deterministic


@contextmanager
def setting(obj: object, attr: str, value: object) -> Iterator[None]:
    before = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        setattr(obj, attr, before)


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def variants(system: Real3DSystem) -> dict[str, Callable[[], AbstractContextManager[None]]]:
    """Each lever off, one at a time (`as shipped` first)."""
    return {
        "as shipped": nullcontext,
        "UNet eager (no traced graph)": lambda: eager(system.prior),
        "normals at every NeRF sample": lambda: setting(system.model.renderer.cfg, "normal_weight_min", 0.0),
        "normals above w = 1e-4 (the default before 1e-3)": lambda: setting(
            system.model.renderer.cfg, "normal_weight_min", 1e-4
        ),
        "NaN fill of new tensors (deterministic mode's default)": lambda: setting(
            torch.utils.deterministic, "fill_uninitialized_memory", True
        ),
        "1 torch thread (how much the second core gives)": lambda: threads(1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--checkpoint", type=Path, default=None, help="a real3d run's checkpoint.pt (θ to start from)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with deterministic():
        system = build_system("real3d")
        if args.checkpoint is not None:
            system.model.load_state_dict(load(args.checkpoint, "give a real3d run's checkpoint.pt")["model"])
            system.training_step(0, _generator(0))  # occupancy grid and DMTet band of the loaded shape
        if system.discriminator is not None:
            system.discriminator.steps.fill_(1)  # D's lazy R1 off, as in bench speed's step row
        times: dict[str, list[float]] = {name: [] for name in variants(system)}
        for _ in range(args.rounds):
            for name, switch in variants(system).items():
                with switch():
                    system.training_step(1, _generator(0))  # warm-up (a graph is built on first use)
                    for _ in range(args.steps):
                        start = time.perf_counter()
                        system.training_step(1, _generator(0))
                        times[name].append((time.perf_counter() - start) * 1000)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {precision.cpu_name()}, capability "
        f"{torch.backends.cpu.get_cpu_capability()}, precision auto: {precision.name(precision.resolve('auto'))}; "
        f"θ: {args.checkpoint or 'the initial blob'}\n"
    )
    print("| Eq. 11 step (both renders, lambertian) | median ms | min ms |\n|---|---:|---:|")
    for name, ms in times.items():
        print(f"| {name} | {statistics.median(ms):.1f} | {min(ms):.1f} |")


if __name__ == "__main__":
    main()
