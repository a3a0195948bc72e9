"""A batch's cells: what one (preset, prompt, seed) run needs and gives back as plain data, run anywhere
(`run_job`), and the driver's side of the batch folder (`Store`). Used by `real3d batch` in this process
and by its Ray tasks (batch_ray.py) alike."""

from __future__ import annotations

import json
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from .. import config as config_lib
from ..errors import UserError, one_line
from ..io import atomic_path, write_text
from ..loop import Interrupted
from .generate import GenerateConfig, check_prompt, run_one, slug

SKIP_FILES = {"config.yaml"}  # the worker's own (temp paths); the driver writes the cell's


@dataclass(frozen=True)
class Cell:
    preset: str
    prompt: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.preset}/{slug(self.prompt)}/seed-{self.seed}"

    def folder(self, root: Path) -> Path:
        return root / "cells" / self.key


@dataclass
class Job:
    """What a task needs to run one cell, as plain data (it travels to another machine)."""

    cell: Cell
    config: dict[str, Any]  # the resolved GenerateConfig (config.to_dict)
    checkpoint: bytes | None = None  # the cell's last checkpoint, to resume from


@dataclass
class Result:
    """What a task sends back: the cell's files (relative path → bytes), or the one-line error of a cell that
    failed (and, for a bug rather than a user's mistake, its traceback); new x̃ cache files."""

    cell: Cell
    files: dict[str, bytes] = field(default_factory=dict)
    cache: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None


# ------------------------------------------------------------------------------------------- one cell


