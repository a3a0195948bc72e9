"""`real3d batch PROMPTS.txt`: every (preset, prompt, seed) is a cell, run in this process or as Ray tasks.

    real3d batch prompts.txt --presets real3d,dreamfusion --seeds 0,1,2 --out outputs/batch [overrides]
    real3d batch prompts.txt --ray                 # start (or join) a local Ray; --ray ADDRESS joins a cluster

A cell runs in a temp folder of whatever machine runs it and comes back as bytes (metrics, GLB, OBJ/MTL/PNG,
turntable, views, log): the driver writes them atomically into OUT/cells/PRESET/PROMPT/seed-S, metrics.json
last, so a cell folder with metrics.json is finished and one without holds nothing half-written. Nothing
assumes a shared filesystem: the x̃ cache (OUT/cache) and the prior's weights go to the tasks as data. A
task sends each checkpoint back as it is written; a task whose worker dies is retried (Ray) from the last
one, and the same command again skips finished cells and resumes the others. A cell that fails, for a
user reason (an unknown word) or a bug (failed.json then holds the traceback), is recorded with its one-line
error and does not stop the batch; Ctrl-C does.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError, one_line
from ..io import contact_sheet, save_image, write_text
from ..loop import Interrupted
from .args import add_budget_argument, csv, csv_seeds, positive_int, read_prompt_list
from .cells import Cell, Progress, Result, Store, run_job
from .generate import GenerateConfig, check_prompt, run_config

# --------------------------------------------------------------------------------------------- driver


@dataclass
class Batch:
    """The grid: cells = presets × prompts × seeds, each preset at `budget` with the dotted overrides."""

    prompts: list[str]
    presets: list[str]
    seeds: list[int]
    overrides: list[str] = field(default_factory=list)
    budget: str | None = None

    def cells(self) -> list[Cell]:
        """Seed-major, presets innermost (a batch stopped part way has comparable rows for every preset)."""
        return [Cell(p, q, s) for s in self.seeds for q in self.prompts for p in self.presets]

    def configs(self) -> dict[Cell, GenerateConfig]:
        return {
            c: dataclasses.replace(run_config(c.preset, c.prompt, self.overrides, self.budget), seed=c.seed)
            for c in self.cells()
        }


def run_in_process(store: Store, configs: dict[Cell, GenerateConfig], todo: list[Cell], threads: int,
                   progress: Progress) -> None:  # fmt: skip
    """The cells one after another in this process (the default: no Ray needed)."""
    cache = store.root / "cache"  # x̃ read and written in place, the prior from its own folder: no copies here
    for cell in todo:
        job = store.job(cell, configs[cell])
        progress.update(1)
        result = run_job(job, cache, None, functools.partial(store.save_checkpoint, cell), threads)
        store.save(result)
        progress.update(0, result)


def execute(
    store: Store,
    configs: dict[Cell, GenerateConfig],
    ray_address: str | None = None,
    threads: int = 2,
    retries: int = 3,
    desc: str = "batch cells",
    local_cpus: int | None = None,
) -> float:
    """Run (or continue) every unfinished cell of `configs`, in process or on Ray (`ray_address`: "auto" joins
    or starts a local one of `local_cpus` CPUs, else a cluster's address), with one progress bar; the seconds. A cell
    whose prompt the prior cannot make is recorded as failed at once; Ctrl-C keeps what is done."""
    todo = [c for c in configs if not store.finished(c)]
    store.root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    progress = Progress(len(configs), len(configs) - len(todo), desc)
    for cell in list(todo):  # a prompt the prior cannot make fails its cells here, before any task starts
        try:
            check_prompt(configs[cell])
        except UserError as e:
            failed = Result(cell, error=one_line(str(e)))
            store.save(failed)
            progress.update(0, failed)
            todo.remove(cell)
    try:
        if ray_address is None:
            run_in_process(store, configs, todo, threads, progress)
        else:
            from .batch_ray import run_on_ray  # Ray only where asked for

            run_on_ray(store, configs, todo, ray_address, threads, retries, progress, local_cpus)
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(
            f"interrupted: finished cells and checkpoints are kept in {store.root}; run the same command again "
            "to continue"
        ) from None
    finally:
        progress.close()
    return time.perf_counter() - start


# -------------------------------------------------------------------------------------------- summary


def summarize(batch: Batch, root: Path, seconds: float) -> dict[str, Any]:
    """results.json (every cell: metrics or error), results.md (a table), contact-PRESET.png (views)."""
    from ..toyworld.runs import VIEW_SIZE, load_views

    rows = []
    for cell in batch.cells():
        folder = cell.folder(root)
        row: dict[str, Any] = {"preset": cell.preset, "prompt": cell.prompt, "seed": cell.seed}
        if (folder / "metrics.json").exists():
            row |= {"status": "done", **json.loads((folder / "metrics.json").read_text())}
        elif (folder / "failed.json").exists():
            row |= {"status": "failed", **json.loads((folder / "failed.json").read_text())}
        else:
            row["status"] = "todo"
        rows.append(row)
    for preset in batch.presets:
        tiles = []
        for cell in [Cell(preset, q, s) for q in batch.prompts for s in batch.seeds]:
            views = cell.folder(root) / "views.png"
            tiles.append(load_views(cell.folder(root))[1] if views.exists() else torch.ones(VIEW_SIZE, VIEW_SIZE, 3))
        save_image(root / f"contact-{preset}.png", contact_sheet(tiles, len(batch.seeds)))
    results = {"seconds": round(seconds, 1), "cells": rows}
    write_text(root / "results.json", json.dumps(results, indent=2))
    write_text(root / "results.md", markdown(rows))
    return results


def markdown(rows: list[dict[str, Any]]) -> str:
    def fmt(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:.3f}" if isinstance(row.get(key), float) else "–"

    done = sum(r["status"] == "done" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    lines = [
        f"Cells: {done} done, {failed} failed, {len(rows) - done - failed} to do.",
        "",
        "| preset | prompt | seed | status | judge ↑ | mesh IoU ↑ | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        status = r["status"] if r["status"] != "failed" else f"failed: {r['error']}"
        seconds = f"{r['seconds']:.0f}" if "seconds" in r else "–"
        lines.append(f"| {r['preset']} | {r['prompt']} | {r['seed']} | {status} | {fmt(r, 'judge_score')} | "
                     f"{fmt(r, 'mesh_iou')} | {seconds} |")  # fmt: skip
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ CLI


def run(args: argparse.Namespace) -> int:
    batch = Batch(read_prompt_list(args.prompts), csv(args.presets), csv_seeds(args.seeds), list(args.overrides),
                  args.budget)  # fmt: skip
    configs = batch.configs()  # a bad preset, budget or override: one line, before anything runs
    seconds = execute(Store(args.out), configs, args.ray, args.threads, args.retries)
    results = summarize(batch, args.out, seconds)
    failed = [c for c in results["cells"] if c["status"] == "failed"]
    print(f"batch done in {results['seconds']:.0f} s: {len(results['cells']) - len(failed)} cells finished, "
          f"{len(failed)} failed; {args.out}/results.md, results.json, contact-*.png")  # fmt: skip
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="presets × prompts × seeds, in this process or on Ray (resumable)")
    p.add_argument("prompts", type=Path, help="prompt list, one per line (# comments)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="dotted overrides for every cell")
    p.add_argument("--presets", default="real3d", help="comma-separated presets (default real3d)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--out", type=Path, default=Path("outputs/batch"), help="batch folder (default outputs/batch)")
    add_budget_argument(p)
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="run the cells as Ray tasks: alone, start or join a local Ray; with an address, join that "
                        "cluster (default: in this process, no Ray)")  # fmt: skip
    p.add_argument("--threads", type=positive_int, default=2, help="CPU threads per cell (and CPUs asked of Ray)")
    p.add_argument(
        "--retries", type=int, default=3, help="times a cell whose Ray worker or node died is sent again (default 3)"
    )
    p.set_defaults(func=run)
