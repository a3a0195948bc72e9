"""`real3d batch` in process and on a local Ray cluster started by the test (issue #21)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from real3d.cli import main
from real3d.errors import UserError
from real3d.jobs import batch as batch_lib
from tests.test_generate import tiny

PROMPTS = "a red cube\n# a comment\na majestic dragon\na blue sphere\n"
VOLATILE = {"seconds", "ms_per_step", "peak_rss_mb"}  # timings; everything else must match


def numbers(root: Path) -> dict[str, dict]:
    out = {}
    for f in sorted(root.glob("cells/*/*/*/metrics.json")):
        out[str(f.parent.relative_to(root))] = {k: v for k, v in json.loads(f.read_text()).items() if k not in VOLATILE}
    return out


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("batch")
    (tmp / "prompts.txt").write_text(PROMPTS)
    return tmp / "prompts.txt", [*tiny(tmp), "steps=6", "run.checkpoint_every=2"]


@pytest.fixture(scope="module")
def in_process(grid: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    prompts, settings = grid
    out = tmp_path_factory.mktemp("in-process")
    assert main(["batch", str(prompts), "--seeds", "0,1", "--out", str(out), "--threads", "1", *settings]) == 0
    return out


def test_a_bad_prompt_fails_only_its_cells(in_process: Path) -> None:
    cells = json.loads((in_process / "results.json").read_text())["cells"]
    assert [(c["prompt"], c["status"]) for c in cells if c["seed"] == 0] == [
        ("a red cube", "done"), ("a majestic dragon", "failed"), ("a blue sphere", "done")]  # fmt: skip
    failed = next(c for c in cells if c["status"] == "failed")
    assert "unknown word 'majestic'" in failed["error"]
    assert (in_process / "cells/real3d/a-red-cube/seed-1/model.glb").stat().st_size > 0
    assert "| real3d | a blue sphere | 1 | done |" in (in_process / "results.md").read_text()
    assert (in_process / "contact-real3d.png").exists() and list((in_process / "cache").glob("*.npz"))


def test_the_report_of_a_batch_embeds_its_finished_models(in_process: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(in_process), "--out", str(out), "--max-models", "3"]) == 0
    page = out.read_text()
    assert (
        page.count('<model-viewer class="model"') == 3 and "the first 3 are in this file" in page
    )  # of 4 finished cells
    assert "<td>a majestic dragon</td>" in page and "<td>failed: unknown word &#x27;majestic&#x27;" in page


def test_a_rerun_skips_finished_cells(grid: tuple[Path, list[str]], in_process: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    ran: list[object] = []
    monkeypatch.setattr(batch_lib, "run_job", lambda *a, **k: ran.append(a) or pytest.fail("a finished cell ran"))
    prompts, settings = grid
    assert main(["batch", str(prompts), "--seeds", "0,1", "--out", str(in_process), "--threads", "1", *settings]) == 0
    assert ran == []


def test_a_bug_in_one_cell_fails_that_cell_and_ctrl_c_stops_the_batch(
    grid: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal error is that cell's failure (with its traceback), not the batch's; Interrupted is no
    failure of a cell: the batch stops with it and the cell runs again next time."""
    from real3d.jobs import cells as cells_lib
    from real3d.loop import Interrupted

    def run_one(cfg, *args):
        if cfg.prompt == "a red cube":
            raise IndexError("index 3 is out of bounds")
        return real_run_one(cfg, *args)

    real_run_one = cells_lib.run_one
    monkeypatch.setattr(cells_lib, "run_one", run_one)
    prompts, settings = grid
    out = tmp_path / "out"
    assert main(["batch", str(prompts), "--out", str(out), "--threads", "1", *settings]) == 0
    failure = json.loads((out / "cells/real3d/a-red-cube/seed-0/failed.json").read_text())
    assert failure["error"].startswith("internal error (IndexError: index 3 is out of bounds)")
    assert "raise IndexError" in failure["traceback"]
    assert (out / "cells/real3d/a-blue-sphere/seed-0/metrics.json").exists()  # the next cell still ran

    def interrupted(cfg, *args):
        raise Interrupted("interrupted at step 2 of 6")

    monkeypatch.setattr(cells_lib, "run_one", interrupted)
    assert main(["batch", str(prompts), "--out", str(out), "--threads", "1", *settings]) == 130
    assert "internal error" in (out / "cells/real3d/a-red-cube/seed-0/failed.json").read_text()  # not overwritten


