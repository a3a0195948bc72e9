"""View anchors (guidance/anchor.py): x̃'s front and back medoids, fitted to the render's box, pull its colours."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from real3d.errors import ConfigError
from real3d.guidance.anchor import (
    anchor_facing,
    anchor_loss,
    fit_to_box,
    medoid,
    outline_box,
    prior_picker,
    solid_pixels,
    view_anchors,
    view_margins,
)
from real3d.guidance.prompts import PositionalPrompt
from real3d.guidance.reference import object_pixels
from real3d.jobs.generate import RunState, run_config
from real3d.model import load_checkpoint
from real3d.system import Real3DSystem, build_prior, deterministic
from real3d.toyworld.judge import load_judge
from real3d.toyworld.metrics import feature_seen
from real3d.toyworld.runs import gt_views
from real3d.toyworld.scene import parse
from tests.test_generate import tiny

RED, BLACK = torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.0, 0.0, 0.0])


def square(size: int, lo: int, hi: int, eye: bool = False) -> torch.Tensor:
    """A white image [size,size,3] with a red square over pixels lo..hi−1, and with `eye` a black mark a
    seventh of its side wide, centred a quarter down the square and across its middle (a feature that has a
    place on the object)."""
    img = torch.ones(size, size, 3)
    img[lo:hi, lo:hi] = RED
    if eye:
        e, mid, quarter = (hi - lo) // 7, (lo + hi) // 2, lo + (hi - lo) // 4
        img[quarter - e // 2 : quarter - e // 2 + e, mid - e // 2 : mid - e // 2 + e] = BLACK
    return img


def test_view_anchors_are_the_medoids_of_the_views_near_each_anchor() -> None:
    """Of three front views, the one between the other two; of the back views, theirs; a side view, however
    central, is neither, and the sides' two anchors (90 and 270) each take their own; a word without a view
    fails with what to do."""
    front = [square(16, 4, 12), square(16, 5, 12), square(16, 6, 12)]
    back = [square(16, 3, 13) * 0.5, square(16, 5, 12) * 0.5]
    left, right = square(16, 5, 12) * 0.8, square(16, 4, 11) * 0.3
    images = torch.stack([*front, *back, left, right])
    views = torch.tensor([[0, 15], [10, 15], [-20, 15], [180, 15], [-170, 15], [90, 15], [-80, 15]]).float()
    anchors, cams = view_anchors(images, views)
    assert anchors.shape == (2, 16, 16, 3)
    assert torch.equal(anchors[0], images[1]) and torch.equal(anchors[1], images[3])  # back: a tie, the first
    assert cams.tolist() == [[10, 15], [180, 15]]  # each medoid's own camera
    sides, cams = view_anchors(images, views, ["sides", "front"])
    assert torch.equal(sides[0], left) and torch.equal(sides[1], right) and torch.equal(sides[2], images[1])
    assert cams[:, 0].tolist() == [90, -80, 10]
    assert [anchor_facing(a) for a in (10.0, 90.0, 180.0, -80.0)] == [(0, 1), (1, 1), (0, -1), (1, -1)]
    with pytest.raises(ValueError, match="no view near azimuth 180.*reference.count"):
        view_anchors(images[:3], views[:3])


def test_the_prior_picks_the_view_that_shows_the_feature_for_the_front_and_the_plain_one_for_the_back() -> None:
    """Of two front views, the GT red sphere with its face and without it, the shipped prior's pick for the
    front anchor is the face ("…, front view" against "…, back view") and for the back anchor the plain one;
    the medoid of two is a tie, the first. The pick follows the images, not their order."""
    cfg = run_config("real3d", "a red sphere with a face", [])
    prior = build_prior(cfg)
    face, plain = gt_views("a red sphere with a face")[0], gt_views("a red sphere")[0]  # azimuth 0: the front
    views = torch.tensor([[0.0, 15.0], [0.0, 15.0]])
    pick = prior_picker(prior, PositionalPrompt(prior, cfg.prompt))
    for images, with_face in ((torch.stack([plain, face]), 1), (torch.stack([face, plain]), 0)):
        assert pick(images, views, 0.0) == with_face
        assert pick(images, views, 180.0) == 1 - with_face
        assert medoid(images, views, 0.0) == 0


def opacity(img: torch.Tensor) -> torch.Tensor:
    """A solid object's opacity [B,H,W,1] for a render img [B,H,W,3] on white: 1 on its object pixels, else 0."""
    return object_pixels(img).float()[..., None]


