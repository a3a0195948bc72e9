"""A finished run's folder seen by the toy world: its views.png read back and scored again with a judge.

A generate run writes views.png: the 12 turntable views (azimuth 0, 30, …, elevation 15°) of 64², 2×2
supersampled as the GT views are, that the judge scores, in one row, and metrics.json naming the prompt.
Nothing here knows how the views were made; the azimuth of each is known, so features and Janus are scored
against the camera (the front faces +x).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cameras import orbit
from ..errors import UserError
from ..export import read_glb
from ..io import write_text
from .judge import Judge
from .metrics import colour_accuracy, colour_error, judge_metrics, mesh_metrics, silhouette_iou
from .render import render
from .scene import parse

VIEWS, VIEW_SIZE = 12, 64
VIEW_SUPERSAMPLE = 2  # k×k samples a pixel, for the GT views and a run's alike: the judge reads both the same way
CAMERAS = orbit(VIEWS, 15.0, 2.5, 45.0)  # the judge's turntable: azimuth 0 (the front), 30, …, 330°


def load_views(folder: Path) -> torch.Tensor:
    """The 12 judge views [12,64,64,3] in [0,1] of the views.png in `folder`."""
    from PIL import Image

    path = folder / "views.png"
    try:
        sheet = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).float() / 255
        return sheet.reshape(VIEW_SIZE, VIEWS, VIEW_SIZE, 3).permute(1, 0, 2, 3)
    except (OSError, RuntimeError) as e:
        raise UserError(f"{path} is not the views sheet of a run ({type(e).__name__}); run it again") from None


def gt_views(prompt: str) -> torch.Tensor:
    """Ground-truth renders [12,64,64,3] of a prompt at the judge's 12 turntable views."""
    return render(parse(prompt), CAMERAS, VIEW_SIZE, VIEW_SIZE, supersample=VIEW_SUPERSAMPLE).rgb


def view_metrics(judge: Judge, views: torch.Tensor, prompt: str) -> dict[str, float]:
    """What the toy world says of a run's 12 views [12,64,64,3]: the judge against the camera (score, R-precision,
    Janus, front feature) and, without the judge, silhouette IoU, colour error and colour accuracy against the GT
    views."""
    gt = gt_views(prompt)
    return judge_metrics(judge, views, prompt, CAMERAS.azimuth) | {
        "silhouette_iou": silhouette_iou(views, gt),
        "colour_error": colour_error(views, gt),
        "colour_accuracy": colour_accuracy(views, gt),
    }


def score_run(judge: Judge, folder: Path, remedy: str = "run it again") -> dict[str, Any]:
    """Judge metrics of a finished run again from its views.png, and the mesh metrics from its model.glb where
    it has one (mesh IoU, precision, recall), merged into (and written to) its metrics.json, which names the
    prompt. `remedy`: what the error says to do where views.png is missing."""
    path = folder / "metrics.json"
    if not path.exists():
        raise UserError(f"{folder} holds no metrics.json: it is not a finished 'real3d generate' run")
    if not (folder / "views.png").exists():
        raise UserError(f"{folder} has no views.png to score again (run before views.png existed): {remedy}")
    metrics = json.loads(path.read_text())
    metrics |= view_metrics(judge, load_views(folder), metrics["prompt"])
    if (folder / "model.glb").exists():
        mesh = read_glb(folder / "model.glb")
        metrics |= mesh_metrics(mesh.verts, mesh.faces, metrics["prompt"])
    write_text(path, json.dumps(metrics, indent=2))
    return metrics
