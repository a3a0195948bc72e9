"""One resumable training loop for every trainer (generate's Eq. 11, the embedded prior's Eq. 1, the judge).

    loop = Loop(path, state, total=cfg.steps, checkpoint_every=100, resume_hint="real3d generate --resume D")
    step = loop.begin(resume)                      # 0, or the step of the checkpoint at `path`
    step = loop.run(step, train_step, on_step=log) # train_step(step) -> loss; returns the last step done

- checkpoints are written atomically (temp file + rename) every `checkpoint_every` steps, at the end, and when
  a stop is asked; they are loaded with `weights_only=True` (tensors, numbers, strings and containers only);
- Ctrl-C or SIGTERM (what `timeout`, Ray and Kubernetes send) stops after the current step with a checkpoint
  and raises Interrupted with the command that resumes; further signals during the stop only wait for it;
- a non-finite loss rolls back to the last checkpoint, calls `on_rollback` (e.g. halve the learning rate) and
  goes on, at most `max_rollbacks` times;
- temp files of a write that a kill interrupted are removed when the loop begins.
"""

from __future__ import annotations

import math
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from .errors import UserError
from .io import save_torch, stale_temp_files

MAX_ROLLBACKS = 3
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(UserError):
    """Ctrl-C or SIGTERM: the run stopped after a whole step with a checkpoint written."""

    exit_code = 130


class Stateful(Protocol):
    """What a loop checkpoints: everything a resume needs (weights, optimiser, schedule, RNG), as plain data."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@contextmanager
def stop_requests() -> Iterator[dict[str, bool]]:
    """While inside, SIGINT and SIGTERM set flag["stop"] instead of killing the process (the loop stops after
    the current step); later ones say that the stop is under way. Outside the main thread: no handlers."""
    flag = {"stop": False}

    def handler(signum: int, frame: object) -> None:
        if flag["stop"]:
            print("real3d: stopping after this step, writing the checkpoint; please wait", file=sys.stderr)
        flag["stop"] = True

    try:
        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    except ValueError:  # not the main thread (a worker thread of a server): no signal handlers there
        previous = {}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def halve_learning_rate(optimizer: torch.optim.Optimizer, scheduler: Any = None) -> None:
    """Halve the learning rate of every parameter group (and the base rates a scheduler scales)."""
    for group in optimizer.param_groups:
        group["lr"] *= 0.5
    if scheduler is not None:
        scheduler.base_lrs = [lr * 0.5 for lr in scheduler.base_lrs]


def load(path: Path, remedy: str) -> dict[str, Any]:
    """A checkpoint written by a Loop (weights_only: no code runs); a missing or unreadable file is one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no checkpoint at {path}; {remedy}") from None
    except Exception as e:
        raise UserError(
            f"checkpoint {path} is corrupt or not a real3d checkpoint ({type(e).__name__}); {remedy}"
        ) from None


@dataclass
class Loop:
    """Steps of a training, kept in the checkpoint at `path` (see the module docstring)."""

    path: Path
    state: Stateful
    total: int
    checkpoint_every: int
    resume_hint: str  # the command that continues a stopped run, for the Interrupted message
    max_rollbacks: int = MAX_ROLLBACKS
    on_rollback: Callable[[int], None] = lambda step: None  # after a rollback to `step` (e.g. halve the lr)
    on_save: Callable[[int], None] = lambda step: None  # after each checkpoint (e.g. send it to a batch's driver)

    def begin(self, resume: bool) -> int:
        """Remove the temp files that interrupted writes left in the checkpoint's folder; the step to start
        from: that of the checkpoint when resuming, else 0, with the fresh state checkpointed at once (it
        replaces an older run's, and a rollback in the first interval goes back to it)."""
        for tmp in stale_temp_files(self.path.parent):  # the run's folder: checkpoints and exports alike
            tmp.unlink(missing_ok=True)
        if resume:
            return self.restore("start without resuming")
        self.save(0)
        return 0

    def save(self, step: int) -> None:
        save_torch(self.path, {**self.state.state_dict(), "step": step})
        self.on_save(step)

    def restore(self, remedy: str = "delete it and start again") -> int:
        """Load the checkpoint into `state`; its step."""
        ckpt = load(self.path, remedy)
        try:
            self.state.load_state_dict(ckpt)
            return int(ckpt["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise UserError(f"checkpoint {self.path} does not fit this run ({type(e).__name__}); {remedy}") from None

    def run(
        self,
        start: int,
        train_step: Callable[[int], float],
        on_step: Callable[[int, float], None] = (lambda step, loss: None),
        stop: Callable[[int], bool] = lambda step: False,
    ) -> int:
        """train_step(step) for step = start..total-1; on_step(step + 1, loss) after each finite one. Returns the
        number of steps done: `total`, or fewer where `stop(done)` ended the run early (checkpoint written)."""
        rollbacks, step = 0, start
        with stop_requests() as signals:
            while step < self.total:
                loss = train_step(step)
                if not math.isfinite(loss):
                    rollbacks += 1
                    if rollbacks > self.max_rollbacks:
                        raise UserError(
                            f"the loss stayed non-finite after {self.max_rollbacks} rollbacks; lower "
                            "the learning rate (or the guidance scale) and rerun"
                        )
                    step = self.restore()
                    self.on_rollback(step)
                    continue
                step += 1
                on_step(step, loss)
                early = stop(step) and step < self.total
                if step % self.checkpoint_every == 0 or step == self.total or signals["stop"] or early:
                    self.save(step)
                if signals["stop"] and step < self.total:
                    raise Interrupted(
                        f"interrupted at step {step} of {self.total}, checkpoint written; continue "
                        f"with: {self.resume_hint}"
                    )
                if early:
                    break
        return step
