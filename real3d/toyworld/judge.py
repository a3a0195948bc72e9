"""The judge: a small CNN trained only on GT renders that reads a view's scene attributes.

Heads (softmax each): relation (single / on top of / next to); shape, colour and feature of slot a and
slot b (for "on top of", a is the upper object; "next to" is symmetric, so its two slots are matched to
the two objects by the cheaper assignment, as in set prediction); facing = which side of the scene's
front the camera sees, only for scenes with a front feature: front (within 45° of it), side (further
round, the feature still in view) or back (the feature out of view); framing = whether the view shows the
scene whole or cut off by the frame (an object that fills the view is no view of its shape). Labels are
what a view shows: an object (or a feature) with too few visible pixels has none, since no one can read it.
Training augments backgrounds, blur, noise, colour and (optionally) generator-like artifacts and magnified
views so that it transfers to the renders of a generator — which it never sees.
"""

from __future__ import annotations

import json
import math
import string
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .. import cameras, precision
from ..config import bounded
from ..errors import UserError
from ..io import atomic_path, write_text
from ..loop import Loop, halve_learning_rate
from ..precision import Precision
from .dataset import DEFAULT_ROOT, DatasetSpec, Samples, toy_dataset
from .render import EDGE_CONTRAST
from .scene import COLOURS, FEATURES, RELATIONS, SHAPES, Scene

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
NAME = "toyworld-judge"
SLOT_ATTRS = {"shape": SHAPES, "colour": list(COLOURS), "feature": ["none"] + FEATURES}
HEADS: dict[str, list[str]] = {
    "relation": ["single"] + RELATIONS,
    **{f"{k}_{s}": v for s in "ab" for k, v in SLOT_ATTRS.items()},
    "facing": ["front", "side", "back"],
    "framing": ["whole", "cut off"],
}
MIN_OBJECT_SHOWN, MIN_FEATURE_SHOWN = 0.01, 0.002  # share of a view's pixels (41 and 8 px of 64²) to be read


def off_front(azimuth: float | torch.Tensor, yaw: float | torch.Tensor) -> float | torch.Tensor:
    """Angle in [0,180] between a camera's azimuth and the front of a scene turned by `yaw` (floats or tensors)."""
    return cast(float | torch.Tensor, cameras.off_front(azimuth - yaw))


FRONT_SIDE_BORDER = 45.0  # degrees off the front
SIDE_BACK_BAND = (MIN_FEATURE_SHOWN / 2, 2 * MIN_FEATURE_SHOWN)  # visible feature share: a factor 2 either side


def at_facing_border(angle: torch.Tensor, feature_shown: torch.Tensor) -> torch.Tensor:
    """Views [N] that sit on a border of the facing classes, where either side's answer is fair: within 5° of
    front | side (angle off the front [N]), or with a visible feature (share of pixels [N]) within a factor
    2 of the side | back threshold."""
    lo, hi = SIDE_BACK_BAND
    return ((angle - FRONT_SIDE_BORDER).abs() <= 5.0) | ((feature_shown >= lo) & (feature_shown < hi))


def facing_cues(angle: torch.Tensor, feature_shown: torch.Tensor) -> torch.Tensor:
    """What `facing` is decided by, as regression targets [N,2]: cos of the angle off the front [N] (degrees;
    front | side at cos 45°) and log2(1 + pixels of the feature shown)/4, pixels counted at 64² from its share
    [N] (side | back at 8 px). They teach the judge where a view sits between the classes, not only which."""
    return torch.stack([torch.cos(torch.deg2rad(angle)), torch.log2(1 + feature_shown * 64**2) / 4], -1)


