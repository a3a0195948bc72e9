"""The cells of a batch as Ray tasks (imported only by `real3d batch --ray`; the in-process path needs no Ray).

Each cell is one task asking Ray for `threads` CPUs (and a GPU for the Stable Diffusion presets). The x̃ cache
and the prior's weights are put in Ray's object store once (per version) and shared by every task. A task
sends each checkpoint to an Inbox actor as it writes it; the driver drains the inbox into the cell folders
while it waits, and submits a cell whose worker or node died again from its last checkpoint.
"""

from __future__ import annotations

from typing import Any

import ray

from ..errors import UserError
from .cells import Cell, Job, Progress, Result, Store, prior_files, run_job
from .generate import GenerateConfig


@ray.remote(num_cpus=0)
class Inbox:
    """Latest checkpoint per cell, sent by tasks as they write them; `drain` hands the new ones to the driver."""

    def __init__(self) -> None:
        self.latest: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.latest[key] = data

    def drain(self) -> dict[str, bytes]:
        out, self.latest = self.latest, {}
        return out


@ray.remote
def execute_cell(job: Job, cache: dict[str, bytes], prior: dict[str, bytes] | None, inbox: Any, threads: int) -> Result:
    """One cell on a worker. It never blocks in ray.get: Ray lends a blocked task's CPUs to the next task, and
    two cells would then share the cores. Checkpoints go to the inbox without waiting (in order, per caller)."""
    return run_job(job, cache, prior, lambda data: inbox.put.remote(job.cell.key, data), threads)


def connect(address: str, local_cpus: int | None = None) -> None:
    """Join the Ray at `address` ("auto": a local one, started here with `local_cpus` if none runs; "local": a
    new local one of `local_cpus` for this run alone, never one that another run started and may be taking
    down as this one joins it)."""
    try:
        if address == "local":
            ray.init(address="local", num_cpus=local_cpus, include_dashboard=False, log_to_driver=False)
        elif address == "auto":
            try:
                ray.init(address="auto", log_to_driver=False)
            except ConnectionError:
                ray.init(num_cpus=local_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as e:
        if address == "local":
            raise UserError(f"cannot start a local Ray ({type(e).__name__}): see its logs under /tmp/ray, "
                            "or run the bench without --workers") from None  # fmt: skip
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
    """Submit every cell; write streamed checkpoints and results as they come. A task whose worker or node
    died is submitted again from the cell's last checkpoint, up to `retries` times; Ctrl-C cancels the tasks
    (their last checkpoints are on disk)."""
    if not ray.is_initialized():
        connect(address, local_cpus)
    inbox = Inbox.remote()  # type: ignore[attr-defined]
    cache = store.cache()
    cache_ref = ray.put(cache)  # one object per version of the x̃ cache, shared by every task
    prior_refs: dict[str, Any] = {}
    attempts: dict[Cell, int] = {}
    pending: dict[Any, Cell] = {}

    def submit(cell: Cell) -> None:
        cfg = configs[cell]
        prior, key = prior_files(cfg), str(getattr(cfg.prior, "path", ""))
        if prior is not None and key not in prior_refs:
            prior_refs[key] = ray.put(prior)  # once per weights folder, not per task
        gpus = 1 if cfg.prior_type == "stable-diffusion" else 0
        task = execute_cell.options(num_cpus=threads, num_gpus=gpus, max_retries=0)
        pending[task.remote(store.job(cell, cfg), cache_ref, prior_refs.get(key), inbox, threads)] = cell

    def drain() -> None:
        for key, data in ray.get(inbox.drain.remote()).items():
            cell = next((c for c in configs if c.key == key), None)
            if cell is not None and not store.finished(cell):
                store.save_checkpoint(cell, data)

    for cell in todo:
        submit(cell)
    progress.update(len(pending))
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            drain()
            for ref in done:
                cell = pending.pop(ref)
                try:
                    result: Result = ray.get(ref)
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                        ray.exceptions.ObjectLostError, ray.exceptions.LocalRayletDiedError) as e:  # fmt: skip
                    attempts[cell] = attempts.get(cell, 0) + 1
                    if attempts[cell] > retries:
                        raise UserError(f"cell {cell.key}: its worker died {attempts[cell]} times "
                                        f"({type(e).__name__}); see the Ray logs") from None  # fmt: skip
                    drain()
                    submit(cell)  # from the checkpoint it sent last
                    continue
                store.save(result)
                if result.cache:  # tasks submitted from now on get the new x̃ too
                    cache |= result.cache
                    cache_ref = ray.put(cache)
                progress.update(len(pending), result)
    finally:
        for ref in pending:
            ray.cancel(ref)
