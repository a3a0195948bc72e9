"""`real3d generate "prompt"`: a prompt in; a textured mesh, a turntable and metrics out (Real3D, Eq. 11).

    from real3d import generate
    result = generate("a red cube on top of a blue sphere", out="outputs/cube", seed=0)

The output folder holds model.glb, model.obj/.mtl/.png, turntable.mp4/.gif/.png, views.png (the 12 views
the judge scores), config.yaml (the resolved config), metrics.json, train.log (JSON lines), checkpoint.pt
(written every `checkpoint_every` steps, atomically) and, with `run.snapshot_every`, snapshots/.
`--resume DIR` continues a stopped run; Ctrl-C stops after the current step with a checkpoint and prints the
resume command; a non-finite loss rolls back to the last checkpoint with half the learning rate.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import shutil
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from tqdm import tqdm

from . import config as config_lib
from . import precision
from .errors import UserError
from .export import MAX_FACES, extract_mesh, orbit_frames, texture_mesh, turntable, write_exports
from .cameras import orbit
from .io import contact_sheet, peak_rss_mb, prepare_out_dir, save_image, write_text
from .model import save_checkpoint
from .render.dmtet import Mesh
from .system import Real3DConfig, Real3DSystem, build_prior, deterministic

MAX_ROLLBACKS = 3


class Interrupted(UserError):
    """Ctrl-C: the run stopped after a whole step with a checkpoint written."""

    exit_code = 130


@contextmanager
def stop_after_step() -> Iterator[dict[str, bool]]:
    """The first Ctrl-C asks the loop to stop after the current step (flag["stop"]); a second one aborts."""
    flag = {"stop": False}

    def handler(signum: int, frame: object) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class RunSettings:
    """How a run is kept and exported (not part of the method; lives under `run:` in the config)."""

    checkpoint_every: int = config_lib.bounded(100, 1)
    log_every: int = config_lib.bounded(10, 1)
    export_grid: int = config_lib.bounded(64, 32, 128)
    export_faces: int = config_lib.bounded(MAX_FACES, 0)  # quadric decimation above this many faces (0: none)
    texture_size: int = config_lib.bounded(256, 16, 4096)
    turntable_frames: int = config_lib.bounded(36, 4)
    turntable_size: int = config_lib.bounded(256, 32, 2048)
    export_files: bool = True  # false: metrics only, no GLB/OBJ/texture/turntable (benchmarks)
    snapshot_every: int = config_lib.bounded(0, 0)  # >0: snapshots/step-NNNNNN.png of θ every N steps
    snapshot_size: int = config_lib.bounded(64, 16, 1024)


@dataclass
class GenerateConfig(Real3DConfig):
    run: RunSettings = dataclasses.field(default_factory=RunSettings)


# ------------------------------------------------------------------------------------------- checks


def check_prompt(cfg: GenerateConfig) -> None:
    """An empty prompt, or (for the embedded prior) a word outside its toy-world vocabulary, is a user error."""
    if not cfg.prompt.strip():
        raise UserError("the prompt is empty; give one, e.g. real3d generate \"a red cube on top of a blue sphere\"")
    if cfg.prior_type == "embedded":
        from .toyworld.scene import parse

        parse(cfg.prompt)  # raises UserError naming the nearest known words


def slug(prompt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60] or "run"


# ----------------------------------------------------------------------------------- checkpoints


def save_state(path: Path, system: Real3DSystem, step: int, generator: torch.Generator) -> None:
    """Everything a resume needs, written atomically (also readable by `real3d export`)."""
    d = system.discriminator
    save_checkpoint(path, system.cfg, system.model, step=step, optimizer=system.optimizer.state_dict(),
                    scheduler=system.scheduler.state_dict(), discriminator=None if d is None else d.state_dict(),
                    d_optimizer=None if d is None else d.optimizer.state_dict(), generator=generator.get_state())


def load_state(path: Path, system: Real3DSystem, generator: torch.Generator) -> int:
    """Restore a checkpoint written by save_state into `system`; the step to continue from."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        system.model.load_state_dict(ckpt["model"])
        system.optimizer.load_state_dict(ckpt["optimizer"])
        system.scheduler.load_state_dict(ckpt["scheduler"])
        if system.discriminator is not None:
            system.discriminator.load_state_dict(ckpt["discriminator"])
            system.discriminator.optimizer.load_state_dict(ckpt["d_optimizer"])
        generator.set_state(ckpt["generator"])
        return int(ckpt["step"])
    except FileNotFoundError:
        raise UserError(f"no checkpoint at {path}; start the run again without --resume") from None
    except Exception as e:  # noqa: BLE001 — any unreadable file is the same user-facing problem
        raise UserError(f"checkpoint {path} is corrupt ({type(e).__name__}); delete it and start the run again "
                        "with --overwrite") from None