def test_fit_to_box_lands_the_anchor_and_its_feature_on_the_render_box() -> None:
    """An anchor drawn twice as large and off centre, fitted to a render's square, covers exactly that square,
    and its eye lands where the same eye lies on a render of that size: the feature keeps its place on the
    object, not in the image."""
    anchor = square(32, 2, 30, eye=True)
    render = square(32, 6, 26)[None]
    fitted = fit_to_box(anchor, solid_pixels(opacity(render)))
    assert fitted is not None
    assert torch.allclose(outline_box(object_pixels(fitted)[0]), outline_box(object_pixels(render)[0]))
    dark = fitted[0].amax(-1) < 0.4  # [H,W]: the eye
    rows, cols = dark.nonzero().float().mean(0)
    assert abs(rows - (6 + 20 / 4 - 0.5)) < 0.5 and abs(cols - 15.5) < 0.5
    assert fit_to_box(anchor, torch.zeros(1, 32, 32, dtype=torch.bool)) is None  # an empty render: nothing to fit


def test_anchor_loss_pulls_colour_inside_the_box_and_never_grows_it() -> None:
    """A featureless render of the anchor's object costs more than one with its feature, at another size; the
    gradient darkens the render where the fitted anchor has its eye and leaves every pixel that the render
    shows as background alone, inside its box as well as outside it (a fuller x̃ would grow the render), and
    every faint pixel of fog round it, whose box the anchor is not fitted to either."""
    anchor = square(32, 2, 30, eye=True)
    with_eye, plain = square(32, 9, 23, eye=True)[None], square(32, 9, 23)[None]
    assert anchor_loss(plain, opacity(plain), anchor) > 2 * anchor_loss(with_eye, opacity(with_eye), anchor)
    rgb = plain.clone().requires_grad_(True)
    anchor_loss(rgb, opacity(plain), anchor).backward()
    grad = rgb.grad[0]  # [H,W,3]; descent moves rgb by −grad
    eye = fit_to_box(anchor, solid_pixels(opacity(plain)))[0].amax(-1) < 0.4
    assert (grad[eye] > 0).all()  # pushed toward black
    outside = ~object_pixels(plain)[0]
    assert grad[outside].abs().max() == 0
    disc = plain.clone()
    disc[0, 9:11, 9:11] = disc[0, 9:11, 21:23] = 1.0  # two corners cut off: background inside the render's box
    rgb = disc.requires_grad_(True)
    anchor_loss(rgb, opacity(disc), anchor).backward()
    assert rgb.grad[0, 9:11, 9:11].abs().max() == 0 and rgb.grad[0, 9:11, 21:23].abs().max() == 0
    fog = opacity(square(32, 6, 26)[None]) * 0.5  # a faint halo round the same square
    fog[0, 9:23, 9:23] = 1.0
    rgb = square(32, 6, 26)[None].requires_grad_(True)
    anchor_loss(rgb, fog, anchor).backward()
    halo = (fog[0, ..., 0] > 0) & (fog[0, ..., 0] < 1)
    assert rgb.grad[0][halo].abs().max() == 0 and rgb.grad[0, 10:22, 10:22].abs().sum() > 0
    nothing = torch.ones(1, 32, 32, 3, requires_grad=True)
    assert anchor_loss(nothing, opacity(nothing), anchor) == 0  # no object: no pull