def test_the_in_process_path_does_not_import_ray() -> None:
    code = "import sys, real3d.cli; real3d.cli.build_parser(); import real3d.jobs.batch; print('ray' in sys.modules)"
    assert subprocess.run([".venv/bin/python", "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def own_ray_workers() -> list[int]:
    """PIDs of the `ray::execute_cell` workers this test process started (its descendants): a Ray that another
    program runs on the same machine, a bench say, is left alone."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            parent[int(pid)] = int(rest.rsplit(") ", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # a process that ended while being read
            continue

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    def cmdline(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""

    return [pid for pid in parent if descends(pid) and cmdline(pid).startswith(b"ray::execute_cell")]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_same_metrics_as_in_process(ray_cluster, grid: tuple[Path, list[str]], in_process: Path,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    prompts, settings = grid
    out = tmp_path / "ray"
    args = ["batch", str(prompts), "--seeds", "0,1", "--out", str(out), "--threads", "1", "--ray", *settings]
    assert main(args) == 0
    assert numbers(out) == numbers(in_process) and len(numbers(out)) == 4
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert sorted(c["prompt"] for c in cells if c["status"] == "failed") == ["a majestic dragon"] * 2
    from real3d.jobs import batch_ray

    monkeypatch.setattr(batch_ray, "execute_cell", None)  # a rerun on Ray submits nothing: every cell is done
    assert main(args) == 0


def test_a_worker_killed_mid_task_is_retried_from_its_checkpoint(ray_cluster, grid: tuple[Path, list[str]],
                                                                 in_process: Path, tmp_path: Path) -> None:  # fmt: skip
    prompts, settings = grid
    out, killed = tmp_path / "killed", list[bool]()

    def kill_a_worker_after_a_checkpoint() -> None:
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            workers = own_ray_workers()
            if workers and list(out.glob("cells/*/*/*/checkpoint.pt")):  # a checkpoint streamed: a task is mid-run
                try:
                    os.kill(workers[0], signal.SIGKILL)
                except ProcessLookupError:  # it ended between the scan and the kill: try the next one
                    continue
                killed.append(True)
            time.sleep(0.2)

    watcher = threading.Thread(target=kill_a_worker_after_a_checkpoint, daemon=True)
    watcher.start()
    args = ["batch", str(prompts), "--seeds", "0,1", "--out", str(out), "--threads", "1", "--ray", *settings]
    assert main(args) == 0
    watcher.join()
    assert killed == [True]
    assert numbers(out) == numbers(in_process)  # every cell finished, as if nothing happened
    assert not [p.name for p in out.rglob("*") if ".tmp" in p.name]  # nothing half-written


def test_a_bench_with_workers_starts_a_ray_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`--workers N` never joins a Ray that is already running: one left by the run before may be shutting
    down, and its tasks would be lost with it."""
    ray = pytest.importorskip("ray")
    from real3d.jobs import batch_ray
    from real3d.jobs.bench import quality

    inits: list[dict] = []
    monkeypatch.setattr(ray, "init", lambda **kw: inits.append(kw))
    batch_ray.connect("local", 4)
    assert inits == [{"address": "local", "num_cpus": 4, "include_dashboard": False, "log_to_driver": False}]

    def refuse(**kw: object) -> None:
        raise RuntimeError("no room")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(UserError, match="cannot start a local Ray .* without --workers"):
        batch_ray.connect("local", 4)
    asked: list[str | None] = []
    monkeypatch.setattr(quality, "plan", lambda settings, root: {})
    monkeypatch.setattr(quality, "execute", lambda store, configs, address, *a, **kw: asked.append(address) or 0.0)
    monkeypatch.setattr(quality, "summarize", lambda settings, root: {})
    quality.bench(None, tmp_path, workers=2)
    quality.bench(None, tmp_path, workers=1)
    quality.bench(None, tmp_path, workers=2, ray_address="auto")
    assert asked == ["local", None, "auto"]
