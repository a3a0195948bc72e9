"""Runs an hour on a small CPU: one `real3d generate` with all the cores' threads, or one run per core at once?

    .venv/bin/python benchmarks/threads.py [--prompt "a red cube"] [--steps 100] [--cores 2]

Times `real3d generate PROMPT steps=N run.export_files=false` by wall clock: one run with `--cores` threads,
then `--cores` runs side by side with one thread each (OMP_NUM_THREADS), after a first run that caches x̃.
Prints each layout's wall seconds and runs a minute: what `make bench-quality --workers/--threads` should use.
Run it on an idle machine; it prints the CPU beside the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from real3d.precision import flags_that_matter


def runs(prompt: str, steps: int, parallel: int, threads: int, out: Path) -> float:
    """Wall seconds of `parallel` runs at once, each with `threads` threads."""
    cli = Path(sys.executable).with_name("real3d")
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                str(cli),
                "generate",
                prompt,
                f"steps={steps}",
                "run.export_files=false",
                "--overwrite",
                "--out",
                str(out / f"run-{parallel}x{threads}-{i}"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(parallel)
    ]
    if any(p.wait() for p in procs):
        raise SystemExit(f"a run of {parallel} x {threads} threads failed")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompt", default="a red cube")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--cores", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs(args.prompt, 1, 1, args.cores, Path(tmp))  # x̃ sampled and cached; the prior's files warm
        layouts = [(1, args.cores), (args.cores, 1)]
        wall = {layout: runs(args.prompt, args.steps, *layout, Path(tmp)) for layout in layouts}
    flags = " ".join(flags_that_matter())
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, flags {flags}; {args.steps} steps of {args.prompt!r}")
    print("\n| layout | wall s | runs a minute |\n|---|---:|---:|")
    for (parallel, threads), seconds in wall.items():
        print(f"| {parallel} run(s) x {threads} thread(s) | {seconds:.1f} | {60 * parallel / seconds:.2f} |")


if __name__ == "__main__":
    main()
