"""The cells of a batch as Ray tasks (imported only by `real3d batch --ray`; the in-process path needs no Ray).

Each cell is one task asking Ray for `threads` CPUs (and a GPU for the Stable Diffusion presets). The x̃ cache
files and the prior's weights are put in Ray's object store once and shared by every task. A task sends
each checkpoint to an Inbox actor as it writes it; the driver drains the inbox into the cell folders while it
waits, and a task that Ray retries (its worker or node died) starts from the inbox's latest checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

import ray

from ..errors import UserError
from .batch import Cell, Job, Progress, Result, Store, prior_files, run_job
from .generate import GenerateConfig


@ray.remote(num_cpus=0)
class Inbox:
    """Latest checkpoint per cell, sent by tasks as they go (`drain` hands the new ones to the driver), and
    the x̃ cache files known so far, so that a task started later reuses what an earlier one sampled."""

    def __init__(self) -> None:
        self.latest: dict[str, bytes] = {}
        self.fresh: set[str] = set()
        self.files: dict[str, list[Any]] = {}  # x̃ cache file → [its object ref] (in a list: passed, not fetched)

    def add_cache(self, name: str, ref: list[Any]) -> None:
        self.files.setdefault(name, ref)

    def cache(self) -> dict[str, list[Any]]:
        return self.files

    def put(self, key: str, data: bytes) -> None:
        self.latest[key] = data
        self.fresh.add(key)

    def get(self, key: str) -> bytes | None:
        return self.latest.get(key)

    def drain(self) -> dict[str, bytes]:
        out = {k: self.latest[k] for k in self.fresh}
        self.fresh.clear()
        return out


@ray.remote
def execute_cell(job: Job, prior: Any, inbox: Any, threads: int) -> Result:
    """One cell on a worker: from the inbox's checkpoint if a retry, else the job's; its Result."""
    latest = ray.get(inbox.get.remote(job.cell.key))
    if latest is not None:
        job = Job(job.cell, job.config, latest)
    files = {name: ray.get(ref[0]) for name, ref in ray.get(inbox.cache.remote()).items()}
    return run_job(job, files, None if prior is None else ray.get(prior),
                   lambda data: ray.get(inbox.put.remote(job.cell.key, data)), threads)  # fmt: skip


def connect(address: str, local_cpus: int | None = None) -> None:
    """Join the Ray at `address` ("auto": a local one, started here with `local_cpus` if none runs)."""
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    try:
        if address == "auto":
            try:
                ray.init(address="auto", log_to_driver=False)
            except ConnectionError:
                ray.init(num_cpus=local_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as e:
        raise UserError(f"cannot join Ray at {address} ({type(e).__name__}): start one with 'ray start --head' "
                        "or give its address") from None  # fmt: skip


def run_on_ray(
    store: Store,
    configs: dict[Cell, GenerateConfig],
    todo: list[Cell],
    address: str,
    threads: int,
    retries: int,
    progress: Progress,
    local_cpus: int | None = None,
) -> None:
    """Submit every cell, write results and streamed checkpoints as they come; Ctrl-C cancels the tasks
    (their last checkpoints are on disk)."""
    if not ray.is_initialized():
        connect(address, local_cpus)
    inbox = Inbox.remote()  # type: ignore[attr-defined]
    for name, data in store.cache().items():
        ray.get(inbox.add_cache.remote(name, [ray.put(data)]))
    prior_refs: dict[str, Any] = {}
    pending: dict[Any, Cell] = {}
    for cell in todo:
        cfg = configs[cell]
        prior = prior_files(cfg)
        key = str(getattr(cfg.prior, "path", ""))
        if prior is not None and key not in prior_refs:
            prior_refs[key] = ray.put(prior)  # once per weights folder, not per task
        gpus = 1 if cfg.prior_type == "stable-diffusion" else 0
        task = execute_cell.options(num_cpus=threads, num_gpus=gpus, max_retries=retries, retry_exceptions=False)
        pending[task.remote(store.job(cell, cfg), prior_refs.get(key), inbox, threads)] = cell
    progress.update(len(pending))
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for key, data in ray.get(inbox.drain.remote()).items():
                cell = next(c for c in pending.values() if c.key == key)
                store.save_checkpoint(cell, data)
            for ref in done:
                pending.pop(ref)
                result: Result = ray.get(ref)
                store.save(result)
                for name, data in result.cache.items():  # tasks that start later get the new x̃ too
                    inbox.add_cache.remote(name, [ray.put(data)])
                progress.update(len(pending), result)
    finally:
        for ref in pending:
            ray.cancel(ref)
