"""A run killed at the worst moments and resumed each time ends as if nothing happened (issue #20).

Each stage is a real process (`python -m tests.faults`): SIGTERM mid-run, SIGKILL mid-checkpoint, SIGKILL
between checkpoints and SIGKILL mid-export, each followed by `real3d generate --resume`. The end: the same
model.glb, byte for byte, as an uninterrupted run of the same seed, every step logged once, no temp file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.cpu import THREADS
from tests.test_generate import tiny

ROOT = Path(__file__).resolve().parents[1]
STEPS, EVERY = 20, 5


def real3d(fault: str | None, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tests.faults", *(fault.split() if fault else ["none", "0"]), "--", *argv]
    env = os.environ | {"OMP_NUM_THREADS": str(THREADS)}  # every stage alike: the same sums, the same bytes
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def step_of(run: Path) -> int:
    return int(torch.load(run / "checkpoint.pt", weights_only=True)["step"])


def logged_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "train.log").read_text().splitlines()]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tmp = tmp_path_factory.mktemp("crash")
    return [*tiny(tmp), f"steps={STEPS}", f"run.checkpoint_every={EVERY}", "run.log_every=1"]


def test_a_killed_and_resumed_run_ends_as_an_uninterrupted_one(tmp_path: Path, settings: list[str]) -> None:
    whole, run = tmp_path / "whole", tmp_path / "run"
    done = real3d(None, "generate", "a red cube", "--out", str(whole), *settings)
    assert done.returncode == 0, done.stderr[-2000:]

    stopped = real3d("term-at-step 7", "generate", "a red cube", "--out", str(run), *settings)
    assert stopped.returncode == 130 and f"real3d generate --resume {run}" in stopped.stderr.splitlines()[-1]
    assert step_of(run) == 8  # stopped after the step under way, with a checkpoint

    resume = ["generate", "--resume", str(run)]
    killed = real3d("kill-in-save 2", *resume)  # the checkpoints of steps 10 (whole) and 15 (half written)
    assert killed.returncode == -9 and step_of(run) == 10  # one interval lost, the last checkpoint whole
    assert len(list(run.glob(".checkpoint.*.tmp.pt"))) == 1  # what the kill left

    killed = real3d("kill-at-step 17", *resume)
    assert killed.returncode == -9 and step_of(run) == 15
    assert not list(run.glob(".checkpoint.*.tmp.pt"))  # cleaned when the resumed run began

    killed = real3d("kill-in-export 0", *resume)
    assert killed.returncode == -9 and step_of(run) == STEPS and not (run / "model.glb").exists()

    finished = real3d(None, *resume)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert (run / "model.glb").read_bytes() == (whole / "model.glb").read_bytes()
    assert logged_steps(run) == logged_steps(whole) == list(range(1, STEPS + 1))
    assert not [p.name for p in run.rglob("*") if ".tmp" in p.name]