def halve_learning_rate(system: Real3DSystem) -> None:
    for group in system.optimizer.param_groups:
        group["lr"] *= 0.5
    system.scheduler.base_lrs = [lr * 0.5 for lr in system.scheduler.base_lrs]


# --------------------------------------------------------------------------------------- training


@torch.no_grad()
def save_snapshot(system: Real3DSystem, out_dir: Path, step: int) -> None:
    """θ at `step` through the explicit renderer (the mesh an export would give), albedo, one fixed view
    (azimuth 30°, elevation 15°): the frames of an evolution figure (the paper's Fig. 4)."""
    size = system.cfg.run.snapshot_size
    cam = orbit(12, 15.0).index(1)
    rgb = system.model.explicit(cam, size, size, "albedo").rgb[0]
    save_image(out_dir / "snapshots" / f"step-{step:06d}.png", rgb)


def train(system: Real3DSystem, out_dir: Path, start: int, generator: torch.Generator, progress: bool
          ) -> dict[str, float]:
    """Steps start..cfg.steps of Eq. 11 with checkpoints, a JSON-lines log and NaN rollback; mean ms per part."""
    cfg, settings = system.cfg, system.cfg.run
    ckpt = out_dir / "checkpoint.pt"
    if not ckpt.exists():
        save_state(ckpt, system, start, generator)
    timing: dict[str, float] = {}
    rollbacks, step = 0, start
    bar = tqdm(total=cfg.steps, initial=start, desc="real3d", disable=not progress, dynamic_ncols=True)
    system.train()
    with (out_dir / "train.log").open("a") as log, stop_after_step() as interrupt:
        while step < cfg.steps:
            stats = system.training_step(step, generator)
            if not math.isfinite(stats["loss"]):
                rollbacks += 1
                if rollbacks > MAX_ROLLBACKS:
                    raise UserError(f"the loss stayed non-finite after {MAX_ROLLBACKS} rollbacks; lower "
                                    "optimizer.lr or sds.guidance_scale and rerun")
                step = load_state(ckpt, system, generator)
                halve_learning_rate(system)
                bar.n = step
                tqdm.write(f"non-finite loss: rolled back to step {step}, learning rate halved")
                continue
            for k, v in stats.items():
                if k.startswith("ms_"):
                    timing[k] = timing.get(k, 0.0) + v
            step += 1
            if settings.snapshot_every and (step % settings.snapshot_every == 0 or step == cfg.steps):
                save_snapshot(system, out_dir, step)
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", adv=f"{stats['loss_adv']:.3f}")
            if step % settings.log_every == 0 or step == cfg.steps:
                log.write(json.dumps({"step": step, **{k: round(v, 5) for k, v in stats.items()}}) + "\n")
                log.flush()
            if step % settings.checkpoint_every == 0 or step == cfg.steps or interrupt["stop"]:
                save_state(ckpt, system, step, generator)
            if interrupt["stop"] and step < cfg.steps:
                bar.close()
                raise Interrupted(f"interrupted at step {step} of {cfg.steps}, checkpoint written; continue with: "
                                  f"real3d generate --resume {out_dir}")
    bar.close()
    done = max(cfg.steps - start, 1)
    return {k: v / done for k, v in timing.items()}


# ---------------------------------------------------------------------------------- outputs, metrics


def toy_metrics(system: Real3DSystem, frames: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor
                ) -> dict[str, float]:
    """Judge score, R-precision, Janus and mesh IoU / Chamfer against the toy world's ground truth."""
    from .toyworld import metrics
    from .toyworld.judge import load_judge
    from .toyworld.scene import parse

    scene = parse(system.cfg.prompt)
    return metrics.judge_metrics(load_judge(), frames, scene) | {
        "mesh_iou": metrics.mesh_iou(verts, faces, scene), "chamfer": metrics.chamfer(verts, faces, scene)}


def write_outputs(system: Real3DSystem, out_dir: Path, timing: dict[str, float], seconds: float) -> dict[str, Any]:
    """Mesh + texture + turntable from θ through the explicit renderer's grid, the 12 views the judge sees
    (views.png), then metrics.json. With run.export_files off (benchmarks), no UV atlas, texture or files:
    the views are rasterized from the same mesh with θ's albedo."""
    system.eval()
    settings, explicit, field = system.cfg.run, system.model.explicit, system.model.field
    if settings.export_files:
        mesh = texture_mesh(field, settings.export_grid, settings.texture_size, explicit.cfg.eps, explicit.geometry,
                            settings.export_faces)
        write_exports(mesh, out_dir, "model", settings.turntable_frames, settings.turntable_size)
        plain, views = Mesh(mesh.verts, mesh.faces), turntable(mesh, 12, 64)
    else:
        plain = extract_mesh(field, settings.export_grid, explicit.cfg.eps, explicit.geometry,
                             settings.export_faces)
        views = orbit_frames(plain, field.albedo, None, 12, 64)
    save_image(out_dir / "views.png", contact_sheet(list(views), 12))
    result: dict[str, Any] = {"prompt": system.cfg.prompt, "seed": system.cfg.seed, "steps": system.cfg.steps,
                              "seconds": round(seconds, 1), "ms_per_step": {k[3:]: round(v, 1) for k, v in
                                                                            timing.items()},
                              "peak_rss_mb": round(peak_rss_mb()), "precision": precision.name(precision.resolve()),
                              "faces": int(plain.faces.shape[0])}
    if system.cfg.prior_type == "embedded":
        result |= toy_metrics(system, views, plain.verts, plain.faces)
    write_text(out_dir / "metrics.json", json.dumps(result, indent=2))
    return result


