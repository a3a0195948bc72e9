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
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
import yaml
from tqdm import tqdm

from .. import config as config_lib
from .. import precision, scene_layout
from ..cameras import orbit
from ..errors import UserError, shorten
from ..export import (
    MAX_FACES,
    SMOOTH_PASSES,
    OffsetField,
    extract_mesh,
    orbit_frames,
    surface_level,
    texture_mesh,
    turntable,
    write_coloured_glb,
    write_exports,
)
from ..io import contact_sheet, discard_replaced, peak_rss_mb, prepare_out_dir, save_image, write_text
from ..loop import Loop, halve_learning_rate, load
from ..render.dmtet import Mesh, TauField
from ..system import Real3DConfig, Real3DSystem, build_prior, deterministic
from ..toyworld.runs import VIEW_SIZE, VIEW_SUPERSAMPLE, VIEWS
from .args import MAX_SEED, add_config_arguments, seed_int


@dataclass
class RunSettings:
    """How a run is kept and exported (not part of the method; lives under `run:` in the config)."""

    checkpoint_every: int = config_lib.bounded(100, 1)
    log_every: int = config_lib.bounded(10, 1)
    export_grid: int = config_lib.bounded(64, 32, 128)
    export_faces: int = config_lib.bounded(MAX_FACES, 0)  # quadric decimation above this many faces (0: none)
    export_smooth: int = config_lib.bounded(SMOOTH_PASSES, 0)  # Taubin passes on the exported mesh (0: none)
    # which surface τ = ε is exported: "trained", the explicit renderer's ε; "silhouette", the ε whose mesh
    # matches the NeRF's renders; "auto", trained where the explicit renderer draws at the last step, else
    # silhouette (a NeRF-only run has no surface of its own; docs/results.md, ninth round); "offset", the
    # trained surface moved inward until its mesh matches the NeRF's renders (export.OffsetField)
    export_level: Literal["auto", "trained", "silhouette", "offset"] = "auto"
    texture_size: int = config_lib.bounded(256, 16, 4096)
    turntable_frames: int = config_lib.bounded(36, 4)
    turntable_size: int = config_lib.bounded(256, 32, 2048)
    export_files: bool = True  # false: metrics only, no GLB/OBJ/texture/turntable (benchmarks)
    snapshot_every: int = config_lib.bounded(0, 0)  # >0: snapshots/step-NNNNNN.png of θ every N steps
    snapshot_size: int = config_lib.bounded(64, 16, 1024)


@dataclass
class GenerateConfig(Real3DConfig):
    run: RunSettings = dataclasses.field(default_factory=RunSettings)


def run_settings(system: Real3DSystem) -> RunSettings:
    """The `run:` section of the config a generate job built the system from."""
    return cast(GenerateConfig, system.cfg).run


# ------------------------------------------------------------------------------------------- checks


def check_prompt(cfg: GenerateConfig) -> None:
    """An empty prompt, or (for the embedded prior) a word outside its toy-world vocabulary, is a user error."""
    if not cfg.prompt.strip():
        raise UserError('the prompt is empty; give one, e.g. real3d generate "a red cube on top of a blue sphere"')
    if cfg.prior_type == "embedded":
        from ..toyworld.scene import check_prompt as in_vocabulary

        for prompt in (cfg.prompt, cfg.prompt_side, cfg.prompt_back):
            if prompt:
                in_vocabulary(prompt)  # raises UserError naming the nearest known words


def slug(prompt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60] or "run"


# ----------------------------------------------------------------------------------- checkpoints