def test_lambda_anchor_samples_x_tilde_without_d_and_moves_theta(tmp_path: Path) -> None:
    """system.lambda_anchor > 0 alone (λ_adv 0, no D) samples x̃, keeps its front and back medoids and adds
    loss_anchor, whose gradient reaches θ."""
    overrides = [*tiny(tmp_path), "system.lambda_adv=0", "system.lambda_anchor=100", "system.lambda_sds=0"]
    overrides += ["regularizers.lambda_plane_tv=0", "regularizers.lambda_opacity_entropy=0", "field.blob_density=30"]
    with pytest.raises(ConfigError, match="near azimuth 0 and 180.*reference.count=4.*raise reference.count"):
        run_config("real3d", "a red cube", overrides)  # 4 views of x̃, at ±45° and ±135°: neither a front nor a back
    cfg = run_config("real3d", "a red cube", [*overrides, "reference.count=8"])
    system = Real3DSystem(cfg, build_prior(cfg))
    assert system.discriminator is None and system.anchors.shape == (2, *system.reference.shape[1:])
    with deterministic():
        stats = system.training_step(0, torch.Generator().manual_seed(0))
    assert stats["loss_anchor"] > 0 and stats["loss"] == stats["loss_anchor"]  # every other term weighted 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in system.model.parameters())
    picked = run_config("real3d", "a red cube", [*overrides, "reference.count=8", "system.anchor_pick=prior"])
    chosen = Real3DSystem(picked, build_prior(picked))
    x_ref = chosen.reference.float() / 255  # the anchors the prior picks are x̃'s own views, from their own cameras
    assert all(any(torch.equal(a, x) for x in x_ref) for a in chosen.anchors) and chosen.anchor_cams.shape == (2, 2)
    front = run_config("real3d", "a red cube", [*overrides, "reference.count=3", "system.anchor_views=[front]"])
    assert Real3DSystem(front, build_prior(front)).anchors.shape[0] == 1  # 3 views of x̃: a front, no back
    pair = run_config("real3d", "a red cube on top of a blue sphere", [*overrides, "reference.count=8"])
    with deterministic():
        stats = Real3DSystem(pair, build_prior(pair)).training_step(0, torch.Generator().manual_seed(0))
    assert "loss_anchor" not in stats  # x̃ of a laid-out prompt swaps its objects' colours: no anchor there


def test_anchor_shading_albedo_draws_the_anchor_views_unlit_whatever_the_step_draws(tmp_path: Path) -> None:
    """With anchor_shading albedo (the default) loss_anchor is the same under an albedo-only and a
    lambertian-only shading config; with `step` the anchor renders follow the config, and the two differ."""
    base = [
        *tiny(tmp_path),
        "reference.count=8",
        "system.lambda_adv=0",
        "system.lambda_anchor=1",
        "field.blob_density=30",
    ]
    losses = {}
    for shading in ("albedo", "step"):
        for probs in (
            "shading.probs.albedo=1.0 shading.probs.lambertian=0.0",
            "shading.probs.albedo=0.0 shading.probs.lambertian=1.0",
        ):
            cfg = run_config("real3d", "a red cube", [*base, f"system.anchor_shading={shading}", *probs.split()])
            system = Real3DSystem(cfg, build_prior(cfg))
            with deterministic():
                losses[shading, probs] = system.training_step(0, torch.Generator().manual_seed(0))["loss_anchor"]
    albedo, step = [[v for (s, _), v in losses.items() if s == k] for k in ("albedo", "step")]
    assert albedo[0] == albedo[1] and step[0] != step[1], losses


def test_the_decal_recipe_learns_its_appearance_from_the_anchors_alone(tmp_path: Path) -> None:
    """The decal recipe (docs/results.md, twenty-fourth round): after one step with SDS and the front and back
    anchors, the appearance planes have learned from the anchors alone, through the yz plane (the one across
    the anchors' axis) and nothing else: the xy and xz planes' appearance carries no gradient. `facing` without
    appearance channels fails with what to set."""
    overrides = [*tiny(tmp_path), "reference.count=8", "system.lambda_adv=0", "system.lambda_anchor=100"]
    overrides += ["field.appearance_channels=4", "field.appearance_sides=true", "field.appearance=decal"]
    overrides += ["field.appearance_learns=colours_alone", "field.appearance_blend=triplanar"]
    overrides += ["system.anchor_planes=facing", "field.appearance_gain=10", "field.blob_density=30"]
    plain = [o for o in overrides if not o.startswith("field.appearance")]
    with pytest.raises(ConfigError, match="anchor_planes=facing picks among field.appearance_channels.*e.g. 4"):
        run_config("real3d", "a red cube", plain)
    cfg = run_config("real3d", "a red cube", overrides)
    system = Real3DSystem(cfg, build_prior(cfg))
    with deterministic():
        stats = system.training_step(0, torch.Generator().manual_seed(0))
    field, c = system.model.field, cfg.field.channels
    assert stats["loss_anchor"] > 0 and stats["loss_sds"] > 0
    assert field.planes.grad[:2, c:].abs().max() == 0 and field.far_side.grad[:2].abs().max() == 0
    assert field.planes.grad[2, c:].abs().sum() > 0 and field.far_side.grad[2].abs().sum() > 0