# ------------------------------------------------------------------------------------------- runs


def run_one(cfg: GenerateConfig, out_dir: Path, resume: bool, progress: bool = True) -> dict[str, Any]:
    """One seed: build (or restore) the system, train, export. Ctrl-C leaves a checkpoint to resume from."""
    start_time = time.perf_counter()
    generator = torch.Generator().manual_seed(cfg.seed)
    with deterministic(), precision.use(cfg.precision):
        system = Real3DSystem(cfg, build_prior(cfg), progress)
        config_lib.save(cfg, out_dir / "config.yaml")
        start = load_state(out_dir / "checkpoint.pt", system, generator) if resume else 0
        timing = train(system, out_dir, start, generator, progress)
        return write_outputs(system, out_dir, timing, time.perf_counter() - start_time)


def generate(prompt: str, preset: str = "real3d", seed: int | Sequence[int] = 0, out: Path | str | None = None,
             overrides: Sequence[str] = (), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Python API of `real3d generate`: run the preset for one or several seeds; the metrics of the best
    (by judge score where the toy-world judge applies, else the first seed)."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    cfg = config_lib.load(GenerateConfig, preset, [*overrides, f"prompt={json.dumps(prompt)}"])
    check_prompt(cfg)
    build_prior(cfg)  # missing weights fail here, before anything is written (the prior is kept for the run)
    out_dir = prepare_out_dir(Path(out) if out else Path("outputs") / f"{slug(prompt)}-seed{seeds[0]}", overwrite)
    if len(seeds) == 1:
        return run_one(dataclasses.replace(cfg, seed=seeds[0]), out_dir, False, progress)
    results = {s: run_one(dataclasses.replace(cfg, seed=s), out_dir / f"seed-{s}", False, progress) for s in seeds}
    best = max(seeds, key=lambda s: results[s].get("judge_score", -float(s)))
    for f in (out_dir / f"seed-{best}").iterdir():  # the best seed's files also at the top level
        if f.is_file() and f.name != "checkpoint.pt":
            shutil.copy2(f, out_dir / f.name)
    summary = {"best_seed": best, "seeds": {str(s): results[s] for s in seeds}}
    write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return results[best]


def resume(out_dir: Path | str, progress: bool = True) -> dict[str, Any]:
    """Continue a stopped run from its folder (its config.yaml and checkpoint.pt)."""
    out_dir = Path(out_dir)
    if not (out_dir / "config.yaml").exists():
        raise UserError(f"{out_dir} holds no config.yaml of a real3d run; give the folder a run wrote")
    cfg = config_lib.load(GenerateConfig, str(out_dir / "config.yaml"))
    return run_one(cfg, out_dir, True, progress)


def run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        if args.prompt is not None or args.overrides:
            raise UserError("--resume continues a run with its saved config; give no prompt or overrides")
        result = resume(args.resume)
        out = args.resume
    else:
        if args.prompt is None:
            raise UserError("give a prompt, e.g. real3d generate \"a red cube on top of a blue sphere\"")
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
        out = args.out or Path("outputs") / f"{slug(args.prompt)}-seed{seeds[0]}"
        result = generate(args.prompt, args.preset, seeds, out, args.overrides, args.overwrite)
    score = f", judge score {result['judge_score']:.2f}" if "judge_score" in result else ""
    print(f"done in {result['seconds']:.0f} s{score}: {out}/model.glb, {out}/turntable.mp4")
    return 0


def _seed_list(text: str) -> str:
    if not re.fullmatch(r"\d+(,\d+)*", text):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 0,1,2, got {text!r}")
    return text


def add_cli(sub: argparse._SubParsersAction) -> None:
    from .cliargs import add_config_arguments

    p = sub.add_parser("generate", help="text to a textured 3D mesh and a turntable (Real3D)")
    p.add_argument("prompt", nargs="?", help="what to make, e.g. \"a red cube on top of a blue sphere\"")
    add_config_arguments(p, default_preset="real3d")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--seeds", type=_seed_list, help="several seeds, e.g. 0,1,2: all kept, the best also on top")
    p.add_argument("--out", type=Path, help="output folder (default outputs/<prompt>-seed<seed>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue the stopped run in DIR")
    p.set_defaults(func=run)