def labels(scene: Scene, azimuth: float, shown: list[list[float]]) -> dict[str, int]:
    """Class index per head but framing (label_tensor adds it from the view's mask) for one view; -1 where a
    head does not apply or the view cannot show it.

    shown [2][2]: share of the view's pixels that show each object (all of it, its front feature). No
    label: slot b of one object; shape, colour and feature of an object hidden (behind the other), and
    the relation of a pair with one object hidden (the view shows one object, not how two stand);
    the feature of an object whose feature is out of view (a face seen from behind is a plain ball);
    facing of a scene without a front feature."""
    both_shown = len(scene.objects) == 1 or min(shown[0][0], shown[1][0]) >= MIN_OBJECT_SHOWN
    out = {"relation": HEADS["relation"].index(scene.relation or "single") if both_shown else -1}
    front_shown = False
    for slot, i in (("a", 0), ("b", 1)):
        obj = scene.objects[i] if i < len(scene.objects) else None
        whole, feature = shown[i]
        front_shown |= obj is not None and obj.feature is not None and feature >= MIN_FEATURE_SHOWN
        if obj is None or whole < MIN_OBJECT_SHOWN:  # absent or hidden: nothing to read
            out |= {f"shape_{slot}": -1, f"colour_{slot}": -1, f"feature_{slot}": -1}
            continue
        out[f"shape_{slot}"] = SHAPES.index(obj.shape)
        out[f"colour_{slot}"] = list(COLOURS).index(obj.colour)
        readable = obj.feature is None or feature >= MIN_FEATURE_SHOWN
        out[f"feature_{slot}"] = SLOT_ATTRS["feature"].index(obj.feature or "none") if readable else -1
    side = (
        "back" if not front_shown else "front" if float(off_front(azimuth, scene.yaw)) < FRONT_SIDE_BORDER else "side"
    )
    out["facing"] = HEADS["facing"].index(side) if any(o.feature for o in scene.objects) else -1
    return out


ZOOM_RANGE = (1.0, 2.5)  # magnification of the zoomed training views (JudgeTraining.zoom), uniform
EVAL_ZOOMS = (1.5, 2.0)  # magnifications that `real3d toyworld eval-judge` checks framing (and the rest) at
FRAMING_BAND = (0.05, 0.2)  # share of the view's outermost ring of pixels the scene covers: whole below, cut off above


def framing_labels(mask: torch.Tensor) -> torch.Tensor:
    """`framing` class [B] of views with masks [B,H,W] in [0,1]: whole where the scene covers less than
    FRAMING_BAND[0] of the view's outermost ring of pixels, cut off above FRAMING_BAND[1], -1 in between
    (either answer is fair there)."""
    m = mask > 0.5
    ring = torch.cat([m[:, 0], m[:, -1], m[:, 1:-1, 0], m[:, 1:-1, -1]], 1).float().mean(1)  # [B]
    lo, hi = FRAMING_BAND
    return torch.where(ring < lo, 0, torch.where(ring > hi, 1, -1))


