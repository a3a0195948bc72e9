"""Geometry regularizers, weighted by `lambda_*` config values and added to Eq. 11 (the paper keeps DreamFusion's):
DreamFusion's on the NeRF render, Magic3D's normal consistency on the DMTet mesh, K-Planes' total variation on
the field's feature planes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import Scheduled, bounded, check_scheduled, scheduled
from .field import TriplaneField
from .render.base import RenderOutput


@dataclass
class RegularizerConfig:
    lambda_orient: float = bounded(0.0, 0.0)  # normals that face away from the camera (DreamFusion)
    lambda_sparsity: float = bounded(0.0, 0.0)  # mean opacity: discourages fog filling the views
    lambda_opacity_entropy: float = bounded(0.0, 0.0)  # binary entropy of opacity: masks become 0 or 1
    lambda_normal_consistency: float = bounded(0.0, 0.0)  # bends between adjacent faces of the DMTet mesh
    lambda_distortion: float = bounded(0.0, 0.0)  # weights spread along a ray: a fog, not a surface (Mip-NeRF 360)
    lambda_plane_tv: Scheduled = 0.0  # steps between neighbouring texels of θ's geometry planes (or a schedule)
    lambda_appearance_tv: float = bounded(0.0, 0.0)  # the same on its appearance planes (field.appearance_channels)
    lambda_albedo_logit: float = bounded(0.0, 0.0)  # squared albedo logits: colours kept off the sigmoid's flat ends

    def check(self, where: str) -> None:
        check_scheduled(self.lambda_plane_tv, f"{where}.lambda_plane_tv", lo=0.0)


def orientation_loss(out: RenderOutput) -> torch.Tensor:
    """DreamFusion: Σ_i stopgrad(w_i)·max(0, n_i·d)², averaged over rays; 0 when no normals were shaded."""
    if out.normals_dot_dirs is None or out.weights is None:
        return out.rgb.new_zeros(())
    per_sample = out.weights.detach() * out.normals_dot_dirs.clamp(min=0).square()
    return per_sample.sum() / out.opacity.numel()


def sparsity_loss(out: RenderOutput) -> torch.Tensor:
    """Mean accumulated opacity."""
    return out.opacity.mean()


def opacity_entropy_loss(out: RenderOutput) -> torch.Tensor:
    """Mean binary entropy of the accumulated opacity."""
    o = out.opacity.clamp(1e-5, 1 - 1e-5)
    return -(o * torch.log(o) + (1 - o) * torch.log(1 - o)).mean()


def distortion_loss(out: RenderOutput) -> torch.Tensor | None:
    """Mip-NeRF 360's distortion (Eq. 15), mean over rays: Σ_ij w_i w_j |m_i − m_j| + ⅓ Σ_i w_i² ℓ_i, with m_i
    and ℓ_i the midpoint and length of sample i's interval as a share of its ray's span. It is least when a
    ray's weight sits in one short interval, a surface, and large for a fog spread along the ray; so it pulls
    the τ = ε levels of θ together, where the NeRF's visible surface and DMTet's ε = 0.1 surface (Eq. 9) part.
    The double sum in O(S) by prefix sums. None for a render without per-ray weights (DMTet's)."""
    if out.ray_weights is None or out.intervals is None:
        return None
    w = out.ray_weights  # [R,S]
    mid, length = out.intervals.mean(-1), out.intervals[..., 1] - out.intervals[..., 0]  # [R,S] each
    before_w, before_wm = w.cumsum(-1) - w, (w * mid).cumsum(-1) - w * mid  # Σ_{j<i} w_j, Σ_{j<i} w_j m_j
    between = 2 * (w * (mid * before_w - before_wm)).sum(-1)  # Σ_ij w_i w_j |m_i − m_j|, midpoints sorted
    within = (w.square() * length).sum(-1) / 3
    return (between + within).mean()


def normal_consistency_loss(out: RenderOutput) -> torch.Tensor | None:
    """Mean 1 − cos of the angle between the normals of the two faces at each edge of the explicit renderer's
    mesh (Magic3D's mesh stage): bumps of one tet cell, finer than the prior's pixels, cost. None for a render
    without a mesh (the NeRF's), 0 for an empty one."""
    if out.mesh_verts is None or out.mesh_faces is None:
        return None
    if out.mesh_faces.shape[0] == 0:
        return out.rgb.new_zeros(())
    v = out.mesh_verts[out.mesh_faces]  # [F,3,3]
    fn = F.normalize(torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), dim=-1, eps=1e-12)  # [F,3]
    edges = out.mesh_faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).sort(-1).values  # [3F,2], face f's at 3f..3f+2
    key, order = (edges[:, 0] * out.mesh_verts.shape[0] + edges[:, 1]).sort()
    shared = key[1:] == key[:-1]  # an edge of a watertight mesh is in two faces
    a, b = order[:-1][shared] // 3, order[1:][shared] // 3  # the face pair of each shared edge
    if a.numel() == 0:
        return out.rgb.new_zeros(())
    return (1 - (fn[a] * fn[b]).sum(-1)).mean()