def test_decal_in_training_false_hides_the_decal_from_sds_alone(tmp_path: Path) -> None:
    """With `system.decal_in_training=false` SDS sees θ without its decal: a decal painted over the whole field
    leaves loss_sds as it was, while the anchors still see it; with the default SDS sees it too. Without a
    decal the key fails with what to set."""
    overrides = [*tiny(tmp_path), "reference.count=8", "system.lambda_adv=0", "system.lambda_anchor=100"]
    overrides += ["field.appearance_channels=4", "field.appearance=decal", "field.appearance_learns=colours_alone"]
    with pytest.raises(ConfigError, match="decal_in_training=false hides field.appearance=decal.*set field.appear"):
        run_config(
            "real3d",
            "a red cube",
            [o for o in overrides if o != "field.appearance=decal"] + ["system.decal_in_training=false"],
        )

    def losses(hidden: bool, painted: bool) -> tuple[float, float]:
        cfg = run_config("real3d", "a red cube", [*overrides, f"system.decal_in_training={str(not hidden).lower()}"])
        system = Real3DSystem(cfg, build_prior(cfg))
        if painted:
            with torch.no_grad():
                system.model.field.planes[:, cfg.field.channels :] = 1.0
                system.model.field.texture.weight.fill_(2.0)  # α → 1 everywhere
        with deterministic():
            stats = system.training_step(0, torch.Generator().manual_seed(0))
        return stats["loss_sds"], stats["loss_anchor"]

    (sds_clear, anchor_clear), (sds_painted, anchor_painted) = losses(True, False), losses(True, True)
    assert sds_painted == sds_clear and anchor_painted != anchor_clear
    assert losses(False, True)[0] != sds_clear


def test_anchor_marks_draw_a_feature_but_not_x_tilde_shading() -> None:
    """With `marks`, an anchor whose only difference from a plain render is a soft shading costs nothing (it
    is not a feature), while its eye still pulls the render dark; without, the shading is drawn too."""
    render = square(32, 9, 23)[None]
    shaded = square(32, 2, 30)
    shaded[2:30, 2:30] *= torch.linspace(0.85, 1.0, 28)[:, None, None]  # darker toward the top
    assert anchor_loss(render, opacity(render), shaded) > 1e-3
    assert anchor_loss(render, opacity(render), shaded, marks=0.35) < 1e-4
    rgb = render.clone().requires_grad_(True)
    with_eye = square(32, 2, 30, eye=True)
    with_eye[2:30, 2:30] *= torch.linspace(0.85, 1.0, 28)[:, None, None]
    anchor_loss(rgb, opacity(render), with_eye, marks=0.35).backward()
    eye = fit_to_box(with_eye, solid_pixels(opacity(render)))[0].amax(-1) < 0.4
    assert (rgb.grad[0][eye] > 0).all()  # pushed toward black


def test_a_hidden_decal_leaves_the_body_as_it_trains_without_one(tmp_path: Path) -> None:
    """The decal recipe with `decal_in_training=false` trains the body (geometry planes, MLP) exactly as the run
    without appearance channels and anchors does: the appearance channels take no random draw, the anchors draw
    from their own generator and reach only the decal, and SDS and D never see it. Only the colours it draws
    differ."""
    base = [*tiny(tmp_path), "reference.count=8", "system.lambda_adv=0.01", "regularizers.lambda_albedo_logit=0.3"]
    recipe = ["system.lambda_anchor=100", "field.appearance_channels=4", "field.appearance=decal"]
    recipe += ["field.appearance_learns=colours_alone", "field.appearance_gain=10", "system.decal_in_training=false"]

    def body(overrides: list[str]) -> tuple[list[torch.Tensor], Real3DSystem]:
        cfg = run_config("real3d", "a red cube", overrides)
        system, generator = Real3DSystem(cfg, build_prior(cfg)), torch.Generator().manual_seed(0)
        with deterministic():
            for step in range(3):
                system.training_step(step, generator)
        field = system.model.field
        return [field.planes[:, : cfg.field.channels].detach(), *field.net.state_dict().values()], system

    plain, _ = body(base)
    decal, system = body([*base, *recipe])
    assert all(torch.equal(a, b) for a, b in zip(plain, decal, strict=True))
    assert system.model.field.planes[:, system.cfg.field.channels :].abs().sum() > 0  # the decal did learn