class RunState:
    """What a generate checkpoint holds (real3d.loop.Stateful): θ and its config (so `real3d export` reads it),
    both optimisers and schedules, D, and the generator that draws views, t and ε."""

    def __init__(self, system: Real3DSystem, generator: torch.Generator) -> None:
        self.system, self.generator = system, generator

    def state_dict(self) -> dict[str, Any]:
        s, d = self.system, self.system.discriminator
        return {
            "config": config_lib.to_dict(s.cfg),
            "model": s.model.state_dict(),
            "optimizer": s.optimizer.state_dict(),
            "scheduler": s.scheduler.state_dict(),
            "discriminator": None if d is None else d.state_dict(),
            "d_optimizer": None if d is None else d.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "anchors": (s.anchors, s.front_margin) if s.cfg.system.anchor_source == "render" else None,  # θ's own
            "decal_shown": s.model.field.decal_shown,  # for `real3d export`, which rebuilds the model alone
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        s, d = self.system, self.system.discriminator
        s.model.load_state_dict(ckpt["model"])
        s.optimizer.load_state_dict(ckpt["optimizer"])
        s.scheduler.load_state_dict(ckpt["scheduler"])
        if d is not None:
            d.load_state_dict(ckpt["discriminator"])
            d.optimizer.load_state_dict(ckpt["d_optimizer"])
        self.generator.set_state(ckpt["generator"])
        if ckpt.get("anchors") is not None:  # render anchors drawn (or gated off) before the checkpoint
            s.keep_anchors(*ckpt["anchors"])


def trim_log(path: Path, step: int) -> None:
    """Keep the lines of a JSON-lines log up to `step` (a resumed or rolled-back run logs each step once)."""
    if path.exists():
        keep = [
            line
            for line in path.read_text().splitlines(keepends=True)
            if line.strip() and json.loads(line)["step"] <= step
        ]
        write_text(path, "".join(keep))


# --------------------------------------------------------------------------------------- training


@torch.no_grad()
def save_snapshot(system: Real3DSystem, out_dir: Path, step: int) -> None:
    """θ at `step` through the explicit renderer (the mesh an export would give), albedo, one fixed view
    (azimuth 30°, elevation 15°): the frames of an evolution figure (the paper's Fig. 4)."""
    size = run_settings(system).snapshot_size
    cam = orbit(12, 15.0).index(1)
    rgb = system.model.explicit(cam, size, size, "albedo").rgb[0]
    save_image(out_dir / "snapshots" / f"step-{step:06d}.png", rgb)


def train(
    system: Real3DSystem,
    out_dir: Path,
    resume: bool,
    generator: torch.Generator,
    progress: bool,
    replaced: Path | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
) -> dict[str, float]:
    """Steps of Eq. 11 up to cfg.steps (from the checkpoint when resuming) through real3d.loop: checkpoints,
    Ctrl-C / SIGTERM, NaN rollback with half the learning rate; a JSON-lines log. Mean ms per part.
    `replaced`: the output folder whose old run (moved aside by --overwrite) goes once this one has a checkpoint;
    `on_checkpoint(path)` after each checkpoint written (a batch task sends it to its driver)."""
    cfg, settings = system.cfg, run_settings(system)
    log_path = out_dir / "train.log"
    loop = Loop(
        out_dir / "checkpoint.pt",
        RunState(system, generator),
        cfg.steps,
        settings.checkpoint_every,
        f"real3d generate --resume {out_dir}",
    )
    if on_checkpoint is not None:
        loop.on_save = lambda step: on_checkpoint(loop.path)
    start = loop.begin(resume)
    if replaced is not None:
        discard_replaced(replaced)
    trim_log(log_path, start)
    timing: dict[str, float] = {}
    bar = tqdm(total=cfg.steps, initial=start, desc="real3d", disable=not progress, dynamic_ncols=True)
    stats: dict[str, float] = {}

    def train_step(step: int) -> float:
        stats.clear()
        stats.update(system.training_step(step, generator))
        return stats["loss"]

    def on_step(step: int, loss: float) -> None:
        for k, v in stats.items():
            if k.startswith("ms_"):
                timing[k] = timing.get(k, 0.0) + v
        if settings.snapshot_every and (step % settings.snapshot_every == 0 or step == cfg.steps):
            save_snapshot(system, out_dir, step)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", adv=f"{stats['loss_adv']:.3f}")
        if step % settings.log_every == 0 or step == cfg.steps:
            with log_path.open("a") as log:
                log.write(json.dumps({"step": step, **{k: round(v, 5) for k, v in stats.items()}}) + "\n")

    def on_rollback(step: int) -> None:
        halve_learning_rate(system.optimizer, system.scheduler)
        trim_log(log_path, step)
        bar.n = step
        tqdm.write(f"non-finite loss: rolled back to step {step}, learning rate halved")

    loop.on_rollback = on_rollback
    system.train()
    try:
        loop.run(start, train_step, on_step)
    finally:
        bar.close()
    done = max(cfg.steps - start, 1)
    return {k: v / done for k, v in timing.items()}


# ---------------------------------------------------------------------------------- outputs, metrics


def toy_metrics(
    system: Real3DSystem, frames: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor
) -> dict[str, float]:
    """The views against the toy world (judge against the camera, silhouette IoU, colour error) and the mesh
    against its ground truth (mesh IoU, with precision < 1 where it is too big and recall < 1 where too small;
    Chamfer)."""
    from ..toyworld import metrics
    from ..toyworld.judge import load_judge
    from ..toyworld.runs import view_metrics
    from ..toyworld.scene import parse

    scene = parse(system.cfg.prompt)
    return (
        view_metrics(load_judge(), frames, system.cfg.prompt)
        | metrics.mesh_metrics(verts, faces, scene)
        | {"chamfer": metrics.chamfer(verts, faces, scene)}
    )


def export_surface(system: Real3DSystem) -> tuple[TauField, float]:
    """The field and ε of the exported surface τ = ε, by run.export_level (see RunSettings)."""
    settings, cfg = run_settings(system), system.cfg
    return surface_level(
        system.model, settings.export_level, cfg.system.p_dmtet, cfg.steps, settings.export_grid, settings.export_smooth
    )


def write_outputs(system: Real3DSystem, out_dir: Path, timing: dict[str, float], seconds: float) -> dict[str, Any]:
    """Mesh + texture + turntable of θ's surface at run.export_level (through the explicit renderer's grid at
    its own level), given run.export_smooth Taubin passes; the 12 views the judge sees (views.png), then
    metrics.json (with the exported ε). With run.export_files off (benchmarks), no UV atlas, texture, OBJ or
    turntable: model.glb has θ's albedo per vertex, and the views are rasterized from that mesh."""
    system.eval()
    settings, explicit = run_settings(system), system.model.explicit
    field, eps = export_surface(system)
    own = field is system.model.field and eps == explicit.geometry.eps
    geometry = explicit.geometry if own else None  # its Δu belong to θ's own level
    if settings.export_files:
        mesh = texture_mesh(
            field,
            settings.export_grid,
            settings.texture_size,
            eps,
            geometry,
            settings.export_faces,
            settings.export_smooth,
        )
        write_exports(mesh, out_dir, "model", settings.turntable_frames, settings.turntable_size)
        plain, views = Mesh(mesh.verts, mesh.faces), turntable(mesh, VIEWS, VIEW_SIZE, supersample=VIEW_SUPERSAMPLE)
    else:
        plain = extract_mesh(field, settings.export_grid, eps, geometry, settings.export_faces, settings.export_smooth)
        write_coloured_glb(out_dir / "model.glb", plain, field.albedo)  # for reports: vertex colours, no atlas
        views = orbit_frames(plain, field.albedo, None, VIEWS, VIEW_SIZE, supersample=VIEW_SUPERSAMPLE)
    save_image(out_dir / "views.png", contact_sheet(list(views), 12))
    result: dict[str, Any] = {
        "prompt": system.cfg.prompt,
        "seed": system.cfg.seed,
        "steps": system.cfg.steps,
        "seconds": round(seconds, 1),
        "ms_per_step": {k[3:]: round(v, 1) for k, v in timing.items()},
        "peak_rss_mb": round(peak_rss_mb()),
        "precision": precision.name(precision.resolve()),
        "faces": int(plain.faces.shape[0]),
        "export_eps": field.eps if isinstance(field, OffsetField) else eps,
        "export_offset": eps if isinstance(field, OffsetField) else 0.0,
    }
    if system.cfg.prior_type == "embedded":
        result |= toy_metrics(system, views, plain.verts, plain.faces)
    write_text(out_dir / "metrics.json", json.dumps(result, indent=2))
    return result


# ------------------------------------------------------------------------------------------- runs


def run_one(
    cfg: GenerateConfig,
    out_dir: Path,
    resume: bool,
    progress: bool = True,
    replaced: Path | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """One seed: build (or restore) the system, train, export. Ctrl-C leaves a checkpoint to resume from;
    `replaced` (see train) is the folder whose old run --overwrite moved aside."""
    start_time = time.perf_counter()
    generator = torch.Generator().manual_seed(cfg.seed)
    with deterministic(), precision.use(cfg.precision):
        system = Real3DSystem(cfg, build_prior(cfg), progress)
        config_lib.save(system.cfg, out_dir / "config.yaml")  # as the system resolved it (`shaped_start`)
        timing = train(system, out_dir, resume, generator, progress, replaced, on_checkpoint)
        return write_outputs(system, out_dir, timing, time.perf_counter() - start_time)


def run_config(preset: str, prompt: str, overrides: Sequence[str] = (), budget: str | None = None) -> GenerateConfig:
    """The resolved config of a run: preset at its budget, dotted overrides, the prompt as a value, and the
    field's start laid out from the prompt (`layout: prompt`, unless `field.blobs` is given)."""
    cfg = config_lib.load(GenerateConfig, preset, list(overrides), budget, default_base="real3d")
    cfg = dataclasses.replace(cfg, prompt=prompt)
    placed = scene_layout.blobs(prompt) if cfg.layout == "prompt" else None
    if placed is not None and getattr(cfg.field, "blobs", ()) is None:  # a field with blobs, none given
        cfg = dataclasses.replace(cfg, field=dataclasses.replace(cfg.field, blobs=placed))
    return cfg


def checked_config(
    preset: str, prompt: str, overrides: Sequence[str] = (), budget: str | None = None
) -> GenerateConfig:
    """run_config, with the prompt checked and the prior loaded: everything that can fail on the user's input
    fails here, before anything is written (the prior is kept for the run)."""
    cfg = run_config(preset, prompt, overrides, budget)
    check_prompt(cfg)
    build_prior(cfg)
    return cfg


def generate(
    prompt: str,
    preset: str = "real3d",
    seed: int | Sequence[int] = 0,
    out: Path | str | None = None,
    overrides: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool = True,
    budget: str | None = None,
) -> dict[str, Any]:
    """Python API of `real3d generate`: run the preset (at `budget`: None for the preset's own, "quality", …)
    for one or several seeds; the metrics of the best (by judge score where the toy-world judge applies, else
    the first seed)."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    cfg = checked_config(preset, prompt, overrides, budget)
    out_dir = prepare_out_dir(Path(out) if out else Path("outputs") / f"{slug(prompt)}-seed{seeds[0]}", overwrite)
    if len(seeds) == 1:
        return run_one(dataclasses.replace(cfg, seed=seeds[0]), out_dir, False, progress, out_dir)
    results = {
        s: run_one(dataclasses.replace(cfg, seed=s), out_dir / f"seed-{s}", False, progress, out_dir) for s in seeds
    }
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
    if not (out_dir / "checkpoint.pt").exists():
        raise UserError(f"{out_dir} holds no checkpoint.pt to continue from; start the run again without --resume")
    cfg = config_lib.load(GenerateConfig, str(out_dir / "config.yaml"))
    load(out_dir / "checkpoint.pt", "start the run again without --resume")  # unreadable: fail before building
    return run_one(cfg, out_dir, True, progress)


def run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        if args.prompt is not None or args.overrides:
            raise UserError("--resume continues a run with its saved config; give no prompt or overrides")
        result = resume(args.resume)
        out = args.resume
    else:
        if args.prompt is None:
            raise UserError('give a prompt, e.g. real3d generate "a red cube on top of a blue sphere"')
        if args.print_config:
            cfg = checked_config(args.preset, args.prompt, args.overrides, args.budget)
            print(yaml.safe_dump(config_lib.to_dict(cfg), sort_keys=False, allow_unicode=True), end="")
            return 0
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
        out = args.out or Path("outputs") / f"{slug(args.prompt)}-seed{seeds[0]}"
        result = generate(args.prompt, args.preset, seeds, out, args.overrides, args.overwrite, budget=args.budget)
    score = f", judge score {result['judge_score']:.2f}" if "judge_score" in result else ""
    print(f"done in {result['seconds']:.0f} s{score}: {out}/model.glb, {out}/turntable.mp4")
    return 0


def _seed_list(text: str) -> str:
    """argparse type: comma-separated seeds, each one that seed_int takes."""
    if not re.fullmatch(r"[0-9]+(,[0-9]+)*", text) or any(int(s) > MAX_SEED for s in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (seeds) like 0,1,2, got {shorten(text)!r}")
    return text


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="text to a textured 3D mesh and a turntable (Real3D)")
    p.add_argument("prompt", nargs="?", help='what to make, e.g. "a red cube on top of a blue sphere"')
    add_config_arguments(p, default_preset="real3d", budget=True)
    p.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    p.add_argument("--seeds", type=_seed_list, help="several seeds, e.g. 0,1,2: all kept, the best also on top")
    p.add_argument("--out", type=Path, help="output folder (default outputs/<prompt>-seed<seed>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue the stopped run in DIR")
    p.add_argument(
        "--print-config", action="store_true", help="check the prompt, config and weights, print the resolved config"
    )
    p.set_defaults(func=run)
