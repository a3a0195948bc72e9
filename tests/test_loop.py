"""real3d.loop: the one resumable loop of every trainer — resume, stop signals, NaN rollback, temp files."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from real3d.errors import UserError
from real3d.loop import Interrupted, Loop, halve_learning_rate


class Toy:
    """A linear fit with SGD and its own generator: enough state to show a resume is exact."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 1)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.gen = torch.Generator().manual_seed(1)

    def step(self, step: int) -> float:
        x = torch.randn(8, 3, generator=self.gen)
        loss = ((self.model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])


def loop_of(toy: Toy, path: Path, total: int = 10) -> Loop:
    return Loop(
        path,
        toy,
        total,
        checkpoint_every=3,
        resume_hint="rerun with --resume",
        on_rollback=lambda step: halve_learning_rate(toy.opt),
    )


def test_a_stopped_run_resumed_ends_where_an_unstopped_one_does(tmp_path: Path) -> None:
    whole = Toy()
    loop_of(whole, tmp_path / "a.pt").run(loop_of(whole, tmp_path / "a.pt").begin(False), whole.step)

    stopped = Toy()
    loop = loop_of(stopped, tmp_path / "b.pt")
    with pytest.raises(Interrupted, match="interrupted at step 5 of 10.*rerun with --resume"):
        loop.run(
            loop.begin(False),
            lambda s: stopped.step(s) if s != 4 else os.kill(os.getpid(), signal.SIGTERM) or stopped.step(s),
        )
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 5  # the stop wrote a checkpoint
    resumed = Toy()
    loop = loop_of(resumed, tmp_path / "b.pt")
    assert loop.run(loop.begin(True), resumed.step) == 10
    assert torch.equal(whole.model.weight, resumed.model.weight)


def test_a_second_signal_waits_for_the_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    toy, before = Toy(), signal.getsignal(signal.SIGINT)
    loop = loop_of(toy, tmp_path / "c.pt")

    def twice(step: int) -> float:
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return toy.step(step)

    with pytest.raises(Interrupted):
        loop.run(loop.begin(False), twice)
    assert torch.load(tmp_path / "c.pt", weights_only=True)["step"] == 2
    assert "please wait" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # the handler put back


def test_a_non_finite_loss_rolls_back_and_halves_the_learning_rate(tmp_path: Path) -> None:
    toy, seen = Toy(), []
    loop = loop_of(toy, tmp_path / "d.pt")

    def nan_once_at_7(step: int) -> float:
        seen.append(step)
        return math.nan if step == 7 and seen.count(7) == 1 else toy.step(step)

    assert loop.run(loop.begin(False), nan_once_at_7) == 10
    assert seen == [0, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9]  # back to the checkpoint of step 6
    assert toy.opt.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(UserError, match="non-finite after 3 rollbacks"):
        always = loop_of(toy, tmp_path / "e.pt")
        always.run(always.begin(False), lambda step: math.nan)


def test_temp_files_of_a_killed_write_are_removed_and_bad_checkpoints_are_one_line(tmp_path: Path) -> None:
    dead = tmp_path / ".f.999999999.tmp.pt"  # the pid of no process
    alive = tmp_path / f".f.{os.getppid()}.tmp.pt"  # a write in progress (a process that runs)
    dead.write_bytes(b"half")
    alive.write_bytes(b"half")
    loop = loop_of(Toy(), tmp_path / "f.pt")
    assert loop.begin(False) == 0
    assert not dead.exists() and alive.exists()
    (tmp_path / "f.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt or not a real3d checkpoint"):
        loop.begin(True)
    with pytest.raises(UserError, match="no checkpoint at"):
        loop_of(Toy(), tmp_path / "missing.pt").begin(True)
    torch.save({"step": 1, "other": 2}, tmp_path / "f.pt")
    with pytest.raises(UserError, match="does not fit this run"):
        loop.begin(True)
