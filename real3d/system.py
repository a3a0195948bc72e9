"""The Real3D system: one field θ seen by two renderers, guided by SDS and a discriminator (Eq. 11).

    L = λ_SDS (L_SDS(g^ξ_θ(v1)) + L_SDS(g^ζ_θ(v2))) + λ_adv (L_adv(g^ξ_θ(v1), x̃) + L_adv(g^ζ_θ(v2), x̃))

`training_step` is that equation, one step; the ablations of the paper's Fig. 6 and a Magic3D-style
two-stage run are presets that schedule how often each renderer draws (p_nerf, p_dmtet) and switch λ_adv.
This is where renderers, priors and the discriminator meet; none of them imports another.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import nn

from . import precision, registry, scene_layout
from .cameras import VIEW_WORDS, Cameras, orbit, sample_views, view_direction
from .config import Scheduled, bounded, check_scheduled, component, schedule_values, scheduled, to_dict
from .errors import ConfigError
from .export import LEVELS, nerf_level
from .guidance.anchor import (
    ANCHOR_VIEWS,
    DEFAULT_ANCHOR_VIEWS,
    AnchorPick,
    Picker,
    anchor_azimuths,
    anchor_facing,
    anchor_loss,
    anchor_members,
    medoid,
    prior_picker,
    view_anchors,
    view_margins,
)
from .guidance.discriminator import Discriminator  # (and registers its architectures)
from .guidance.prompts import PositionalPrompt
from .guidance.reference import (
    ColourPull,
    ReferenceConfig,
    colour_matching_loss,
    object_colour,
    object_colours_by_view,
    reference_aspect,
    reference_images,
    reference_views,
)
from .guidance.sds import SDSConfig, sds
from .model import SceneConfig, SceneModel
from .optim import OptimizerConfig, make_optimizer
from .priors import load_prior
from .priors.base import Prior
from .regularizers import RegularizerConfig, field_regularizer_losses, regularizer_losses
from .render.base import RenderOutput
from .render.nerf import NeRFRenderer
from .render.shading import ShadingMode, sample_light, sample_mode


@dataclass
class SystemConfig:
    """Eq. 11's weights and the renderer schedule (NeRF-heavy early, DMTet-heavy late)."""

    lambda_sds: float = bounded(1.0, 0.0)
    lambda_adv: Scheduled = 1e-2  # 0 throughout switches the discriminator off (no x̃ is sampled)
    lambda_colour: Scheduled = 0.0  # the renders' mean object colour pulled to x̃'s (colour_matching_loss)
    colour_by_view: bool = True  # … to x̃'s of the same view word (front / side / back / overhead); False: all x̃
    colour_pull: ColourPull = "match"  # "match": the colour itself; "solid": only a render nearer white than x̃
    lambda_anchor: Scheduled = 0.0  # x̃'s front and back views as reference views, one-object prompts (anchor.py)
    anchor_source: Literal["reference", "render"] = "reference"  # the anchors: x̃'s views, or θ's own views drawn
    # when λ_anchor first turns on and redrawn by the prior with the prompt (`draw_anchors`, SDEdit)
    anchor_strength: float = bounded(0.5, 0.0, 1.0)  # render anchors: the noise (t / T) the prior redraws from
    anchor_candidates: int = bounded(8, 1)  # render anchors: redraws per anchor, the prior's pick kept
    anchor_margin: float = 0.001  # render anchors: none unless the front redraw the prior picks looks this much
    # more like "…, front view" than "…, back view" to it (`view_margins`): a prompt with no front feature has none
    anchor_views: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_ANCHOR_VIEWS))  # of ANCHOR_VIEWS
    anchor_pick: AnchorPick = "medoid"  # each anchor among x̃'s views near it: the medoid, or the one the prior
    # finds most like the prompt's view there against the opposite one (anchor.prior_picker)
    anchor_shading: Literal["albedo", "step"] = "albedo"  # the anchor renders' shading: albedo alone, or the step's
    anchor_marks: float = bounded(0.0, 0.0)  # > 0: an anchor draws only its pixels this far from its mean colour
    anchor_planes: Literal["all", "facing"] = "all"  # appearance planes an anchor trains: all, or the one across its
    # camera's axis (the yz plane for the front and back): the other two smear its pull into streaks
    decal_in_training: bool = True  # False: SDS and D see θ without its decal (field.appearance=decal), which
    # the anchors alone draw, so they neither fight the feature nor reshape the body around it
    p_nerf: Scheduled = 1.0  # probability that a step renders x'1 with the NeRF renderer at v1
    p_dmtet: Scheduled = dataclasses.field(default_factory=lambda: [0.0, 0.2, 1.0, 1000.0])  # … x'2, DMTet, v2
    p_local: Scheduled = 0.0  # a laid-out scene (field.blobs): probability that a step draws one object alone
    local_order: Literal["alternate", "random"] = "alternate"  # which object a local step draws: object step mod
    # K, so each gets its share of the local steps whatever the seed, or one at random (`local_object`)
    nerf_resolution: int = bounded(32, 8, 512)  # x'1 is low resolution
    dmtet_resolution: int = bounded(64, 8, 1024)  # x'2 is higher resolution
    fit_level_every: int = bounded(0, 0)  # > 0: every N steps DMTet's ε is set to the level the NeRF draws
    dmtet_t_max: float = bounded(1.0, 0.0, 1.0)  # DMTet's draws take SDS's t at or below this (a fraction of the
    # prior's timesteps): < 1 leaves the high noise, which sets the shape's size, to the NeRF (Magic3D's fine stage)
    start_shape: Literal["ball", "reference"] = "ball"  # a one-object prompt's start blob: a ball, or an ellipsoid
    # as many times as tall as wide as x̃ shows the object (`shaped_start`; field.blob_axes, when given, wins)
    dmtet_zoom: float = bounded(1.0, 0.1, 10.0)  # v2's field of view narrowed by this (tan(fovy/2) / zoom) for
    # DMTet alone: < 1 shows its solid surface smaller in frame than the NeRF's fog is shown

    @property
    def uses_discriminator(self) -> bool:
        """D takes part (and x̃ is sampled) unless λ_adv is 0 throughout."""
        return max(schedule_values(self.lambda_adv)) > 0

    @property
    def uses_colour_matching(self) -> bool:
        """The colour matching takes part unless λ_colour is 0 throughout."""
        return max(schedule_values(self.lambda_colour)) > 0

    @property
    def uses_anchor(self) -> bool:
        """The view anchors take part unless λ_anchor is 0 throughout."""
        return max(schedule_values(self.lambda_anchor)) > 0

    @property
    def uses_reference(self) -> bool:
        """x̃ is sampled for D, the colour matching, x̃'s view anchors or the start's shape."""
        anchors_from_reference = self.uses_anchor and self.anchor_source == "reference"
        return (
            self.uses_discriminator or self.uses_colour_matching or anchors_from_reference or self.start_shape != "ball"
        )

    def passes_gate(self, front_margin: float | None) -> bool:
        """Render anchors stay on unless their front pick's margin (None: no front anchor) is below anchor_margin."""
        return front_margin is None or front_margin >= self.anchor_margin

    def check(self, where: str) -> None:
        check_scheduled(self.lambda_adv, f"{where}.lambda_adv", lo=0.0)
        check_scheduled(self.lambda_colour, f"{where}.lambda_colour", lo=0.0)
        check_scheduled(self.lambda_anchor, f"{where}.lambda_anchor", lo=0.0)
        if not self.anchor_views or not set(self.anchor_views) <= set(ANCHOR_VIEWS):
            raise ConfigError(
                f"{where}.anchor_views: expected some of {', '.join(ANCHOR_VIEWS)}, got {self.anchor_views}"
            )
        for name in ("p_nerf", "p_dmtet", "p_local"):  # probabilities
            check_scheduled(getattr(self, name), f"{where}.{name}", lo=0.0, hi=1.0)


