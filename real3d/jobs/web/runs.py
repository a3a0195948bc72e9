"""The web app's runs: one queue that every browser tab shares, one `real3d generate` process at a time.

A run is a folder under the outputs folder, the same one `real3d generate --out` writes; what a page shows is
read from it (config.yaml, train.log, snapshots/, metrics.json), so runs made on the command line appear too
and a restarted server finds its stopped runs again. Each run is its own process, so Cancel is Ctrl-C
(SIGINT: the step finishes, the checkpoint is written) and Resume is `real3d generate --resume`.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ... import config as config_lib
from ...errors import UserError, one_line, shorten
from ..generate import check_prompt, run_config, slug

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")  # a run folder name a URL may carry
MAX_SEEDS = 8  # one form submits at most this many runs
LOG_DIR = ".web"  # the runs' console logs, hidden from the gallery


def generate_presets() -> list[str]:
    """The presets a run may name: every shipped one but `fit` (the preset of `real3d fit`, not of generate)."""
    return [p for p in config_lib.presets() if p != "fit"]


def check_name(name: str) -> str:
    """A run name from a URL: one plain folder name (no separator, no '..', no leading dot), else UserError."""
    if not NAME.fullmatch(name) or ".." in name:
        raise UserError(f"no run named {shorten(name)!r}")
    return name


def parse_seeds(text: str) -> list[int]:
    """'0' or '0, 1, 2' → seeds (at most MAX_SEEDS, each 0…2³¹−1), else a one-line UserError."""
    parts = [p.strip() for p in (text or "0").split(",")]
    if not all(re.fullmatch(r"[0-9]{1,10}", p) and int(p) < 2**31 for p in parts):
        raise UserError(f"seeds are integers separated by commas, like 0,1,2; got {shorten(text)!r}")
    if len(parts) > MAX_SEEDS:
        raise UserError(f"at most {MAX_SEEDS} seeds at once; got {len(parts)}")
    return list(dict.fromkeys(int(p) for p in parts))


@dataclass
class Job:
    """One queued or running `real3d generate` process and what the page shows about it."""

    name: str
    argv: list[str]
    state: str = "queued"  # queued → running → done | stopped (cancelled, resumable) | failed
    error: str = ""
    queued_at: float = field(default_factory=time.time)
    process: subprocess.Popen[bytes] | None = None
    rate: tuple[float, int] | None = None  # (time, step) when the first step of this process was seen

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "error": self.error, "queued_at": self.queued_at}


class Runs:
    """The queue and the run folders. `submit`, `cancel` and `resume` may come from any request thread; one
    worker thread starts the processes in order."""

    def __init__(self, outputs: Path, python: str = sys.executable) -> None:
        self.outputs, self.python = outputs.resolve(), python
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}  # every job this server started, by run name
        self.pending: deque[str] = deque()
        self.lock = threading.Condition()
        self.closed = False
        self.worker = threading.Thread(target=self._work, name="real3d-runs", daemon=True)
        self.worker.start()

    # ---------------------------------------------------------------------------------------- requests

    def submit(self, prompt: str, preset: str, seeds: str, overrides: str, budget: str = "") -> list[str]:
        """Check the prompt, preset, budget and overrides as `real3d generate` would, then queue one run per seed;
        their names. Nothing is queued when anything is wrong (UserError, one line). The weights are not loaded
        here (a Stable Diffusion prior would stay in the server's memory): a run whose weights fail to load
        fails at its start, with its one-line error on its page."""
        extra = overrides.split() if overrides else []
        if any("=" not in o or o.startswith("-") for o in extra):
            raise UserError("overrides are dotted key=value pairs separated by spaces, like steps=300 field.bf16=false")
        presets = generate_presets()
        if preset not in presets:  # only the shipped presets: a page never names a file on the server
            raise UserError(f"unknown preset {shorten(preset)!r}; presets: {', '.join(presets)}")
        seed_list = parse_seeds(seeds)
        cfg = run_config(preset, prompt, extra, budget or None)
        check_prompt(cfg)
        every = {"run.log_every": max(1, cfg.steps // 100), "run.snapshot_every": max(1, cfg.steps // 20)}
        shown = [f"{k}={v}" for k, v in every.items() if not any(o.startswith(k + "=") for o in extra)]
        names = []
        with self.lock:
            for seed in seed_list:
                name = self._free_name(f"{slug(prompt)}-seed{seed}")
                argv = ["generate", prompt, "--preset", preset, "--seed", str(seed), "--out", str(self.outputs / name)]
                argv += (["--budget", budget] if budget else []) + shown + extra
                self.jobs[name] = Job(name, argv)
                self.pending.append(name)
                names.append(name)
            self.lock.notify_all()
        return names

    def cancel(self, name: str) -> dict[str, Any]:
        """A queued run leaves the queue; a running one gets SIGINT and stops after its step with a checkpoint."""
        with self.lock:
            job = self.jobs.get(check_name(name))
            if job is None or job.state not in ("queued", "running"):
                raise UserError(f"run {name!r} is not queued or running")
            if job.state == "queued":
                self.pending.remove(name)
                job.state = "stopped"
            elif job.process is not None:
                job.process.send_signal(signal.SIGINT)
                job.state = "stopping"
        return self.status(name)

    def resume(self, name: str) -> dict[str, Any]:
        """Queue a stopped run again: from its checkpoint (`--resume`), or from the start if it stopped before
        writing one."""
        folder = self.folder(name)
        with self.lock:
            job = self.jobs.get(name)
            if job is not None and job.state in ("queued", "running", "stopping"):
                raise UserError(f"run {name!r} is already {job.state}")
            if (folder / "metrics.json").exists():
                raise UserError(f"run {name!r} is finished")
            if (folder / "checkpoint.pt").exists():
                argv = ["generate", "--resume", str(folder)]
            elif job is not None:
                argv = [*job.argv, "--overwrite"] if "--overwrite" not in job.argv else job.argv
            else:
                raise UserError(f"run {name!r} has no checkpoint to resume from")
            self.jobs[name] = Job(name, argv)
            self.pending.append(name)
            self.lock.notify_all()
        return self.status(name)

    # ------------------------------------------------------------------------------------------ reading

    def folder(self, name: str) -> Path:
        folder = self.outputs / check_name(name)
        if not folder.is_dir() and name not in self.jobs:
            raise UserError(f"no run named {name!r} in {self.outputs}")
        return folder

    def queue(self) -> list[dict[str, Any]]:
        """Jobs queued or running, in the order they run (what every tab shows as the queue)."""
        with self.lock:
            active = [j for j in self.jobs.values() if j.state in ("running", "stopping")]
            return [j.public() for j in active] + [self.jobs[n].public() for n in self.pending]

    def gallery(self) -> list[dict[str, Any]]:
        """Every run folder in the outputs folder, newest first."""
        found = []
        for folder in self.outputs.iterdir():
            if folder.is_dir() and NAME.fullmatch(folder.name) and (folder / "config.yaml").exists():
                found.append((folder.stat().st_mtime, folder.name))
        with self.lock:  # a queued run has no folder yet
            found += [(j.queued_at, n) for n, j in self.jobs.items() if not (self.outputs / n).is_dir()]
        return [self.summary(n) for _, n in sorted(found, reverse=True)]

    def summary(self, name: str) -> dict[str, Any]:
        """What a gallery card shows: prompt, seed, state, judge score."""
        folder = self.outputs / name
        return self._summary(name, folder, _read_yaml(folder / "config.yaml"), _read_json(folder / "metrics.json"))

    def _summary(self, name: str, folder: Path, cfg: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(name)
        return {
            "name": name,
            "prompt": cfg.get("prompt", job.argv[1] if job and len(job.argv) > 1 else ""),
            "seed": cfg.get("seed"),
            "state": self._state(name, folder),
            "judge_score": metrics.get("judge_score"),
            "thumbnail": (folder / "views.png").exists(),
        }

    def status(self, name: str) -> dict[str, Any]:
        """What a run's page shows: state, step / total, ETA, the latest losses and snapshot, metrics, files,
        and whether Resume can continue it (from its checkpoint, or from the start with this server's job)."""
        folder = self.folder(name)
        cfg, metrics = _read_yaml(folder / "config.yaml"), _read_json(folder / "metrics.json")
        last = _last_log_line(folder / "train.log")
        step, total = int(last.get("step", 0)), int(cfg.get("steps", 0) or 0)
        snaps = sorted((folder / "snapshots").glob("step-*.png")) if (folder / "snapshots").is_dir() else []
        job = self.jobs.get(name)
        summary = self._summary(name, folder, cfg, metrics)
        eta = None
        if job is not None and summary["state"] == "running" and step:
            if job.rate is None:
                job.rate = (time.time(), step)
            t0, s0 = job.rate
            if step > s0:
                eta = round((time.time() - t0) / (step - s0) * (total - step))
        files = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        restartable = (folder / "checkpoint.pt").exists() or job is not None
        return {
            **summary,
            "step": step,
            "total": total,
            "eta_s": eta,
            "losses": {k: v for k, v in last.items() if k == "loss" or k.startswith(("loss_", "d_"))},
            "snapshot": f"snapshots/{snaps[-1].name}" if snaps else None,
            "metrics": metrics,
            "files": [f for f in files if f != "checkpoint.pt" and not f.startswith(".")],
            "error": job.error if job else "",
            "resumable": summary["state"] in ("stopped", "failed", "incomplete") and restartable,
        }

    def _state(self, name: str, folder: Path) -> str:
        job = self.jobs.get(name)
        if job is not None and job.state != "done":
            return job.state
        if (folder / "metrics.json").exists():
            return "done"
        return "stopped" if (folder / "checkpoint.pt").exists() else "incomplete"

    def _free_name(self, base: str) -> str:
        name, n = base, 1
        while (self.outputs / name).exists() or name in self.jobs:
            n += 1
            name = f"{base}-{n}"
        return name

    # ------------------------------------------------------------------------------------------ worker

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.pending and not self.closed:
                    self.lock.wait()
                if self.closed:
                    return
                job = self.jobs[self.pending.popleft()]
                log = self.outputs / LOG_DIR / f"{job.name}.log"
                log.parent.mkdir(exist_ok=True)
                with log.open("ab") as out:
                    job.process = subprocess.Popen(
                        [self.python, "-m", "real3d", *job.argv], stdout=out, stderr=subprocess.STDOUT
                    )
                job.state = "running"
            code = job.process.wait()
            with self.lock:
                if code == 0:
                    job.state = "done"
                elif code == 130 or job.state == "stopping":
                    job.state = "stopped"
                else:
                    job.state, job.error = "failed", _error_line(log, code)

    def close(self) -> None:
        """Stop the worker; a running process gets SIGINT (its checkpoint is kept) and is waited for."""
        with self.lock:
            self.closed = True
            self.lock.notify_all()
            running = [j.process for j in self.jobs.values() if j.state in ("running", "stopping") and j.process]
        for process in running:
            process.send_signal(signal.SIGINT)
        for process in running:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _error_line(log: Path, code: int) -> str:
    """The one-line error a failed run printed (`real3d: error: …`), else its last line."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("real3d: ")]
    return one_line((errors or lines or [f"the run exited with code {code}"])[-1])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return _finite(data) if isinstance(data, dict) else {}


def _finite(data: Any) -> Any:
    """JSON for a browser: NaN and infinities (which json.dumps writes but JSON.parse refuses) become null."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_finite(v) for v in data]
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_log_line(path: Path) -> dict[str, Any]:
    """The last complete JSON line of train.log (a line being written is skipped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            return _finite(json.loads(line))
        except ValueError:
            continue
    return {}
