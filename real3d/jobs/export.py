"""`real3d export CHECKPOINT --out DIR`: the textured mesh and turntable of a run's checkpoint (real3d.export)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..export import MAX_FACES, SMOOTH_PASSES, export, surface_level
from ..io import discard_replaced, prepare_out_dir
from ..model import load_checkpoint
from ..render.dmtet import DMTetRenderer, TauField
from .args import int_in, positive_int


def run(args: argparse.Namespace) -> int:
    if (
        not 16 <= args.texture_size <= 8192
        or args.frames < 1
        or not 16 <= args.frame_size <= 4096
        or args.max_faces < 0
    ):
        raise UserError("--texture-size must be in 16..8192, --frames >= 1, --frame-size in 16..4096, --max-faces >= 0")
    _, model, ckpt = load_checkpoint(args.checkpoint)
    dmtet = next((r for r in (model.explicit, model.renderer) if isinstance(r, DMTetRenderer)), None)
    field: TauField = model.field
    if dmtet is None or args.level == "trained":
        eps = dmtet.geometry.eps if dmtet is not None else DMTetRenderer.Config().eps
    else:  # a job without a renderer schedule (real3d fit) trained its explicit surface: "auto" keeps it
        schedule = ckpt["config"].get("system", {}).get("p_dmtet", 1.0)
        steps = int(ckpt["config"].get("steps", 0))
        field, eps = surface_level(model, args.level, schedule, steps, args.grid, args.smooth)
    own = dmtet is not None and field is model.field and eps == dmtet.geometry.eps
    geometry = dmtet.geometry if dmtet is not None and own else None  # its Δu belong to θ's own level
    out_dir = prepare_out_dir(args.out, args.overwrite)
    paths = export(
        field,
        out_dir,
        args.grid,
        args.texture_size,
        eps,
        geometry,
        args.frames,
        args.frame_size,
        args.max_faces,
        args.smooth,
    )
    discard_replaced(out_dir)
    print(f"exported {paths['glb'].name}, {paths['obj'].name} (+ .mtl, texture) and a turntable to {out_dir}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="textured mesh (GLB, OBJ+MTL+PNG) and turntable from a checkpoint")
    p.add_argument("checkpoint", type=Path, help="checkpoint.pt of a run, or the run's folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--grid", type=int, choices=(32, 64, 128), default=64, help="tet grid resolution (default 64)")
    p.add_argument(
        "--texture-size", type=positive_int, default=512, help="texture width = height in texels (default 512)"
    )
    p.add_argument("--frames", type=positive_int, default=36, help="turntable frames (default 36)")
    p.add_argument("--frame-size", type=positive_int, default=256, help="turntable frame size in pixels (default 256)")
    p.add_argument(
        "--max-faces",
        type=int_in(0),
        default=MAX_FACES,
        help=f"decimate the mesh to at most this many faces (0: as extracted; default {MAX_FACES})",
    )
    p.add_argument(
        "--smooth",
        type=int_in(0),
        default=SMOOTH_PASSES,
        help=f"Taubin smoothing passes on the mesh (0: as extracted; default {SMOOTH_PASSES})",
    )
    p.add_argument(
        "--level",
        choices=("auto", "trained", "silhouette", "offset"),
        default="auto",
        help="surface to export: the explicit renderer's own (trained), the one matching the NeRF's renders "
        "(silhouette), the trained one moved inward to match them (offset), or trained where the run's explicit "
        "renderer drew at its last step, else silhouette (auto, the default, as run.export_level)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)