@dataclass
class Real3DConfig(SceneConfig):
    """A whole generation run: θ and its renderers (SceneConfig), the prior, D and the schedule."""

    name: str = "real3d"
    prompt: str = ""
    # the prompts of the side and back views, where they differ (positional prompt embedding; "": `prompt`)
    prompt_side: str = ""
    prompt_back: str = ""
    seed: int = 0
    steps: int = bounded(1000, 1)
    layout: Literal["prompt", "none"] = "prompt"  # θ's start: a density blob per object of "A on B" (scene_layout.py)
    prior_type: str = "embedded"
    prior: Any = component("prior")
    discriminator_type: str = "conv"
    discriminator: Any = component("discriminator")
    system: SystemConfig = dataclasses.field(default_factory=SystemConfig)
    sds: SDSConfig = dataclasses.field(default_factory=SDSConfig)
    reference: ReferenceConfig = dataclasses.field(default_factory=ReferenceConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    regularizers: RegularizerConfig = dataclasses.field(default_factory=RegularizerConfig)

    def check(self, where: str) -> None:
        """Keys of two sections that only act together."""
        if self.regularizers.lambda_appearance_tv > 0 and not getattr(self.field, "appearance_channels", 0):
            raise ConfigError(
                f"{where}: regularizers.lambda_appearance_tv acts on field.appearance_channels, which is 0 here; "
                "set field.appearance_channels (e.g. 4) or leave lambda_appearance_tv at 0"
            )
        if self.system.anchor_planes == "facing" and not getattr(self.field, "appearance_channels", 0):
            raise ConfigError(
                f"{where}: system.anchor_planes=facing picks among field.appearance_channels, which is 0 here; "
                "set field.appearance_channels (e.g. 4) or leave anchor_planes at all"
            )
        if not self.system.decal_in_training and getattr(self.field, "appearance", "logits") != "decal":
            raise ConfigError(
                f"{where}: system.decal_in_training=false hides field.appearance=decal, which is not set here; "
                "set field.appearance=decal (with field.appearance_channels) or leave decal_in_training at true"
            )
        if self.system.uses_anchor and self.system.anchor_source == "reference":
            views = reference_views(self.reference)
            azimuths = anchor_azimuths(self.system.anchor_views)
            if missing := [f"{a:.0f}" for a in azimuths if not anchor_members(views, a).any()]:
                raise ConfigError(
                    f"{where}: system.lambda_anchor needs a view of x̃ near azimuth {' and '.join(missing)}, "
                    f"and its reference.count={self.reference.count} views have none; raise reference.count (8 or more)"
                )
        if self.system.fit_level_every > 0 and self.renderer_type != "nerf":
            raise ConfigError(
                f"{where}: system.fit_level_every fits DMTet's ε to what the NeRF draws, and renderer_type is "
                f"{self.renderer_type!r} here; add system.fit_level_every=0 (the real3d presets fit every 50 steps)"
            )


_PRIORS: dict[str, Prior] = {}


@contextmanager
def deterministic() -> Iterator[None]:
    """Same seed → same result: deterministic CPU kernels (scatter / index_add in order), restored afterwards.
    torch's NaN fill of every new tensor under that mode is switched off: it only makes reads of uninitialised
    memory visible, none happens here (the same-seed tests check it), and it cost about 5 % of a step."""
    settings: Any = torch.utils.deterministic  # a module object with a property (its stubs do not show it)
    before = torch.are_deterministic_algorithms_enabled(), settings.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    settings.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        settings.fill_uninitialized_memory = before[1]


def build_prior(cfg: Real3DConfig) -> Prior:
    """The frozen p_φ named by the config (loaded from its folder, never downloaded; once per process, so
    several seeds or runs share it)."""
    key = json.dumps([cfg.prior_type, to_dict(cfg.prior)], sort_keys=True)
    if key not in _PRIORS:
        _PRIORS[key] = load_prior(cfg.prior_type, cfg.prior)
    return _PRIORS[key]


def anchor_picker(cfg: Real3DConfig, prior: Prior, prompt: PositionalPrompt | None = None) -> Picker:
    """How the run chooses its view anchors among x̃'s views (`system.anchor_pick`); `prompt`: the run's
    positional prompt, built from cfg where not given."""
    if cfg.system.anchor_pick == "medoid":
        return medoid
    prompt = prompt or PositionalPrompt(prior, cfg.prompt, cfg.prompt_side, cfg.prompt_back)
    return prior_picker(prior, prompt, seed=cfg.reference.seed)


def shaped_start(cfg: Real3DConfig, x_ref: torch.Tensor | None) -> Real3DConfig:
    """cfg with the start blob's `field.blob_axes` taken from x̃ uint8 [N,H,W,3] (`scene_layout.start_axes` of
    its `reference_aspect`): the prior's own samples say how tall the object is
    against its width, before θ has any shape. Only with `system.start_shape: reference`, on a prompt of one
    object (a laid-out scene keeps its balls) and a field given no axes; otherwise cfg as it is."""
    axes = getattr(cfg.field, "blob_axes", None)
    one_object = getattr(cfg.field, "blobs", None) is None and not scene_layout.objects(cfg.prompt)
    if cfg.system.start_shape != "reference" or x_ref is None or axes != [1.0, 1.0, 1.0] or not one_object:
        return cfg
    axes = scene_layout.start_axes(reference_aspect(x_ref, cfg.reference), cfg.reference.elevation)
    return dataclasses.replace(cfg, field=dataclasses.replace(cfg.field, blob_axes=axes))


class Real3DSystem(nn.Module):
    """θ (model), D and their optimisers; `training_step` is Eq. 11."""

    reference: torch.Tensor  # x̃: uint8 [N,H,W,3], a buffer (with a discriminator or colour matching)
    reference_colours: torch.Tensor  # x̃'s mean inner object colour per view word [4,3] (with colour matching)
    anchors: torch.Tensor  # each anchor of system.anchor_views [A,H,W,3] in [0,1] (with the anchors; [0,…] until
    # render anchors are drawn)
    anchor_cams: torch.Tensor  # [A,2] each anchor's camera (azimuth, elevation in degrees): in x̃, or nominal

    def __init__(self, cfg: Real3DConfig, prior: Prior, progress: bool = False) -> None:
        super().__init__()
        x_ref = None
        if cfg.system.uses_reference:
            with precision.use(cfg.precision):
                x_ref = reference_images(prior, cfg.prompt, cfg.reference, progress)  # uint8 [N,H,W,3]
        cfg = shaped_start(cfg, x_ref)
        self.cfg, self.prior = cfg, prior
        self.prompt = PositionalPrompt(prior, cfg.prompt, cfg.prompt_side, cfg.prompt_back)
        # local guidance: each object of a laid-out prompt "A <relation> B" with its own prompt (`local_views`)
        objects = scene_layout.objects(cfg.prompt) or []
        blobs = getattr(cfg.field, "blobs", None) or []
        self.object_prompts = [PositionalPrompt(prior, o) for o in objects] if len(blobs) == len(objects) else []
        torch.manual_seed(cfg.seed)  # θ and D start from the seed alone (not from what loading consumed)
        self.model = SceneModel(cfg)
        self.optimizer, self.scheduler = make_optimizer(self.model.parameters(), cfg.optimizer, cfg.steps)
        self.discriminator: Discriminator | None = None
        if cfg.system.uses_discriminator:
            self.discriminator = registry.build("discriminator", cfg.discriminator_type, cfg.discriminator)
        if x_ref is not None:
            self.register_buffer("reference", x_ref, persistent=False)  # x̃: uint8 [N,H,W,3]
        if cfg.system.uses_colour_matching:
            images = self.reference.float() / 255
            colours = (  # [4,3], VIEW_WORDS' order
                object_colours_by_view(images, cfg.reference)
                if cfg.system.colour_by_view
                else object_colour(images).expand(len(VIEW_WORDS), 3)
            )
            self.register_buffer("reference_colours", colours, persistent=False)
        # the view anchors, on a prompt of one object: x̃ of "A <relation> B" often swaps the objects' colours
        self.anchored = cfg.system.uses_anchor and not objects
        self.front_margin: float | None = None  # render anchors: the front pick's margin, once drawn (logged)
        if cfg.system.anchor_source == "render":  # drawn once λ_anchor turns on (`draw_anchors`); never if unanchored
            azimuths = torch.tensor(anchor_azimuths(cfg.system.anchor_views))
            elevation = sum(cfg.camera.elevation_range) / 2
            size = cfg.system.nerf_resolution
            self.register_buffer("anchors", torch.zeros(0, size, size, 3), persistent=False)
            cams = torch.stack([azimuths, torch.full_like(azimuths, elevation)], -1)  # [A,2]
            self.register_buffer("anchor_cams", cams, persistent=False)
        elif self.anchored:
            views, words = reference_views(cfg.reference), cfg.system.anchor_views
            with precision.use(cfg.precision):
                pick = anchor_picker(cfg, prior, self.prompt)
                anchors, cams = view_anchors(self.reference.float() / 255, views, words, pick)
            self.register_buffer("anchors", anchors, persistent=False)
            self.register_buffer("anchor_cams", cams.float(), persistent=False)
        self.show_decal()

    def views(self, generator: torch.Generator, step: int) -> tuple[Cameras, Cameras]:
        """v1 random, v2 = v1 + offset in azimuth (the paper's Limitations: a wider field of view)."""
        v1 = sample_views(self.cfg.camera, 1, generator, step)
        v2 = v1.offset(self.cfg.camera.view_offset)
        zoom = self.cfg.system.dmtet_zoom
        return v1, v2 if zoom == 1.0 else v2.focus(v2.position.new_zeros(3), zoom)

    def local_views(self, k: int, generator: torch.Generator, step: int) -> tuple[Cameras, Cameras]:
        """The views of `views`, centred on object k's blob and zoomed so that it fills them as a single
        object's blob (field.blob_radius) would: what its own prompt's samples show."""
        blob = self.model.field.blobs[k]
        zoom = self.cfg.field.blob_radius / float(blob[3])
        v1, v2 = self.views(generator, step)
        return v1.focus(blob[:3], zoom), v2.focus(blob[:3], zoom)

    def render(
        self, renderer: nn.Module, cams: Cameras, size: int, generator: torch.Generator, mode: ShadingMode | None = None
    ) -> RenderOutput:
        """θ drawn by `renderer` at cams in `mode` (None: drawn from the shading config) under a random light."""
        mode = mode or sample_mode(self.cfg.shading, generator)
        light = sample_light(cams.position, self.cfg.shading, generator)
        return renderer(cams, size, size, mode, light, generator)

    def score_distillation(
        self,
        renders: list[tuple[RenderOutput, Cameras]],
        step: int,
        generator: torch.Generator,
        prompt: PositionalPrompt | None = None,
        t_caps: list[float] | None = None,
    ) -> torch.Tensor:
        """Σ_k L_SDS(x'_k): Eq. 2 for each render with the positional prompt of its view (the run's, or
        `prompt`), all renders in one batched call of the prior; `t_caps` [K]: render k's highest t."""
        x = torch.cat([self.prior.encode_images(out.rgb) for out, _ in renders])  # [K,C,h,w] model space
        azimuth = torch.cat([cams.azimuth for _, cams in renders])
        elevation = torch.cat([cams.elevation for _, cams in renders])
        emb = (prompt or self.prompt)(azimuth, elevation, self.cfg.sds.perp_neg)
        caps = None if t_caps is None else [c for c, (out, _) in zip(t_caps, renders) for _ in range(len(out.rgb))]
        return sds(self.prior, x, emb, self.cfg.sds, step, generator, caps).loss * len(renders)  # sds() means over K

    def adversarial(self, renders: list[tuple[RenderOutput, Cameras]], generator: torch.Generator) -> torch.Tensor:
        """Σ_k L_adv(x'_k, x̃): the non-saturating side of Eq. 4 for θ (0 without a discriminator)."""
        if self.discriminator is None:
            return renders[0][0].rgb.new_zeros(())
        return cast(torch.Tensor, sum(self.discriminator.generator_loss(out.rgb, generator) for out, _ in renders))

    def colour_matching(self, renders: list[tuple[RenderOutput, Cameras]]) -> torch.Tensor:
        """Σ over the rendered views of colour_matching_loss against x̃'s colour from the same side (its view
        word): a feature drawn on the front is matched by the front views alone."""
        total, pull = renders[0][0].rgb.new_zeros(()), self.cfg.system.colour_pull
        for out, cams in renders:
            for b, (azimuth, elevation) in enumerate(zip(cams.azimuth.tolist(), cams.elevation.tolist())):
                word = VIEW_WORDS.index(view_direction(azimuth, elevation))
                total = total + colour_matching_loss(out.rgb[b : b + 1], self.reference_colours[word], pull)
        return total

    def body_alone(self) -> AbstractContextManager[None]:
        """The context the step's renders for SDS and D are drawn in: θ without its decal where
        `decal_in_training` is off, else θ as it is."""
        return nullcontext() if self.cfg.system.decal_in_training else self.model.field.without_decal()

    def anchor_camera(self, azimuth: float, elevation: float) -> Cameras:
        """One camera at (azimuth, elevation) in degrees, at the middle of the training radius and field of view."""
        cam = self.cfg.camera
        return orbit(1, elevation, sum(cam.radius_range) / 2, sum(cam.fovy_range) / 2, azimuth)

    @torch.no_grad()
    def draw_anchors(self, generator: torch.Generator) -> None:
        """The view anchors from θ itself (`system.anchor_source: render`): θ drawn by the NeRF at each anchor's
        camera, redrawn by the prior from noise `anchor_strength` (SDEdit) with the prompt of that view,
        `anchor_candidates` times, and the one the prior finds most like that view against the opposite one
        kept (`view_margins`, as `prior_picker`). Once the shape has formed, the prior adds the front feature to
        a view that already has θ's shape, colour and place in the frame, so the anchor fits the render it is
        compared with; the back's redraw stays plain. Where the front's pick is not `anchor_margin` more
        front than back to the prior, the prompt names no front feature and the run goes on without anchors:
        a redraw of a plain object has nothing to add but the prior's stray marks; the views after the front
        are then not redrawn (half the draw's cost, which such a run pays on top of `real3d`'s). That margin is
        kept in `front_margin` (None without a front anchor) and logged from then on."""
        system, front_margin, anchors = self.cfg.system, None, []
        k = system.anchor_candidates
        for azimuth, elevation in self.anchor_cams.tolist():
            cam = self.anchor_camera(azimuth, elevation)
            with self.body_alone():
                out = self.render(self.model.renderer, cam, self.anchors.shape[1], generator, "lambertian")
            views = torch.tensor([[azimuth, elevation]]).expand(k, 2)  # [K,2]
            redrawn = self.prior.redraw(
                out.rgb.expand(k, -1, -1, -1),
                self.prompt(views[:, 0], views[:, 1]),
                system.anchor_strength,
                generator=generator,
            )
            margins = view_margins(self.prior, self.prompt, redrawn, views, azimuth, seed=self.cfg.seed)  # [K]
            anchors.append(redrawn[int(margins.argmax())].float())
            if view_direction(azimuth, 0.0) == "front":
                front_margin = float(margins.max())
                if not system.passes_gate(front_margin):  # the other views are not redrawn for nothing
                    break
        self.keep_anchors(torch.stack(anchors), front_margin)

    def keep_anchors(self, anchors: torch.Tensor, front_margin: float | None) -> None:
        """Render anchors [A,H,W,3] (empty: not drawn yet) and their front pick's margin (None: none drawn, or
        no front anchor): the run stays anchored only where that margin passes `system.anchor_margin`."""
        self.anchors, self.front_margin = anchors.to(self.anchor_cams.device), front_margin
        self.anchored = self.anchored and self.cfg.system.passes_gate(front_margin)
        self.show_decal()

    def show_decal(self) -> None:
        """θ's decal (`field.appearance: decal`) is drawn once the run has anchors to draw it, and never in a run
        without them (gated off, a pair, λ_anchor 0): there it stays hidden and unsampled, so such a run and its
        export are those of a field without appearance channels, at their cost."""
        self.model.field.decal_shown = self.anchored and bool(len(self.anchors))

    def view_anchor(self, generator: torch.Generator) -> torch.Tensor:
        """Σ anchor_loss of θ drawn by the NeRF at each view anchor's camera (the medoid's own azimuth and
        elevation in x̃, the middle of the training radius and field of view) against that anchor, in albedo
        shading (`anchor_shading`: or the step's), its density held (`colours_alone`): the anchors set
        colours, not the shape; with `anchor_planes: facing`, through the appearance plane across the axis
        of its view word alone, on the camera's half of the scene (`anchor_facing`). All anchors in one
        step: where a triplane plane is shared by the front and the back, their pulls meet in one gradient."""
        total = self.anchors.new_zeros(())
        mode: ShadingMode | None = "albedo" if self.cfg.system.anchor_shading == "albedo" else None
        facing = self.cfg.system.anchor_planes == "facing"
        azimuths = anchor_azimuths(self.cfg.system.anchor_views)
        for nominal, (azimuth, elevation), anchor in zip(azimuths, self.anchor_cams.tolist(), self.anchors):
            view = self.anchor_camera(azimuth, elevation)
            with self.model.field.colours_alone(anchor_facing(nominal) if facing else None):
                out = self.render(self.model.renderer, view, self.anchors.shape[1], generator, mode)  # 1 view
            total = total + anchor_loss(out.rgb, out.opacity, anchor, self.cfg.system.anchor_marks)
        return total

    def training_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        """One step of Eq. 11 on θ, then one step of Eq. 4 on D, in the run's precision."""
        with precision.use(self.cfg.precision):
            return self._training_step(step, generator)

    def fit_level(self) -> None:
        """DMTet's ε moved to the level whose surface best matches the NeRF's silhouettes (export.nerf_level, 4
        views at 32², among the two levels of export.LEVELS either side of the current one), so both
        renderers of θ draw one surface; its band is measured again at that level."""
        geometry = self.model.explicit.geometry
        if not isinstance(self.model.renderer, NeRFRenderer):
            return
        here = min(range(len(LEVELS)), key=lambda i: abs(LEVELS[i] - geometry.eps))
        geometry.eps = nerf_level(self.model, geometry.grid.res, LEVELS[max(here - 2, 0) : here + 3], views=4, size=32)
        geometry.last_sdf = torch.empty(0)  # the next update_step measures the whole grid again

    def local_object(self, step: int, generator: torch.Generator) -> int | None:
        """Which object of a laid-out scene this step draws alone (probability p_local), or None: the scene.
        `local_order: alternate` gives object k the local steps ≡ k mod K; drawn at random (`random`), a seed's
        stream could leave one object of a pair with a sixth fewer steps than the other (docs/results.md)."""
        p = scheduled(self.cfg.system.p_local, step)
        if not self.object_prompts or p <= 0 or float(torch.rand(1, generator=generator)) >= p:
            return None
        if self.cfg.system.local_order == "alternate":
            return step % len(self.object_prompts)
        return int(torch.randint(len(self.object_prompts), (1,), generator=generator))

    def _training_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        """Eq. 11 on θ, Eq. 4 on D; or, on a local step, Eq. 2 alone on one object of the scene drawn by
        itself with its own prompt (D, which knows x̃ of the whole scene, sits it out). Returns losses and
        per-part milliseconds."""
        cfg, sys_cfg, clock = self.cfg, self.cfg.system, StepClock()
        self.model.renderer.update_step(step, generator)
        every = sys_cfg.fit_level_every
        if every and step % every == 0 and scheduled(sys_cfg.p_dmtet, step) > 0:
            self.fit_level()
        self.model.explicit.update_step(step, generator)
        k = self.local_object(step, generator)
        v1, v2 = self.views(generator, step) if k is None else self.local_views(k, generator, step)
        draws = torch.rand(2, generator=generator)
        candidates = [
            (self.model.renderer, v1, sys_cfg.nerf_resolution, "nerf", scheduled(sys_cfg.p_nerf, step)),
            (self.model.explicit, v2, sys_cfg.dmtet_resolution, "dmtet", scheduled(sys_cfg.p_dmtet, step)),
        ]
        likelier = max(candidates, key=lambda c: c[4])
        passes = [c for c, u in zip(candidates, draws) if u < c[4]] or [likelier]  # at least one render a step
        renders: list[tuple[RenderOutput, Cameras]] = []
        losses: dict[str, torch.Tensor] = {}
        for renderer, cams, size, name, _ in passes:
            with clock(name), self.model.field.only(k) if k is not None else nullcontext(), self.body_alone():
                renders.append((self.render(renderer, cams, size, generator), cams))
            losses |= {f"{n}_{name}": v for n, v in regularizer_losses(renders[-1][0], cfg.regularizers).items()}
        losses |= field_regularizer_losses(self.model.field, cfg.regularizers, step)
        prompt = None if k is None else self.object_prompts[k]
        with clock("sds"):
            caps = [sys_cfg.dmtet_t_max if name == "dmtet" else 1.0 for *_, name, _ in passes]
            losses["loss_sds"] = sys_cfg.lambda_sds * self.score_distillation(renders, step, generator, prompt, caps)
        with clock("adv"):
            adv = self.adversarial(renders, generator) if k is None else renders[0][0].rgb.new_zeros(())
            losses["loss_adv"] = scheduled(sys_cfg.lambda_adv, step) * adv
        lambda_colour = scheduled(sys_cfg.lambda_colour, step)
        if lambda_colour > 0 and k is None:  # x̃ shows the whole scene, as D's do
            losses["loss_colour"] = lambda_colour * self.colour_matching(renders)
        lambda_anchor = scheduled(sys_cfg.lambda_anchor, step)
        if lambda_anchor > 0 and self.anchored:
            with clock("anchor"):
                own = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # the step's draws left as they are
                if not len(self.anchors):
                    self.draw_anchors(own)
                if self.anchored:
                    losses["loss_anchor"] = lambda_anchor * self.view_anchor(own)
        loss = cast(torch.Tensor, sum(losses.values()))  # Eq. 11 (+ regularizers)
        with clock("backward"):
            self.optimizer.zero_grad(set_to_none=True)
            if loss.requires_grad:  # else nothing drawn depends on θ (an empty mesh): no update this step
                loss.backward()
                self.optimizer.step()
            self.scheduler.step()
        stats = {"loss": loss.item(), **{n: v.item() for n, v in losses.items()}}
        if self.front_margin is not None:
            stats["anchor_margin"] = self.front_margin
        if self.discriminator is not None and k is None:
            with clock("d"):
                real = self.reference[torch.randint(len(self.reference), (4,), generator=generator)].float() / 255
                stats |= self.discriminator.update(real, [out.rgb for out, _ in renders], generator)
        return stats | clock.ms


class StepClock:
    """Wall-clock milliseconds per named part of a step: `with clock("nerf"): ...`; totals in `ms`."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def __call__(self, name: str) -> StepClock:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        key = f"ms_{self._name}"
        self.ms[key] = self.ms.get(key, 0.0) + (time.perf_counter() - self._start) * 1000
