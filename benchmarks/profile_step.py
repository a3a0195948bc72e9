"""Where an Eq. 11 step of a real run spends its time: per part of the step and per torch operator.

    .venv/bin/python benchmarks/profile_step.py --checkpoint outputs/demo/checkpoint.pt [--step 300] [--threads 2]

θ is the checkpoint's (the demo's trained cube); the system is a `real3d generate "a red cube"` run's, with its
own renderer schedule and shading draws at `--step` (300: both renderers likely; 500: DMTet-heavy). Prints
the mean ms of each part over `--steps` steps, then the operators by self CPU time under torch.profiler,
with the field MLP's matrix products (a dimension above 4000: one row per sample) summed apart.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from real3d import precision
from real3d.jobs.bench.speed import _generator
from real3d.jobs.generate import run_config
from real3d.loop import load
from real3d.system import Real3DSystem, build_prior, deterministic

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="a real3d run's checkpoint.pt")
    p.add_argument("--step", type=int, default=300)
    p.add_argument("--steps", type=int, default=30, help="steps timed per part")
    p.add_argument("--profiled", type=int, default=10, help="steps under the profiler")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=15)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = run_config("real3d", "a red cube")
    with deterministic():
        system = Real3DSystem(cfg, build_prior(cfg))
        system.train()
        system.model.load_state_dict(load(args.checkpoint, "give a real3d run's checkpoint.pt")["model"])
        gen = _generator(0)
        for _ in range(5):  # warm-up: occupancy grid and DMTet band of the loaded shape, traced UNet
            system.training_step(args.step, gen)
        parts: dict[str, float] = {}
        start = time.perf_counter()
        for i in range(args.steps):
            for k, v in system.training_step(args.step + i, gen).items():
                if k.startswith("ms_"):
                    parts[k[3:]] = parts.get(k[3:], 0.0) + v / args.steps
        step_ms = (time.perf_counter() - start) / args.steps * 1000
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for i in range(args.profiled):
                system.training_step(args.step + i, gen)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {precision.cpu_name()}, capability "
        f"{torch.backends.cpu.get_cpu_capability()}, flags {' '.join(precision.flags_that_matter())}, precision "
        f"auto: {precision.name(precision.resolve('auto'))}; θ: {args.checkpoint}, step {args.step}\n"
    )
    print(
        f"step: {step_ms:.1f} ms (mean of {args.steps}); parts: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
    )
    per_step = 1e3 * args.profiled  # profiler µs → ms per step
    field_mm = sum(
        e.self_cpu_time_total
        for e in prof.key_averages(group_by_input_shape=True)
        if e.key in MATMULS and any(len(s) == 2 and max(s) > 4000 for s in e.input_shapes if isinstance(s, list))
    )
    print(f"field MLP matrix products (a dimension > 4000): {field_mm / per_step:.1f} ms a step\n")
    print("| operator | self ms a step | calls a step |\n|---|---:|---:|")
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    for e in events[: args.rows]:
        print(f"| {e.key} | {e.self_cpu_time_total / per_step:.1f} | {e.count / args.profiled:.0f} |")


if __name__ == "__main__":
    main()
