"""The long setting of tests/test_fuzz.py: the CLI fuzzed in process with REAL3D_FUZZ_EXAMPLES per property.

    python benchmarks/fuzz_cli.py [--examples 2500]     # 4 properties: ≥ 10,000 invocations

Prints a table: invocations, wall time, failures (a traceback or anything but one error line fails the run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=2500, help="examples per fuzzed property (default 2500)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "calls"
        env = os.environ | {"REAL3D_FUZZ_EXAMPLES": str(args.examples), "REAL3D_FUZZ_REPORT": str(report)}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"],
                              cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
        seconds = time.perf_counter() - start
        calls = int(report.read_text()) if report.exists() else 0
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    print("| examples per property | invocations | wall time | result |")
    print("|---|---|---|---|")
    print(f"| {args.examples} | {calls:,} | {seconds / 60:.1f} min | {summary} |")
    if proc.returncode:
        print(proc.stdout[-4000:])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
