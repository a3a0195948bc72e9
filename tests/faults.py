"""`python -m tests.faults FAULT ARG -- real3d arguments`: the real3d CLI with one fault injected (test support).

FAULT is one of (or `none 0`: no fault)
  kill-at-step S   SIGKILL at the start of training step S (between checkpoints)
  term-at-step S   SIGTERM at the start of training step S (what timeout, Ray, Kubernetes send)
  kill-in-save N   SIGKILL in the N-th checkpoint write of this process, half of its temp file written
  kill-in-export   SIGKILL while model.glb is being written, half of its temp file written
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path
from typing import Any


def _half_then_kill(path: Path, data: bytes) -> None:
    path.write_bytes(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)


def inject(fault: str, arg: int) -> None:
    import torch

    from real3d import export, system

    if fault in ("kill-at-step", "term-at-step"):
        step_of = system.Real3DSystem.training_step
        sig = signal.SIGKILL if fault == "kill-at-step" else signal.SIGTERM

        def training_step(self: Any, step: int, generator: Any) -> dict[str, float]:
            if step == arg:
                os.kill(os.getpid(), sig)
            return step_of(self, step, generator)

        system.Real3DSystem.training_step = training_step  # type: ignore[method-assign]
    elif fault == "kill-in-save":
        save, calls = torch.save, []

        def counted(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            calls.append(1)
            if len(calls) == arg:
                buffer = io.BytesIO()
                save(obj, buffer)
                _half_then_kill(Path(f), buffer.getvalue())
            save(obj, f, *args, **kwargs)

        torch.save = counted
    elif fault == "kill-in-export":
        from real3d.io import atomic_path

        def write_glb(path: Path, mesh: Any) -> None:
            with atomic_path(path) as tmp:
                _half_then_kill(tmp, export._trimesh(mesh).export(file_type="glb"))

        export.write_glb = write_glb  # write_exports looks it up in real3d.export
    elif fault != "none":
        raise SystemExit(f"unknown fault {fault}")


if __name__ == "__main__":
    fault, arg, sep, *argv = sys.argv[1:]
    assert sep == "--"
    inject(fault, int(arg))
    from real3d.cli import main

    sys.exit(main(argv))