def test_the_prior_redraws_a_plain_front_view_with_the_feature_and_keeps_it_at_no_noise() -> None:
    """SDEdit (`DiffusionPrior.redraw`) of the plain GT red sphere's front view: from no noise it is the view
    itself; from half the noise, with "a red sphere with a face, front view", the shipped prior draws the face on
    it (the judge's P(face) rises from under 0.1 to over 0.5 on four redraws) and keeps the red ball; with
    "a red sphere, front view" it keeps it plain. Same generator, same redraws. The render anchors' gate
    (`system.anchor_margin`) passes the best redraw with the face and none of the plain ones."""
    cfg = run_config("real3d", "a red sphere with a face", [])
    prior, judge = build_prior(cfg), load_judge()
    plain = gt_views("a red sphere")[0][None]  # [1,H,W,3] azimuth 0: the front
    small = F.interpolate(plain.permute(0, 3, 1, 2), size=prior.resolution, mode="area").permute(0, 2, 3, 1)
    front, one = (torch.zeros(4), torch.full((4,), 15.0)), (torch.zeros(1), torch.full((1,), 15.0))
    face_prompt, plain_prompt = PositionalPrompt(prior, cfg.prompt), PositionalPrompt(prior, "a red sphere")
    kept = prior.redraw(small, face_prompt(*one), 0.0)
    assert (kept - small).abs().mean() < 0.005  # the encoder's resize alone
    scene = parse(cfg.prompt)

    def redrawn(prompt: PositionalPrompt, seed: int = 0) -> torch.Tensor:
        return prior.redraw(
            small.expand(4, -1, -1, -1), prompt(*front), 0.5, generator=torch.Generator().manual_seed(seed)
        )

    with_face = redrawn(face_prompt)
    assert torch.equal(with_face, redrawn(face_prompt))
    probs = judge.probs(with_face)
    assert feature_seen(judge.probs(plain), scene).item() < 0.1 and feature_seen(probs, scene).mean() > 0.5
    assert probs["shape_a"][:, 0].mean() > 0.8 and probs["colour_a"][:, 0].mean() > 0.8  # sphere, red
    plain_redraws = redrawn(plain_prompt)
    assert feature_seen(judge.probs(plain_redraws), scene).mean() < 0.2
    views, gate = torch.stack(front, -1), cfg.system.anchor_margin  # the prior's own front-against-back margin
    assert view_margins(prior, face_prompt, with_face, views, 0.0).max() > gate
    assert view_margins(prior, plain_prompt, plain_redraws, views, 0.0).max() < gate


