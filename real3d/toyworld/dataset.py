"""Datasets of GT renders: random scenes × random views, written once as .npz shards and reused.

    samples = toy_dataset(DatasetSpec(n=50_000, resolution=64))
    samples.rgb(slice(0, 8))   # [8,64,64,3] float in [0,1]
    samples.captions[:8]       # "a red cube on top of a blue ball, side view", ...

Each shard is reproducible from (spec, shard index) alone, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..cameras import CameraConfig, Cameras, sample_views
from ..io import atomic_path, write_text
from .render import render, visible_pixels
from .scene import Scene, caption, jitter, random_scene, view_caption

DEFAULT_ROOT = Path("outputs/toyworld/datasets")
ARRAYS = ("images", "masks", "visible", "cameras")  # per-sample arrays of a shard (the rest: strings)
VISIBILITY_RULE = 2  # of render.visible_pixels; shards counted by another rule are rendered again


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset holds. Views of one scene share its shading mode; lights and scenes vary."""

    n: int
    resolution: int = 64
    seed: int = 0
    views_per_scene: int = 8
    albedo_fraction: float = 0.3  # share of scenes rendered albedo-only (else lambertian)
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    supersample: int = 1
    jitter: bool = True  # random uniform scale, shift and yaw of each scene (see scene.jitter)
    elevation_range: tuple[float, float] = (-10.0, 75.0)  # reaches above 60°: "overhead view" captions
    shard_size: int = 4096

    @property
    def name(self) -> str:
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.resolution}px-n{self.n}-seed{self.seed}-{digest}"


@dataclass
class Samples:
    """N samples. images uint8 [N,H,W,3], masks uint8 [N,H,W] (255 = object), visible [N,2,2] (pixels shown of
    each object: all of it, its front feature; see render.visible_pixels), cameras of N views, captions with
    the view suffix, prompts without it, scenes, shading mode per sample."""

    images: torch.Tensor
    masks: torch.Tensor
    visible: torch.Tensor
    cameras: Cameras
    captions: list[str]
    prompts: list[str]
    scenes: list[Scene]
    shading: list[str]
    background: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0))

    def __len__(self) -> int:
        return self.images.shape[0]

    def rgb(self, index: slice | torch.Tensor) -> torch.Tensor:
        """Images [n,H,W,3] as float in [0,1]."""
        return self.images[index].float() / 255.0

    def index(self, i: slice) -> Samples:
        """The samples of a slice, e.g. views not yet looked at."""
        return Samples(
            self.images[i],
            self.masks[i],
            self.visible[i],
            self.cameras.index(i),
            self.captions[i],
            self.prompts[i],
            self.scenes[i],
            self.shading[i],
            self.background,
        )


def _render_shard(spec: DatasetSpec, shard: int) -> dict[str, np.ndarray]:
    """Render one shard's images and records, seeded by (spec.seed, shard)."""
    count = min(spec.shard_size, spec.n - shard * spec.shard_size)
    gen = random.Random(f"{spec.seed}/{shard}")
    tgen = torch.Generator().manual_seed(gen.getrandbits(62))
    cam_cfg = CameraConfig(elevation_range=list(spec.elevation_range))
    out: dict[str, list] = {
        k: [] for k in ("images", "masks", "visible", "cameras", "captions", "prompts", "scenes", "shading")
    }
    done = 0
    while done < count:
        views = min(spec.views_per_scene, count - done)
        scene = random_scene(gen)
        scene = jitter(scene, gen) if spec.jitter else scene
        cams = sample_views(cam_cfg, views, tgen)
        shading: Literal["albedo", "lambertian"] = "albedo" if gen.random() < spec.albedo_fraction else "lambertian"
        light = F.normalize(
            F.normalize(cams.position, dim=-1)
            + 0.5 * torch.randn(views, 3, generator=tgen)
            + torch.tensor([0.0, 0.0, 0.4]),
            dim=-1,
        )
        r = render(
            scene,
            cams,
            spec.resolution,
            spec.resolution,
            shading,
            spec.background,
            light=light,
            supersample=spec.supersample,
        )
        out["images"].append((r.rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy())
        out["masks"].append((r.mask * 255 + 0.5).to(torch.uint8).numpy())
        out["visible"].append(visible_pixels(scene, r, spec.background).to(torch.int32).numpy())
        out["cameras"].append(torch.stack([cams.azimuth, cams.elevation, cams.radius, cams.fovy], -1).numpy())
        for a, e in zip(cams.azimuth.tolist(), cams.elevation.tolist()):
            prompt = caption(scene, gen)
            out["captions"].append(view_caption(prompt, a - scene.yaw, e))
            out["prompts"].append(prompt)
            out["scenes"].append(scene.to_json())
            out["shading"].append(shading)
        done += views
    return {
        **{k: np.concatenate(v) if k in ARRAYS else np.array(v) for k, v in out.items()},
        "visibility_rule": np.array(VISIBILITY_RULE),
    }


def _complete(path: Path) -> bool:
    """A shard exists, holds every array and counted what views show by this VISIBILITY_RULE (else it is
    rendered again: the same images, new counts)."""
    if not path.exists():
        return False
    with np.load(path) as data:
        return all(k in data.files for k in ARRAYS) and int(data.get("visibility_rule", 1)) == VISIBILITY_RULE


def _write_shard(spec: DatasetSpec, shard: int, path: Path) -> int:
    """Render one shard on one thread (sphere tracing runs many small ops: one is fastest), write it; its size."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = _render_shard(spec, shard)
    finally:
        torch.set_num_threads(threads)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **data)  # type: ignore[arg-type]  # numpy's stubs mistype **kwds
    return len(data["images"])


def build(spec: DatasetSpec, root: Path | str = DEFAULT_ROOT, log: bool = False, workers: int = 1) -> list[Path]:
    """Write the missing shards of `spec` under root/spec.name (existing ones are kept), `workers` processes
    at a time (a shard's content depends only on the spec and its index); the shard paths."""
    folder = Path(root) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "spec.json", json.dumps(asdict(spec), indent=1))
    paths = [folder / f"shard_{shard:05d}.npz" for shard in range((spec.n + spec.shard_size - 1) // spec.shard_size)]
    missing = [shard for shard, path in enumerate(paths) if not _complete(path)]
    start, rendered = time.time(), 0
    with (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else nullcontext()
    ) as pool:
        todo = [paths[shard] for shard in missing]
        counts = (pool.map if pool else map)(_write_shard, [spec] * len(missing), missing, todo)
        for shard, count in zip(missing, counts):
            rendered += count
            if log:
                print(f"{paths[shard]}: {rendered / (time.time() - start):.1f} images/s", flush=True)
    return paths


def toy_dataset(spec: DatasetSpec, root: Path | str = DEFAULT_ROOT, log: bool = False, workers: int = 1) -> Samples:
    """The samples of `spec`, rendered on first use (by `workers` processes) and loaded from the shards afterwards."""
    parts = [np.load(p) for p in build(spec, root, log, workers)]

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts])

    cams = torch.from_numpy(cat("cameras")).float()
    return Samples(
        torch.from_numpy(cat("images")),
        torch.from_numpy(cat("masks")),
        torch.from_numpy(cat("visible")),
        Cameras(cams[:, 0], cams[:, 1], cams[:, 2], cams[:, 3]),
        cat("captions").tolist(),
        cat("prompts").tolist(),
        [Scene.from_json(s) for s in cat("scenes")],
        cat("shading").tolist(),
        spec.background,
    )
