"""The neural field θ: a triplane grid encoding + a small MLP → volume density τ and albedo c (Eq. 5).

Both renderers read this one field: the NeRF renderer composites (τ, c) along rays (Eq. 6–8), the DMTet
renderer thresholds `tau` on a deformed tetrahedral grid (Eq. 9).

Why a triplane: on this CPU, encoding + backward of 20k points costs 3.5–11 ms for a 128² triplane against
18–84 ms for a dense multi-resolution 3D grid (the grad of a big 3D grid is the cost); see
benchmarks/bench_nerf.py.

Sign convention of τ, written once: `tau(x)` ∈ [0, 1) is the opacity that a NeRF sample of length
`tau_step` at x would have, 1 − exp(−σ(x)·tau_step) (Eq. 8). It grows toward the inside; the surface is the
level set τ = ε and "inside" is τ > ε (Eq. 9, ε = 0.1).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from . import precision
from .config import bounded
from .registry import register


def mlp(n_in: int, hidden: int, n_out: int, layers: int) -> nn.Sequential:
    """`layers` hidden ReLU layers of width `hidden`."""
    dims = [n_in] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    return nn.Sequential(*mods, nn.Linear(dims[-1], n_out))


DECAL_START = -6.0  # appearance: decal: the alpha logit where nothing is drawn (α ≈ 0.25 %): θ starts as without it
TRIPLANAR_SOFTNESS = 0.05  # appearance_blend: triplanar: planes' weights ∝ exp(|coordinate along normal| / this)
SIDE_BLEND = 0.02  # appearance_sides: the two sides of a plane blend over about ±3× this (a fraction of the bound)
BUCKETS_LOG2 = 3  # `bucket_rows` rounds up to 2³ = 8 sizes an octave (≤ 12.5 % padding)


def bucket_rows(n: int) -> int:
    """n rounded up to a multiple of 2^(⌊log2 n⌋ − BUCKETS_LOG2): one of 8 sizes an octave, at least 64."""
    if n <= 64:
        return 64
    step = 1 << (n.bit_length() - 1 - BUCKETS_LOG2)
    return -(-n // step) * step


@register("field", "triplane")
class TriplaneField(nn.Module):
    """θ = (three feature planes, MLP). Points are world coordinates inside the cube [−bound, bound]³."""

    blobs: torch.Tensor  # [K,4] centre and radius of each density blob (a buffer built from the config)
    reach: torch.Tensor  # [K] the `ball` bound in units of each blob's radius (a buffer built from the config)
    blob_axes: torch.Tensor  # [3] the blobs' semi-axes in units of their radius (a buffer built from the config)
    decal_offset: torch.Tensor  # [4] appearance: decal: the decal's logits where its features are 0

    @dataclass
    class Config:
        bound: float = bounded(1.0, 0.1)  # scene cube half-size
        ball: float = bounded(0.0, 0.0)  # if > 0: no density outside a ball of this radius (0 = the cube only);
        # a laid-out scene (`blobs`) bounds each object by a ball around its blob, scaled by r_k / blob_radius
        resolution: int = bounded(64, 8, 1024)  # triplane resolution per axis
        channels: int = bounded(12, 1, 64)  # features per plane (concatenated: 3·channels into the MLP)
        appearance_channels: int = bounded(0, 0, 64)  # more per plane that only the albedo reads (see `_raw`)
        appearance_sides: bool = False  # the appearance planes hold one set of features per side of the plane
        # (see `encode`): what the front shows is not also drawn on the back
        appearance: Literal["logits", "decal"] = "logits"  # how the appearance planes reach the albedo: added
        # to its logits, or as a decal over it (see `forward`)
        appearance_gain: float = bounded(1.0, 0.0)  # the appearance features' scale into their map: under Adam a
        # gain of k moves what they draw k× as fast as the geometry planes move the shape (they share one lr)
        appearance_blend: Literal["sum", "triplanar"] = "sum"  # triplanar: each plane's appearance weighted by
        # how far the point lies along its normal (a cube map), so a plane draws on the faces across it only
        appearance_learns: Literal["always", "colours_alone"] = "always"  # colours_alone: only a loss inside
        # `colours_alone` (the view anchors) moves the appearance planes; SDS and D shape the body alone
        init_std: float = bounded(0.1, 0.0)
        hidden: int = bounded(64, 8, 512)
        layers: int = bounded(2, 1, 8)
        blob_density: float = bounded(10.0, 0.0)  # Magic3D/DreamFusion density blob λ(1 − |x|/r) at init
        blob_radius: float = bounded(0.5, 0.01)  # the start blob's r, and a single object's size in a laid-out
        # scene: object k is bounded by ball · r_k / blob_radius and zoomed by blob_radius / r_k in local views
        start_radius: float = bounded(0.0, 0.0)  # > 0: the single start blob's r alone (bound and layout keep
        # blob_radius's), so the start can change without touching two-object scenes
        blobs: list[list[float]] | None = None  # [[x, y, z, r], …] in place of the one blob (real3d/scene_layout.py)
        blob_axes: list[float] = bounded([1.0, 1.0, 1.0], 0.05, 20.0)  # the blobs' semi-axes (x, y, z) in units of
        # their radius: an ellipsoid start in place of a ball (system.start_shape); the round bound stays a ball
        tau_step: float = bounded(0.05, 1e-4)  # reference sample length of τ (see module docstring)
        normal_eps: float = bounded(0.01, 1e-5)  # finite-difference step of normals
        albedo_range: list[float] = bounded([0.0, 1.0], 0.0, 1.0)  # [lo, hi] of c = lo + (hi − lo)·sigmoid(·)

        def check(self, where: str) -> None:
            from .errors import ConfigError

            if self.blobs is not None and (not self.blobs or any(len(b) != 4 or b[3] <= 0 for b in self.blobs)):
                raise ConfigError(f"{where}.blobs: expected a list of [x, y, z, radius > 0], got {self.blobs}")
            if len(self.blob_axes) != 3:
                raise ConfigError(f"{where}.blob_axes: expected [x, y, z], got {self.blob_axes}")
            if len(self.albedo_range) != 2 or self.albedo_range[0] >= self.albedo_range[1]:
                raise ConfigError(f"{where}.albedo_range: expected [lo, hi] with lo < hi, got {self.albedo_range}")
            plain = TriplaneField.Config()
            keys = ("appearance", "appearance_sides", "appearance_gain", "appearance_blend", "appearance_learns")
            if not self.appearance_channels and (set_ := [k for k in keys if getattr(self, k) != getattr(plain, k)]):
                raise ConfigError(
                    f"{where}.{set_[0]} acts on {where}.appearance_channels, which is 0 here; "
                    f"set {where}.appearance_channels (e.g. 4) or leave {set_[0]} at its default"
                )

    def __init__(self, cfg: TriplaneField.Config) -> None:
        super().__init__()
        self.cfg = cfg
        r, c, ca = cfg.resolution, cfg.channels, cfg.appearance_channels
        # appearance channels start blank, and take no random draw: θ's geometry (and what the seed draws after
        # it, D included) starts as it does without them
        planes = torch.cat([torch.randn(3, c, r, r) * cfg.init_std, torch.zeros(3, ca, r, r)], dim=1)
        self.planes = nn.Parameter(planes)  # xy, xz, yz planes; channels [:c] geometry, [c:] appearance
        self.net = mlp(3 * c, cfg.hidden, 4, cfg.layers)
        self.texture: nn.Linear | None = None  # appearance features → albedo logits, or a decal's colour and alpha
        with torch.random.fork_rng(devices=[]):  # its random start leaves the global generator where it was
            if ca and cfg.appearance == "logits":
                self.texture = nn.Linear(3 * ca, 3, bias=False)
            elif ca:  # no bias, but a fixed offset: where no feature was drawn the decal stays clear, its colour grey
                self.texture = nn.Linear(3 * ca, 4, bias=False)
                self.register_buffer("decal_offset", torch.tensor([0.0, 0.0, 0.0, DECAL_START]), persistent=False)
        # appearance_sides: the appearance features of the far side of each plane (z < 0 for xy, y < 0 for xz,
        # x < 0 for yz); `planes[:, c:]` then hold the near side's
        self.far_side = nn.Parameter(torch.zeros(3, ca, r, r)) if ca and cfg.appearance_sides else None
        start = cfg.start_radius or cfg.blob_radius
        blobs = cfg.blobs if cfg.blobs is not None else [[0.0, 0.0, 0.0, start]]
        self.register_buffer("blobs", torch.tensor(blobs), persistent=False)  # [K,4] centre, radius (from config)
        # reach: `ball` itself for the one blob, ball · r_k / blob_radius for the objects of a laid-out scene
        reach = [cfg.ball / (start if cfg.blobs is None else cfg.blob_radius)] * len(blobs)
        self.register_buffer("reach", torch.tensor(reach), persistent=False)
        self.register_buffer("blob_axes", torch.tensor(cfg.blob_axes), persistent=False)  # [3]
        self.shaped = cfg.blob_axes != [1.0, 1.0, 1.0]  # the start blob's bias takes `blob_axes`
        self.alone: int | None = None  # see `only`
        self.colour_only = False  # see `colours_alone`
        self.facing: tuple[int, int] | None = None  # see `colours_alone`: the (axis, sign) that learns there
        self.decal_shown = True  # see `without_decal`; a run hides a decal that no anchor draws (`Real3DSystem`)

    @property
    def bound(self) -> float:
        return self.cfg.bound

    def encode(self, x: torch.Tensor, appearance: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Triplane features of points x [N,3] (bilinear, zero outside the bound): geometry [N,3C] and
        appearance [N,3Ca] (Ca = appearance_channels, may be 0; [N,0] where `appearance` is False). A plane
        gives a point and its mirror image through the plane the same features, so a feature drawn on the
        front lands on the back as well; with appearance_sides the appearance comes from one set of planes
        per side."""
        u = (x / self.cfg.bound).float()
        coords = torch.stack([u[:, [0, 1]], u[:, [0, 2]], u[:, [1, 2]]])[:, None]  # [3,1,N,2]
        n, c, ca = x.shape[0], self.cfg.channels, self.cfg.appearance_channels

        def sample(planes: torch.Tensor) -> torch.Tensor:  # [3,K,r,r] → [N,3,K]
            out = F.grid_sample(planes, coords, mode="bilinear", padding_mode="zeros", align_corners=False)
            return out[:, :, 0].permute(2, 0, 1)

        # the geometry sampled by itself: the MLP gets the same features in the same memory layout with
        # appearance channels as without (bf16 matmuls round by layout, and a run's trajectory follows)
        feats = sample(self.planes[:, :c])  # [N,3,C]
        if not (ca and appearance):
            return feats.reshape(n, 3 * c), feats.new_zeros(n, 0)
        looks = sample(self.planes[:, c:])  # [N,3,Ca]
        if self.far_side is not None:  # the two sides blended over SIDE_BLEND of the coordinate along each normal
            near = torch.sigmoid(u[:, [2, 1, 0]] / SIDE_BLEND)[..., None]  # [N,3,1]: z for xy, y for xz, x for yz
            looks = near * looks + (1 - near) * sample(self.far_side)
        if self.cfg.appearance_blend == "triplanar":  # the point's position stands in for its normal
            looks = looks * torch.softmax(u[:, [2, 1, 0]].abs() / TRIPLANAR_SOFTNESS, dim=1)[..., None]
        if self.colour_only and self.facing is not None:  # `colours_alone(facing)`: one plane, one half learns
            axis, sign = self.facing
            plane = torch.arange(3, device=x.device) == 2 - axis  # [3]: plane k's normal is axis 2 − k
            half = u[:, axis] * sign > 0  # [N]
            looks = torch.where(plane[:, None] & half[:, None, None], looks, looks.detach())
        return feats.reshape(n, 3 * c), looks.reshape(n, 3 * ca)

    def blob(self, x: torch.Tensor) -> torch.Tensor:
        """Density bias [N] that starts the scene as soft balls: λ max_k (1 − |x − c_k| / r_k); one ball of
        radius `blob_radius` at the origin unless `blobs` places several (one per object, real3d/scene_layout.py);
        ellipsoids of semi-axes r_k · `blob_axes` where those are given."""
        return self._blob_bias(self._blob_distance(x, self.shaped))

    def _blob_distance(self, x: torch.Tensor, shaped: bool = False) -> torch.Tensor:
        """|x − c_k| / r_k [N,K] of points x [N,3] to each blob; shaped: |(x − c_k) / blob_axes| / r_k, the
        distance in the units of the ellipsoid that `blob_axes` makes of each blob."""
        offset = x[:, None, :] - self.blobs[:, :3]  # [N,K,3]
        return (offset / self.blob_axes if shaped else offset).norm(dim=-1) / self.blobs[:, 3]

    def _blob_bias(self, dist: torch.Tensor) -> torch.Tensor:
        """λ max_k (1 − dist_k) [N] from the scaled distances dist [N,K] (`blob`)."""
        return self.cfg.blob_density * (1 - dist).amax(dim=-1)

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's raw output [N,4] at x [N,3], its rows padded with zeros to `bucket_rows(N)` and cut back:
        the renderers ask for a different N every call, and oneDNN builds a new kernel for every new matrix
        shape (the MLP's forward + backward of 4k–50k points, bf16 on AMX: 26.6 ms with exact rows against
        12.7 bucketed, benchmarks/bench_field_rows.py); a few sizes an octave are reused instead. Padded rows
        are computed and dropped, so neither the output nor any gradient sees them. With appearance channels
        a linear map of their features is added to the albedo logits: colour detail that the density (and the
        geometry planes' TV, regularizers.lambda_plane_tv) never sees."""
        hidden = self.cfg.appearance == "decal" and not self.decal_shown  # `without_decal`: its features unused
        feats, appearance = self.encode(x, appearance=not hidden)  # [N,3C], [N,3Ca]
        n = feats.shape[0]
        with precision.autocast(x.device):  # bf16 where this CPU runs it natively (real3d/precision.py)
            raw = self.net(F.pad(feats, (0, 0, 0, bucket_rows(n) - n)))[:n].float()  # [N,4]
        if self.texture is None or hidden:
            return raw
        if self.colour_only:  # `colours_alone`: only the appearance planes and their map learn
            raw = raw.detach()
        texture = self.texture(self.cfg.appearance_gain * appearance)  # [N,3] logits or [N,4] decal
        if not self.colour_only and self.cfg.appearance_learns == "colours_alone":
            texture = texture.detach()
        if self.cfg.appearance == "decal":  # [N,8]: σ, the body's albedo logits, the decal's colour and alpha logits
            return torch.cat([raw, texture + self.decal_offset], dim=-1)
        return torch.cat([raw[:, :1], raw[:, 1:] + texture], dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 5: density σ [N] ≥ 0 and albedo c [N,3] ∈ (0,1) at points x [N,3] (inside `only(k)`: σ of
        object k alone)."""
        raw, dist = self._raw(x), self._blob_distance(x)  # dist [N,K]: the bounds and layout are balls
        sigma = F.softplus(raw[:, 0] + (self.blob(x) if self.shaped else self._blob_bias(dist)))
        if self.colour_only:  # no gradient through the density (`colours_alone`)
            sigma = sigma.detach()
        if self.alone is not None:  # zero where another blob's centre is nearer (in units of its radius)
            sigma = sigma * (dist.argmin(dim=-1) == self.alone)
        if self.cfg.ball > 0:  # a round bound: density grown to the limit makes a ball, not the cube's box
            sigma = sigma * (dist <= self.reach).any(dim=-1)
        lo, hi = self.cfg.albedo_range
        albedo = torch.sigmoid(raw[:, 1:4])
        if raw.shape[1] > 4 and self.decal_shown:  # `appearance: decal`: c = (1 − α)·c_body + α·c_decal
            alpha = torch.sigmoid(raw[:, 7:])
            albedo = (1 - alpha) * albedo + alpha * torch.sigmoid(raw[:, 4:7])
        return sigma, lo + (hi - lo) * albedo

    def bound_distance(self, x: torch.Tensor) -> torch.Tensor | None:
        """Signed distance [N] of points x [N,3] to the round bound (`ball`; > 0 inside): the union of object
        k's balls of radius reach_k · r_k, so max_k of each ball's. None without a ball (the cube only)."""
        if self.cfg.ball <= 0:
            return None
        return ((self.reach - self._blob_distance(x)) * self.blobs[:, 3]).amax(dim=-1)  # world units

    @contextmanager
    def only(self, k: int) -> Iterator[None]:
        """Inside the block θ is object k of a laid-out scene alone: zero density wherever another blob's
        centre is nearer (so a renderer draws that object by itself, for its own prompt)."""
        self.alone = k
        try:
            yield
        finally:
            self.alone = None

    @contextmanager
    def colours_alone(self, facing: tuple[int, int] | None = None) -> Iterator[None]:
        """Inside the block σ carries no gradient: a loss on what a renderer draws moves the albedo, not the
        shape (the view anchors: a colour pulled through a faint object's pixels would otherwise make it solid,
        and so larger). With appearance channels only they and their map to the albedo learn: the MLP and the
        geometry planes that SDS shapes are left to it (a strong anchor on them shrank thin shapes). With
        `facing` (axis, sign), e.g. (0, 1) for a camera on +x, only the appearance plane across that axis
        learns, and only at points on the camera's half: a view along x sees that plane as an image, while
        the two planes along the view smear what it pulls into streaks on the sides, and a ray through a faint
        object would paint the front's feature on the back."""
        self.colour_only, self.facing = True, facing
        try:
            yield
        finally:
            self.colour_only, self.facing = False, None

    @contextmanager
    def without_decal(self) -> Iterator[None]:
        """Inside the block θ is drawn without its decal (`appearance: decal`), the body alone: what SDS and D
        see with `system.decal_in_training` off, so that they neither fight the feature the anchors draw nor
        shape the body around it. Its appearance planes are not even sampled there: those renders cost what
        they cost without appearance channels."""
        shown, self.decal_shown = self.decal_shown, False
        try:
            yield
        finally:
            self.decal_shown = shown

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """σ [N] at x [N,3]."""
        return self(x)[0]

    def albedo(self, x: torch.Tensor) -> torch.Tensor:
        """c [N,3] at x [N,3]."""
        return self(x)[1]

    def albedo_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The albedo's logits [N,3] at x [N,3], before the sigmoid of Eq. 5 (the body's, under a decal)."""
        return self._raw(x)[:, 1:4]

    def tau(self, x: torch.Tensor) -> torch.Tensor:
        """τ [N] = 1 − exp(−σ·tau_step) ∈ [0,1): inside where τ > ε (see module docstring)."""
        return -torch.expm1(-self.density(x) * self.cfg.tau_step)

    def normals(self, x: torch.Tensor) -> torch.Tensor:
        """Outward unit normals [N,3] = −∇σ/|∇σ|, ∇σ by the 4-point tetrahedral difference (2nd-order)."""
        h = self.cfg.normal_eps
        corners = torch.tensor(
            [[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]], dtype=x.dtype, device=x.device
        )  # [4,3]
        sigma = self.density((x[:, None, :] + h * corners).reshape(-1, 3)).reshape(-1, 4)  # [N,4]
        grad = sigma @ corners  # [N,3], ∝ ∇σ
        return -F.normalize(grad, dim=-1, eps=1e-12)

    def tau_threshold_density(self, eps: float) -> float:
        """The density σ at which τ = eps."""
        return -math.log1p(-eps) / self.cfg.tau_step