def test_a_redraw_holds_the_pixels_it_is_told_to_keep_and_redraws_the_others() -> None:
    """`redraw(keep=…)` (RePaint's replacement): from high noise the kept half of the GT red sphere's front
    view comes back as it was (the encoder's resize alone), while the other half is redrawn as without a mask."""
    cfg = run_config("real3d", "a red sphere with a face", [])
    prior = build_prior(cfg)
    view = gt_views("a red sphere")[0][None]
    small = F.interpolate(view.permute(0, 3, 1, 2), size=prior.resolution, mode="area").permute(0, 2, 3, 1)
    small = small.expand(2, -1, -1, -1)
    keep = torch.zeros(2, *small.shape[1:3], dtype=torch.bool)
    keep[:, :, : small.shape[2] // 2] = True  # the left half
    emb = PositionalPrompt(prior, cfg.prompt)(torch.zeros(2), torch.full((2,), 15.0))

    def redrawn(mask: torch.Tensor | None) -> torch.Tensor:
        return prior.redraw(small, emb, 0.9, generator=torch.Generator().manual_seed(0), keep=mask)

    held, free = redrawn(keep), redrawn(None)
    left, right = keep[..., None].expand_as(small), ~keep[..., None].expand_as(small)
    assert (held - small)[left].abs().mean() < 0.005
    assert (free - small)[left].abs().mean() > 0.02 and (held - small)[right].abs().mean() > 0.02


def test_render_anchors_are_drawn_from_theta_when_lambda_anchor_turns_on_and_kept_by_a_checkpoint(
    tmp_path: Path,
) -> None:
    """`system.anchor_source=render`: no x̃ is sampled for the anchors (λ_adv 0), the anchors stay empty while
    λ_anchor is 0 and are θ's own front and back views, redrawn by the prior, from the step it turns on; a
    checkpoint holds them, so a resumed run does not draw them again from another θ. With the default
    `anchor_margin` a plain red cube's front redraw is no more front than back to the prior: no anchors, and a
    checkpoint keeps that too."""
    overrides = [*tiny(tmp_path), "system.lambda_adv=0", "system.anchor_source=render", "system.anchor_candidates=2"]
    overrides += ["system.lambda_anchor=[0,0,100,0]", "field.blob_density=30", "system.start_shape=ball"]

    def two_steps(extra: list[str]) -> tuple[Real3DSystem, torch.Generator, dict[str, float]]:
        cfg = run_config("real3d", "a red cube", [*overrides, *extra])
        system, gen = Real3DSystem(cfg, build_prior(cfg)), torch.Generator().manual_seed(0)
        assert not hasattr(system, "reference") and system.anchors.shape == (0, 16, 16, 3)
        middle = sum(cfg.camera.elevation_range) / 2  # of the training elevations
        assert system.anchor_cams.tolist() == [[0.0, middle], [180.0, middle]]
        with deterministic():
            assert "loss_anchor" not in system.training_step(0, gen) and len(system.anchors) == 0
            assert not system.model.field.decal_shown  # nothing to draw it yet
            return system, gen, system.training_step(1, gen)

    def resumed(system: Real3DSystem, gen: torch.Generator) -> Real3DSystem:
        again = Real3DSystem(system.cfg, system.prior)
        RunState(again, torch.Generator()).load_state_dict(RunState(system, gen).state_dict())
        return again

    system, gen, stats = two_steps(["system.anchor_margin=-1"])  # anchors whatever the margin
    assert stats["loss_anchor"] > 0 and system.anchors.shape == (2, system.prior.resolution, system.prior.resolution, 3)
    assert torch.equal(resumed(system, gen).anchors, system.anchors) and system.model.field.decal_shown
    plain, gen, stats = two_steps([])
    assert stats["anchor_margin"] < plain.cfg.system.anchor_margin and "loss_anchor" not in stats
    assert not plain.model.field.decal_shown and len(plain.anchors) == 1  # the back is not redrawn for nothing
    again = resumed(plain, gen)
    assert not plain.anchored and not again.anchored and again.front_margin == stats["anchor_margin"]
    with deterministic():
        later = plain.training_step(2, gen)
    assert "loss_anchor" not in later and later["anchor_margin"] == stats["anchor_margin"]  # logged every step


@pytest.mark.parametrize("prompt", ["a red cube on top of a blue sphere", "a red cube"])
def test_a_real3d_faces_run_without_anchors_is_a_real3d_run(tmp_path: Path, prompt: str) -> None:
    """The `real3d-faces` preset on a pair (never anchored) or with λ_anchor 0 throughout trains and draws θ as
    `real3d` does, to the bit: its decal stays hidden (and unsampled), and its checkpoint holds no anchors
    and restores as such."""
    overrides = [*tiny(tmp_path), "reference.count=8"]
    if "on top of" not in prompt:
        overrides.append("system.lambda_anchor=0")
    x = torch.rand(64, 3, generator=torch.Generator().manual_seed(0)) - 0.5

    def trained(preset: str) -> tuple[Real3DSystem, torch.Generator, torch.Tensor]:
        cfg = run_config(preset, prompt, overrides)
        system, gen = Real3DSystem(cfg, build_prior(cfg)), torch.Generator().manual_seed(0)
        with deterministic():
            for step in range(3):
                system.training_step(step, gen)
        return system, gen, torch.cat([system.model.field(x)[1], system.model.field(x)[0][:, None]], -1)

    _, _, plain = trained("real3d")
    faces, gen, drawn = trained("real3d-faces")
    assert faces.model.field.cfg.appearance_channels == 4 and not faces.model.field.decal_shown
    assert torch.equal(drawn, plain)
    again, ckpt = Real3DSystem(faces.cfg, faces.prior), RunState(faces, gen).state_dict()
    RunState(again, torch.Generator()).load_state_dict(ckpt)
    assert not again.anchored and not again.model.field.decal_shown and len(again.anchors) == 0
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    assert not load_checkpoint(tmp_path)[1].field.decal_shown  # `real3d export` draws no decal either
