"""Cells per hour of one grid: in this process, and on a local Ray with 1 and 2 workers (`real3d batch`).

    python benchmarks/bench_batch.py [--steps 60]

The grid: 2 prompts × 2 seeds of the real3d preset at a small budget (fewer steps and samples than the
preset, the same kind of work). Each setting starts from an empty folder (its own x̃) and the same machine;
Ray's start-up (a few seconds per worker: torch and real3d imported once per worker) is counted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = "a red cube\na blue sphere\n"
SMALL = ["reference.count=8", "reference.steps=4", "system.nerf_resolution=24", "system.dmtet_resolution=32",
         "renderer.num_samples=24", "field.resolution=32", "run.export_grid=32", "run.texture_size=64",
         "run.turntable_frames=8", "run.turntable_size=64"]  # fmt: skip
SETTINGS = [("in process (2 threads)", ["--threads", "2"]), ("Ray, 1 worker × 2 threads", ["--ray", "--threads", "2"]),
            ("Ray, 2 workers × 1 thread", ["--ray", "--threads", "1"])]  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    print(f"CPU: {model}; grid: 2 prompts × 2 seeds, {args.steps} steps each\n")
    print("| setting | cells | wall time | cells / hour |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.txt"
        prompts.write_text(PROMPTS)
        for i, (name, flags) in enumerate(SETTINGS):
            out = Path(tmp) / f"run{i}"
            command = [sys.executable, "-m", "real3d.cli", "batch", str(prompts), "--seeds", "0,1", "--out", str(out),
                       *flags, f"steps={args.steps}", *SMALL, f"reference.cache_dir={out}/cache"]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode:
                print(done.stderr[-2000:])
                return 1
            cells = len(list(out.glob("cells/*/*/*/metrics.json")))
            print(f"| {name} | {cells} | {seconds:.0f} s | {cells * 3600 / seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