def plane_tv_loss(planes: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring texels of feature planes [P,C,r,r], along both axes (K-Planes'
    total variation). Wiggles one texel wide are finer than either renderer resolves (64² planes against
    NeRF's 32 px and DMTet's 32³ grid), so SDS gets no say over them; this term makes them cost."""
    return planes.diff(dim=-1).square().mean() + planes.diff(dim=-2).square().mean()


def albedo_logit_loss(field: TriplaneField, step: int, n: int = 4096) -> torch.Tensor:
    """Mean squared albedo logit at n points [n,3] drawn uniformly in the bound (their own generator, seeded by
    `step`, so the run's random stream is untouched). SDS at high noise drives a colour's logits far past the
    sigmoid's bend in its first hundred steps (benchmarks/growth.py: |logit| ≈ 50, slope e⁻⁵⁰), where no later
    force, a lower timestep or the discriminator, can move it back; this term's pull grows with the logit."""
    gen = torch.Generator().manual_seed(step)
    x = (torch.rand(n, 3, generator=gen) * 2 - 1).to(field.planes.device) * field.bound
    return field.albedo_logits(x).square().mean()


def field_regularizer_losses(field: TriplaneField, cfg: RegularizerConfig, step: int) -> dict[str, torch.Tensor]:
    """The weighted terms on θ itself rather than on a render: TV of the geometry planes (`lambda_plane_tv` at
    `step` → loss_plane_tv) and of the appearance planes (`lambda_appearance_tv` → loss_appearance_tv), and the
    albedo's logits (`lambda_albedo_logit` → loss_albedo_logit)."""
    c = field.cfg.channels
    appearance = field.planes[:, c:] if field.far_side is None else torch.cat([field.planes[:, c:], field.far_side], 1)
    terms = {
        "plane_tv": (scheduled(cfg.lambda_plane_tv, step), field.planes[:, :c]),
        "appearance_tv": (cfg.lambda_appearance_tv, appearance),
    }
    losses = {f"loss_{n}": lam * plane_tv_loss(p) for n, (lam, p) in terms.items() if lam > 0 and p.shape[1] > 0}
    if cfg.lambda_albedo_logit > 0:
        losses["loss_albedo_logit"] = cfg.lambda_albedo_logit * albedo_logit_loss(field, step)
    return losses


def regularizer_losses(out: RenderOutput, cfg: RegularizerConfig) -> dict[str, torch.Tensor]:
    """The weighted terms that are switched on and apply to this render, by name (`lambda_X` → loss_X)."""
    terms = {
        "orient": (cfg.lambda_orient, orientation_loss),
        "sparsity": (cfg.lambda_sparsity, sparsity_loss),
        "opacity_entropy": (cfg.lambda_opacity_entropy, opacity_entropy_loss),
        "distortion": (cfg.lambda_distortion, distortion_loss),
        "normal_consistency": (cfg.lambda_normal_consistency, normal_consistency_loss),
    }
    values = {name: fn(out) for name, (lam, fn) in terms.items() if lam > 0}
    return {f"loss_{name}": terms[name][0] * v for name, v in values.items() if v is not None}