def _materialize(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if not (folder / name).exists():
            with atomic_path(folder / name) as tmp:
                tmp.write_bytes(data)


def run_job(
    job: Job,
    cache: dict[str, bytes] | Path,
    prior_files: dict[str, bytes] | None,
    send_checkpoint: Callable[[bytes], None],
    threads: int,
) -> Result:
    """Run one cell in a temp folder of this machine (resumed from job.checkpoint when given): its files.
    `cache`: the x̃ cache files as data (a task elsewhere), or the driver's cache folder (in its process);
    `prior_files`: the prior's weights folder as data, None where the config's path is at hand."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="real3d-cell-") as tmp:
        root = Path(tmp)
        cache_dir = cache if isinstance(cache, Path) else root / "cache"
        if not isinstance(cache, Path):
            _materialize(cache_dir, cache)
        cfg_dict = config_lib.merge(job.config, {"reference": {"cache_dir": str(cache_dir)}})
        if prior_files is not None:
            _materialize(root / "prior", prior_files)
            cfg_dict = config_lib.merge(cfg_dict, {"prior": {"path": str(root / "prior")}})
        try:
            cfg = config_lib.parse(GenerateConfig, cfg_dict)
            check_prompt(cfg)
            run = root / "run"
            run.mkdir()
            if job.checkpoint is not None:
                (run / "checkpoint.pt").write_bytes(job.checkpoint)
            run_one(cfg, run, job.checkpoint is not None, False, None, lambda p: send_checkpoint(p.read_bytes()))
        except Interrupted:
            raise  # Ctrl-C or SIGTERM stops the batch (checkpoint written); it is no failure of this cell
        except UserError as e:
            return Result(job.cell, error=one_line(str(e)))
        except Exception as e:  # a bug: this cell fails with its traceback, the other cells go on
            error = f"internal error ({type(e).__name__}: {one_line(str(e), 200)}); please report failed.json"
            return Result(job.cell, error=error, traceback=traceback.format_exc())
        files = {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}
        made = (
            {}
            if isinstance(cache, Path)
            else {p.name: p.read_bytes() for p in cache_dir.iterdir() if p.name not in cache}
        )
    return Result(job.cell, {k: v for k, v in files.items() if k not in SKIP_FILES}, made)


# --------------------------------------------------------------------------------------------- driver


def _portable(config: dict[str, Any]) -> dict[str, Any]:
    """A cell config as two runs of one cell compare it: the shipped prior's folder named, not located (the same
    cell in a clone at another path, a committed bench folder carried on elsewhere, compares equal), and
    without `run.snapshot_every`, which only adds pictures (the bench's evolution cell is the first prompt
    with the first seed *given*, so `--seeds 1,2` and later `--seeds 0,1,2` disagree on it)."""
    from ..priors.embedded import SHIPPED

    path = str(config.get("prior", {}).get("path", ""))
    if Path(path).parts[-2:] == SHIPPED.parts[-2:]:
        config = config | {"prior": config["prior"] | {"path": "<shipped>"}}
    run = {k: v for k, v in config.get("run", {}).items() if k != "snapshot_every"}
    return config | {"run": run}


def _completed(saved: Path, cls: type) -> Any:
    """A saved cell config with every key the config has gained since at its default (a new key's default
    keeps the old behaviour), so a bench folder outlives added options; as saved where it no longer parses."""
    data = yaml.safe_load(saved.read_text())
    try:
        return config_lib.to_dict(config_lib.parse(cls, data))
    except UserError:
        return data


@dataclass
class Store:
    """The driver's side of a batch folder: cell folders, the x̃ cache, streamed checkpoints, results."""

    root: Path

    def check_config(self, cell: Cell, cfg: GenerateConfig) -> str:
        """The cell's config as YAML; a folder already run with another config is an error (its results would
        mix two grids)."""
        saved, text = cell.folder(self.root) / "config.yaml", yaml.safe_dump(config_lib.to_dict(cfg), sort_keys=False)
        if saved.exists() and _portable(_completed(saved, type(cfg))) != _portable(yaml.safe_load(text)):
            raise UserError(
                f"{saved.parent} was run with another config (steps, overrides or budget changed); give "
                "another --out, or delete that folder"
            )
        return text

    def job(self, cell: Cell, cfg: GenerateConfig) -> Job:
        """The cell's job, with its checkpoint when an earlier run left one; its config.yaml written."""
        folder = cell.folder(self.root)
        write_text(folder / "config.yaml", self.check_config(cell, cfg))
        ckpt = folder / "checkpoint.pt"
        return Job(cell, config_lib.to_dict(cfg), ckpt.read_bytes() if ckpt.exists() else None)

    def cache(self) -> dict[str, bytes]:
        folder = self.root / "cache"
        return {p.name: p.read_bytes() for p in folder.glob("*.npz")} if folder.exists() else {}

    def finished(self, cell: Cell) -> bool:
        return (cell.folder(self.root) / "metrics.json").exists()

    def save_checkpoint(self, cell: Cell, data: bytes) -> None:
        with atomic_path(cell.folder(self.root) / "checkpoint.pt") as tmp:
            tmp.write_bytes(data)

    def save(self, result: Result) -> None:
        """Write a finished cell atomically, metrics.json last (the mark of a finished cell), or its error."""
        folder = result.cell.folder(self.root)
        for name, data in result.cache.items():
            with atomic_path(self.root / "cache" / name) as tmp:
                tmp.write_bytes(data)
        if result.error is not None:
            failure = {"error": result.error} | ({"traceback": result.traceback} if result.traceback else {})
            write_text(folder / "failed.json", json.dumps(failure, indent=2))
            return
        (folder / "failed.json").unlink(missing_ok=True)
        for name, data in sorted(result.files.items(), key=lambda kv: kv[0] == "metrics.json"):
            with atomic_path(folder / name) as tmp:
                tmp.write_bytes(data)


class Progress:
    """One bar for the batch: cells done, running and failed; ETA by tqdm."""

    def __init__(self, total: int, done: int, desc: str = "batch cells") -> None:
        self.bar = tqdm(total=total, initial=done, desc=desc, dynamic_ncols=True)
        self.running = self.failed = 0

    def update(self, running: int, finished: Result | None = None) -> None:
        self.running = running
        if finished is not None:
            self.failed += finished.error is not None
            self.bar.update(1)
        self.bar.set_postfix_str(f"running {self.running}, failed {self.failed}")

    def close(self) -> None:
        self.bar.close()


def prior_files(cfg: GenerateConfig) -> dict[str, bytes] | None:
    """The prior's weights folder as data, for tasks on machines that lack it (None: the embedded prior that
    ships with real3d, or the offline Hugging Face cache on each machine)."""
    from ..priors.embedded import SHIPPED

    path = getattr(cfg.prior, "path", None)
    if path is None or Path(path).resolve() == SHIPPED.resolve():
        return None
    return {str(p.relative_to(path)): p.read_bytes() for p in Path(path).rglob("*") if p.is_file()}