def zoom_views(rgb: torch.Tensor, mask: torch.Tensor, factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Views rgb [B,H,W,3] and masks [B,H,W] magnified by factor [B] (≥ 1) about their centre: the scene as a
    camera that much nearer (in angle) would frame it, so that a large factor cuts it off at the frame."""
    b, h, w, _ = rgb.shape
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / factor
    grid = F.affine_grid(theta, [b, 4, h, w], align_corners=False)
    x = torch.cat([rgb, mask[..., None]], -1).permute(0, 3, 1, 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).permute(0, 2, 3, 1)
    return x[..., :3], x[..., 3]


def zoomed_labels(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Labels y [B,heads] of views after zoom_views, masks [B,H,W]: framing from the zoomed masks; a view no
    longer whole keeps no other label (what the frame cut off may be what a head reads), a whole one all but
    facing (magnified, a feature too small to see from the side may show: side | back moved)."""
    cols, framing = list(HEADS), framing_labels(mask)
    y = torch.where((framing == 0)[:, None], y, torch.full_like(y, -1))
    y[:, cols.index("facing")] = -1
    y[:, cols.index("framing")] = framing
    return y


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Judge(nn.Module):
    """rgb [B,H,W,3] in [0,1] → logits per head {name: [B,classes]} (views are resized to `resolution`)."""

    @dataclass
    class Config:
        resolution: int = 64
        width: int = 24
        hidden: int = 256
        cues: bool = False  # a regression head of the facing cues (facing_cues), trained beside the others

    def __init__(self, cfg: Judge.Config) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.trunk = nn.Sequential(
            _conv(3, w, 2),
            _conv(w, 2 * w, 1),
            _conv(2 * w, 2 * w, 2),  # 64 → 16 px
            _conv(2 * w, 4 * w, 1),
            _conv(4 * w, 4 * w, 2),
            _conv(4 * w, 4 * w, 2),  # → 4 px
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(64 * w, cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
        )
        self.heads = nn.ModuleDict({k: nn.Linear(cfg.hidden, len(v)) for k, v in HEADS.items()})
        self.cues = nn.Linear(cfg.hidden, 2) if cfg.cues else None

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per head, plus "cues" [B,2] (facing_cues' estimate) where the judge has that head."""
        x = rgb.permute(0, 3, 1, 2)
        if x.shape[-1] != self.cfg.resolution or x.shape[-2] != self.cfg.resolution:
            x = F.interpolate(x, size=(self.cfg.resolution,) * 2, mode="bilinear", antialias=True, align_corners=False)
        feat = self.trunk((x * 2 - 1).contiguous(memory_format=torch.channels_last))
        out = {k: head(feat).float() for k, head in self.heads.items()}
        return out if self.cues is None else out | {"cues": self.cues(feat).float()}

    @torch.no_grad()
    def probs(self, rgb: torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
        """Class probabilities per head {name: [B,classes]} of views rgb [B,H,W,3], in eval mode. The heads
        that a mirror image leaves unchanged (MIRROR_INVARIANT) average the view's and its mirror's
        probabilities; the slot heads read the view alone, as a mirror swaps the slots of "next to"."""
        was = self.training
        self.eval()
        outs = [self(rgb[i : i + batch].float()) for i in range(0, rgb.shape[0], batch)]
        mirrored = [self(rgb[i : i + batch].float().flip(2)) for i in range(0, rgb.shape[0], batch)]
        self.train(was)
        probs = {k: torch.cat([o[k] for o in outs]).softmax(-1) for k in HEADS}
        for k in MIRROR_INVARIANT:
            probs[k] = (probs[k] + torch.cat([o[k] for o in mirrored]).softmax(-1)) / 2
        return probs


MIRROR_INVARIANT = ("relation", "facing", "framing")  # a mirror shows the same relation, side of the front, framing


def save_judge(judge: Judge, folder: Path) -> None:
    """weights as fp16 safetensors + the JSON config beside them (the model card is written by train_judge)."""
    with atomic_path(folder / f"{NAME}.safetensors") as tmp:
        save_file(
            {k: v.detach().half().contiguous() for k, v in judge.state_dict().items() if v.is_floating_point()},
            str(tmp),
        )
    write_text(folder / f"{NAME}.json", json.dumps({"config": asdict(judge.cfg), "heads": HEADS}, indent=1))


def _read(folder: Path | str) -> tuple[dict, Judge, dict[str, torch.Tensor]]:
    """(the JSON beside the weights, an untrained judge of its config, its weights as fp32)."""
    folder = Path(folder)
    if not (folder / f"{NAME}.json").exists():
        raise UserError(f"no judge in {folder}: train one with 'real3d toyworld train-judge --out {folder}'")
    meta = json.loads((folder / f"{NAME}.json").read_text())
    state = {k: v.float() for k, v in load_file(str(folder / f"{NAME}.safetensors")).items()}
    return meta, Judge(Judge.Config(**meta["config"])), state


def load_judge(folder: Path | str = WEIGHTS_DIR) -> Judge:
    """The shipped (or a trained) judge, in eval mode."""
    meta, judge, state = _read(folder)
    if meta["heads"] != HEADS:
        raise UserError(
            f"the judge in {folder} reads {', '.join(meta['heads'])}, this version reads "
            f"{', '.join(HEADS)}: retrain it with 'real3d toyworld train-judge --out {folder}'"
        )
    missing = judge.load_state_dict(state, strict=False).missing_keys
    assert all(k.endswith("num_batches_tracked") for k in missing), f"missing judge weights: {missing}"
    return judge.eval()


def _fine_tune_from(folder: Path | str, cues: bool) -> Judge:
    """The judge in `folder` to train on: its trunk and every head whose classes are still those of HEADS
    (a head whose classes changed, or a new one, starts afresh; a head no longer read is dropped), with a
    cue head or without one (a new cue head starts afresh)."""
    meta, _, state = _read(folder)
    judge = Judge(Judge.Config(**(meta["config"] | {"cues": cues})))
    state = {k: v for k, v in state.items() if cues or not k.startswith("cues.")}
    same = {k for k, v in HEADS.items() if meta["heads"].get(k) == v}
    judge.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith("heads.") or k.split(".")[1] in same}, strict=False
    )
    return judge.train()


# ------------------------------------------------------------------------------------------- training


@dataclass
class JudgeTraining:
    """How the judge is trained (`real3d toyworld train-judge`; a config like every other: YAML, overrides)."""

    train_n: int = bounded(50_000, 1)
    test_n: int = bounded(4096, 1)
    steps: int = bounded(6000, 1)
    batch: int = bounded(128, 1)
    lr: float = bounded(2e-3, 0.0)
    seed: int = 0
    feature_boost: float = bounded(1.0, 0.0)  # views of scenes with a front feature are drawn this many times as often
    init: str | None = None  # start from the judge in this folder (a second, fine-tuning stage)
    precision: Precision = "auto"  # real3d.precision: bf16 autocast (about 2x faster) only where it is native
    artifacts: float = bounded(0.0, 0.0, 1.0)  # share of training views given generator artifacts
    cues: float = bounded(0.0, 0.0)  # weight of the facing-cue regression (cue_loss); 0: the judge has no cue head
    zoom: float = bounded(0.0, 0.0, 1.0)  # share of training views magnified ZOOM_RANGE× (zoom_views): framing's data


def test_spec(n: int) -> DatasetSpec:
    """The held-out GT renders: other scenes, views and lights than any training seed."""
    return DatasetSpec(n=n, seed=10_000)


def angles_off_front(samples: Samples) -> torch.Tensor:
    """Degrees [N] between each view's camera and the front of its scene (see off_front)."""
    return torch.as_tensor(off_front(samples.cameras.azimuth, torch.tensor([s.yaw for s in samples.scenes])))


def cue_tensor(samples: Samples) -> torch.Tensor:
    """facing_cues [N,2] of each view: the angle off the front, the most pixels that one object's feature shows."""
    angle = angles_off_front(samples)
    shown = samples.visible[:, :, 1].amax(-1).float() / (samples.images.shape[1] * samples.images.shape[2])
    return facing_cues(angle, shown)


def label_tensor(samples: Samples) -> torch.Tensor:
    """Labels [N,heads] (columns in HEADS order, -1 = not applicable or not shown): `labels` per view, then
    framing from its mask."""
    shown = (samples.visible.float() / (samples.images.shape[1] * samples.images.shape[2])).tolist()
    rows = [list(labels(s, a, v).values()) for s, a, v in zip(samples.scenes, samples.cameras.azimuth.tolist(), shown)]
    framing = framing_labels(samples.masks.float() / 255.0)
    return torch.cat([torch.tensor(rows, dtype=torch.long), framing[:, None]], 1)


def gaussian_blur(rgb: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """rgb [B,H,W,3] blurred by a separable 7-tap Gaussian of width sigma [B] px (0: unchanged)."""
    b, h, w, _ = rgb.shape
    taps = torch.arange(-3, 4, dtype=torch.float32)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(3, 0)  # [3B,7]
    x = rgb.permute(0, 3, 1, 2).reshape(1, 3 * b, h, w)
    x = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=3 * b)
    x = F.conv2d(F.pad(x, (0, 0, 3, 3), mode="replicate"), kernel[:, None, :, None], groups=3 * b)
    return x.reshape(b, 3, h, w).permute(0, 2, 3, 1)


def _smooth_noise(b: int, channels: int, cells: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """Low-frequency Gaussian noise [B,channels,H,W]: a cells×cells grid upsampled bicubically."""
    coarse = torch.randn(b, channels, cells, cells, generator=gen)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)


def ragged_outline(rgb: torch.Tensor, mask: torch.Tensor, share: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """rgb [B,H,W,3] with a share [B] of the pixels on the silhouette's rim swapped, as on an SDS mesh's jagged
    edge: an object pixel there takes the mean colour of the background pixels around it, a background pixel
    the mean colour of the object pixels around it (3×3). mask [B,H,W] in [0,1]."""
    m = (mask[:, None] > 0.5).float()
    x = rgb.permute(0, 3, 1, 2)
    inner = m + F.max_pool2d(-m, 3, 1, 1)  # object pixels with background among their 8 neighbours
    outer = F.max_pool2d(m, 3, 1, 1) - m  # background pixels next to the object

    def around(where: torch.Tensor) -> torch.Tensor:
        """Mean colour [B,3,H,W] of the 3×3 neighbours where `where` is 1."""
        return F.avg_pool2d(x * where, 3, 1, 1) / F.avg_pool2d(where, 3, 1, 1).clamp(min=1e-6)

    swap = (torch.rand(m.shape, generator=gen) < share[:, None, None, None]).float()
    x = x + swap * (inner * (around(1 - m) - x) + outer * (around(m) - x))
    return x.permute(0, 2, 3, 1)


def generator_artifacts(rgb: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """What an SDS render has and a GT render lacks: blotchy shading and dark per-pixel speckles on the object,
    a ragged rim (ragged_outline, up to half its pixels) and a wobbly silhouette (a smooth random warp of up to
    ~1.5 px). rgb [B,H,W,3], mask [B,H,W] in [0,1]."""
    b, h, w, _ = rgb.shape
    rgb = ragged_outline(rgb, mask, 0.5 * torch.rand(b, generator=gen), gen)
    x = rgb.permute(0, 3, 1, 2)
    shade = 1 + 0.25 * torch.rand(b, 1, 1, 1, generator=gen) * _smooth_noise(b, 1, 8, h, w, gen)
    speckle = torch.rand(b, 1, h, w, generator=gen) < 0.4 * torch.rand(b, 1, 1, 1, generator=gen)
    shade = shade * (1 - 0.5 * speckle * torch.rand(b, 1, h, w, generator=gen))
    x = x * (1 + mask[:, None] * (shade - 1))
    identity = F.affine_grid(torch.eye(2, 3).expand(b, 2, 3), [b, 3, h, w], align_corners=False)
    flow = 1.5 * torch.rand(b, 1, 1, 1, generator=gen) * _smooth_noise(b, 2, 6, h, w, gen) * (2 / w)
    x = F.grid_sample(x, identity + flow.permute(0, 2, 3, 1), padding_mode="border", align_corners=False)
    return x.permute(0, 2, 3, 1).clamp(0, 1)


def augment(
    rgb: torch.Tensor, mask: torch.Tensor, background: torch.Tensor, gen: torch.Generator, artifacts: float = 0.0
) -> torch.Tensor:
    """Random background colour, flip, colour jitter, generator artifacts (share `artifacts` of the views),
    blur and noise. rgb [B,H,W,3], mask [B,H,W] in [0,1]."""
    b, h, w, _ = rgb.shape

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, *shape, generator=gen)

    new_bg = torch.where(u(0, 1, 1) < 0.5, torch.ones(b, 3), u(0, 1, 3))[:, None, None]  # white or any colour
    rgb = rgb + (1 - mask[..., None]) * (new_bg - background)
    rgb = torch.where(u(0, 1, 1, 1, 1) < 0.5, rgb.flip(2), rgb)
    rgb = (rgb * u(0.8, 1.15, 1, 1, 1) * u(0.93, 1.07, 1, 1, 3)).clamp(0, 1)  # brightness, channel gains
    if artifacts > 0:
        rgb = torch.where(u(0, 1, 1, 1, 1) < artifacts, generator_artifacts(rgb, mask, gen), rgb)
    rgb = gaussian_blur(rgb, u(0.0, 1.6) * (u(0, 1) < 0.6))
    noise = u(0, 0.04, 1, 1, 1) * torch.randn(b, 3, h, w, generator=gen).permute(0, 2, 3, 1)
    return (rgb + noise).clamp(0, 1)


def saturate(rgb: torch.Tensor, chroma: float) -> torch.Tensor:
    """Views rgb [...,3] with each pixel's distance from its own grey scaled by `chroma` (clamped to [0, 1]):
    white and greys stay, a colour moves toward its pure hue, as SDS drives a run's albedo (docs/results.md,
    nineteenth round)."""
    grey = rgb.mean(-1, keepdim=True)
    return (grey + chroma * (rgb - grey)).clamp(0, 1)


DEGRADATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    # what a generator's renders look like, to check that the judge transfers (rgb [B,H,W,3], mask [B,H,W])
    "blur σ 1.5 px": lambda rgb, mask: gaussian_blur(rgb, torch.full((rgb.shape[0],), 1.5)),
    "32 px, upsampled": lambda rgb, mask: F.interpolate(
        F.interpolate(rgb.permute(0, 3, 1, 2), scale_factor=0.5, mode="area"), scale_factor=2.0, mode="bilinear"
    ).permute(0, 2, 3, 1),
    "grey background": lambda rgb, mask: rgb - 0.5 * (1 - mask[..., None]),
    "colours saturated (chroma ×2)": lambda rgb, mask: saturate(rgb, 2.0),
    "ragged outline (30 % of the rim)": lambda rgb, mask: ragged_outline(
        rgb, mask, torch.full((rgb.shape[0],), 0.3), torch.Generator().manual_seed(0)
    ),
}


def _slot_loss(logits: dict[str, torch.Tensor], y: torch.Tensor, swap: bool) -> torch.Tensor:
    """Summed cross-entropy [B] of the slot heads, with slots a/b of the labels swapped if `swap`."""
    cols = list(HEADS)
    total = torch.zeros(y.shape[0])
    for slot, other in (("a", "b"), ("b", "a")):
        for attr in SLOT_ATTRS:
            target = y[:, cols.index(f"{attr}_{other if swap else slot}")]
            total = total + F.cross_entropy(logits[f"{attr}_{slot}"], target.clamp(min=0), reduction="none") * (
                target >= 0
            )
    return total


def judge_loss(logits: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """Mean loss of a batch; labels y [B,heads]. "next to" slots take the cheaper of both assignments."""
    cols = list(HEADS)
    slots = _slot_loss(logits, y, False)
    next_to = y[:, 0] == HEADS["relation"].index("next to")
    slots = torch.where(next_to, torch.minimum(slots, _slot_loss(logits, y, True)), slots)
    rest = sum(
        F.cross_entropy(logits[k], y[:, cols.index(k)].clamp(min=0), reduction="none") * (y[:, cols.index(k)] >= 0)
        for k in ("relation", "facing", "framing")
    )
    return (slots + rest).mean()


def cue_loss(cues: torch.Tensor, target: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean L1 error of the cue head cues [B,2] against facing_cues target [B,2], over the views with a facing
    label (y [B,heads]); 0 for a batch without one."""
    has = (y[:, list(HEADS).index("facing")] >= 0).float()
    return ((cues - target).abs().sum(-1) * has).sum() / has.sum().clamp(min=1)


def evaluate(
    judge: Judge,
    samples: Samples,
    degrade: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    zoom: float = 1.0,
) -> dict[str, tuple[float, int]]:
    """Accuracy per head (and of whole prompts) on GT renders, optionally magnified `zoom`× (zoom_views, with
    zoomed_labels) or degraded (see DEGRADATIONS) first: {name: (accuracy, count)}; accuracy NaN where no
    view has that head's label."""
    rgb, mask, y = samples.rgb(slice(None)), samples.masks.float() / 255.0, label_tensor(samples)
    if zoom != 1.0:
        rgb, mask = zoom_views(rgb, mask, torch.full((len(rgb),), zoom))
        y = zoomed_labels(y, mask)
    probs = judge.probs(rgb if degrade is None else degrade(rgb, mask).clamp(0, 1))
    logp = {k: v.clamp(min=1e-12).log() for k, v in probs.items()}
    next_to = y[:, 0] == HEADS["relation"].index("next to")
    swap = next_to & (_slot_loss(logp, y, True) < _slot_loss(logp, y, False))
    cols = list(HEADS)
    result, all_ok = {}, torch.ones(len(y), dtype=torch.bool)
    for k in HEADS:
        target = y[:, cols.index(k)]
        if k[:-2] in SLOT_ATTRS:
            other = f"{k[:-2]}_{'b' if k.endswith('a') else 'a'}"
            target = torch.where(swap, y[:, cols.index(other)], target)
        ok = probs[k].argmax(-1) == target
        valid = target >= 0
        if k != "facing":
            all_ok &= ok | ~valid
        result[k] = (float(ok[valid].float().mean()), int(valid.sum()))
        if k == "facing":
            angle = angles_off_front(samples)
            shown = samples.visible[:, :, 1].sum(-1).float() / (samples.images.shape[1] * samples.images.shape[2])
            border = at_facing_border(angle, shown)
            for name, views in (("clear of its borders", valid & ~border), ("on its borders", valid & border)):
                result[f"facing, {name}"] = (float(ok[views].float().mean()), int(views.sum()))
    result["prompt (all but facing)"] = (float(all_ok.float().mean()), len(y))
    return result


def _percent(accuracy: tuple[float, int]) -> str:
    """An (accuracy, count) as a table cell: "–" where no view had the label."""
    return f"{100 * accuracy[0]:.1f} %" if accuracy[1] else "–"


def format_table(results: dict[str, dict[str, tuple[float, int]]]) -> str:
    """Markdown table: one row per head, one accuracy column per condition (e.g. clean, blurred)."""
    first = next(iter(results.values()))
    lines = ["| head | " + " | ".join(results) + " | views |", "|---" * (len(results) + 2) + "|"]
    return "\n".join(
        lines
        + [
            f"| {k} | " + " | ".join(_percent(r[k]) for r in results.values()) + f" | {n} |"
            for k, (_, n) in first.items()
        ]
    )


class JudgeRun:
    """The state of one judge training (real3d.loop.Stateful): weights, optimiser, schedule, both RNGs."""

    def __init__(
        self,
        cfg: JudgeTraining,
        judge: Judge,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        gen: torch.Generator,
    ) -> None:
        self.cfg, self.judge, self.opt, self.sched, self.gen = cfg, judge, opt, sched, gen

    def state_dict(self) -> dict[str, Any]:
        return {
            "cfg": asdict(self.cfg),
            "judge": self.judge.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "gen": self.gen.get_state(),
            "rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["cfg"] != asdict(self.cfg):
            raise UserError(
                "the checkpoint in the output folder is a stopped training with other settings: rerun "
                f"it with those, or remove {CHECKPOINT}"
            )
        self.judge.load_state_dict(state["judge"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["rng"])


def train_judge(cfg: JudgeTraining, out: Path, root: Path | str = DEFAULT_ROOT) -> dict[str, tuple[float, int]]:
    """Train on GT renders, evaluate on held-out GT renders, save weights + config + model card to `out`.
    A stopped training (Ctrl-C, SIGTERM, a kill) of the same settings continues from its checkpoint there."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train = toy_dataset(DatasetSpec(n=cfg.train_n, seed=cfg.seed), root, log=True)
    test = toy_dataset(test_spec(cfg.test_n), root, log=True)
    y_all, cues_all, background = label_tensor(train), cue_tensor(train), torch.tensor(train.background)
    judge = _fine_tune_from(cfg.init, cues=cfg.cues > 0) if cfg.init else Judge(Judge.Config(cues=cfg.cues > 0))
    judge.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs miss this overload
    weights = torch.tensor([cfg.feature_boost if any(o.feature for o in s.objects) else 1.0 for s in train.scenes])
    opt = torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=1e-4)
    warmup = max(cfg.steps // 50, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
    )
    checkpoint = out / CHECKPOINT
    loop = Loop(
        checkpoint,
        JudgeRun(cfg, judge, opt, sched, gen),
        cfg.steps,
        CHECKPOINT_EVERY,
        f"the same real3d toyworld train-judge command (it continues from {checkpoint})",
        on_rollback=lambda step: halve_learning_rate(opt, sched),
    )
    first = loop.begin(resume=checkpoint.exists())
    if first:
        print(f"resuming {checkpoint} at step {first}", flush=True)
    start = time.time()

    def train_step(step: int) -> float:
        idx = torch.multinomial(weights, cfg.batch, replacement=True, generator=gen)
        rgb, mask, y = train.rgb(idx), train.masks[idx].float() / 255.0, y_all[idx]
        if cfg.zoom > 0:
            lo, hi = ZOOM_RANGE
            zoomed = torch.rand(cfg.batch, generator=gen) < cfg.zoom
            factor = torch.where(zoomed, lo + (hi - lo) * torch.rand(cfg.batch, generator=gen), 1.0)
            rgb, mask = zoom_views(rgb, mask, factor)
            y = torch.where(zoomed[:, None], zoomed_labels(y, mask), y)
        rgb = augment(rgb, mask, background, gen, cfg.artifacts)
        with precision.autocast():
            pred = judge(rgb)
            loss = judge_loss(pred, y)
            if cfg.cues > 0:
                loss = loss + cfg.cues * cue_loss(pred["cues"], cues_all[idx], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return float(loss.detach())

    def on_step(step: int, loss: float) -> None:
        if (step - 1) % 100 == 0 or step == cfg.steps:
            print(f"step {step - 1}/{cfg.steps} loss {loss:.4f} ({time.time() - start:.0f} s)", flush=True)

    with precision.use(cfg.precision):
        loop.run(first, train_step, on_step)
    result = evaluate(judge, test)
    table = format_table(
        {"held-out GT renders": result} | {f"zoomed {z:g}×": evaluate(judge, test, zoom=z) for z in EVAL_ZOOMS}
    )
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    save_judge(judge, out)
    write_text(out / f"{NAME}.md", model_card(cfg, table, time.time() - start))
    checkpoint.unlink(missing_ok=True)
    return result


CHECKPOINT = "judge-training.pt"  # in the output folder while a training runs; removed when it is done
CHECKPOINT_EVERY = 500  # steps


CARD_TEMPLATE = WEIGHTS_DIR / f"{NAME}.card.md"  # the model card's text, $-placeholders (string.Template)


def model_card(cfg: JudgeTraining, table: str, seconds: float) -> str:
    """The model card of a trained judge: CARD_TEMPLATE filled with its settings, accuracy table and command."""
    lo, hi = SIDE_BACK_BAND
    cue_line = (
        "\nBeside the class heads, a cue head regresses what decides `facing` (`facing_cues`: cos of the angle "
        "off\nthe front, log2 of 1 + the feature's visible pixels), L1 loss weighted "
        f"{cfg.cues:g}."
        if cfg.cues
        else ""
    )
    zoom = (
        f"{cfg.zoom:.0%} of the views magnified {ZOOM_RANGE[0]:g}–{ZOOM_RANGE[1]:g}× about their centre (`zoom_views`: "
        "the framing head's cut-off views), "
        if cfg.zoom
        else ""
    )
    artifacts = (
        f"generator artifacts on {cfg.artifacts:.0%} of the views (blotchy shading, dark speckles, a ragged rim, "
        "an outline wobbling by ≤ 1.5 px), "
        if cfg.artifacts
        else ""
    )
    values = {
        "params": f"{sum(p.numel() for p in Judge(Judge.Config()).parameters()) / 1e6:.2f}",
        "train_n": cfg.train_n,
        "seed": cfg.seed,
        "artifacts": artifacts,
        "zoom": zoom,
        "steps": cfg.steps,
        "batch": cfg.batch,
        "lr": cfg.lr,
        "threads": torch.get_num_threads(),
        "minutes": f"{seconds / 60:.0f}",
        "used": "bf16 autocast" if precision.resolve(cfg.precision) == torch.bfloat16 else "fp32",
        "feature_boost": f"{cfg.feature_boost:g}",
        "cue_line": cue_line,
        "stage": "This stage fine-tunes the judge of the commands before the last one below." if cfg.init else "",
        "test_n": cfg.test_n,
        "min_object": f"{MIN_OBJECT_SHOWN:.1%}",
        "min_feature": f"{MIN_FEATURE_SHOWN:.1%}",
        "edge_contrast": EDGE_CONTRAST,
        "table": table,
        "framing_lo": f"{FRAMING_BAND[0]:.0%}",
        "framing_hi": f"{FRAMING_BAND[1]:.0%}",
        "band_lo": f"{lo:.1%}",
        "band_hi": f"{hi:.1%}",
        "band_lo_px": f"{lo * 64**2:.0f}",
        "band_hi_px": f"{hi * 64**2:.0f}",
        "command": _command(cfg),
    }
    return string.Template(CARD_TEMPLATE.read_text()).substitute(values)


def _command(cfg: JudgeTraining) -> str:
    """The command(s) that train this judge: a fine-tuned judge's card repeats the stages before it."""
    before = ""
    if cfg.init:
        card = (Path(cfg.init) / f"{NAME}.md").read_text()
        before = card.split("## Command\n```\n")[1].split("```")[0].replace("--out weights", f"--out {cfg.init}")
    return before + (
        f"real3d toyworld train-judge --train-n {cfg.train_n} --test-n {cfg.test_n} --steps {cfg.steps} "
        f"\\\n    --batch {cfg.batch} --lr {cfg.lr} --seed {cfg.seed} --feature-boost {cfg.feature_boost}"
        + (f" --init {cfg.init}" if cfg.init else "")
        + (f" --artifacts {cfg.artifacts}" if cfg.artifacts else "")
        + (f" --cues {cfg.cues}" if cfg.cues else "")
        + (f" --zoom {cfg.zoom}" if cfg.zoom else "")
        + ("" if cfg.precision == "auto" else f" --precision {cfg.precision}")
        + " --out weights"
    )
