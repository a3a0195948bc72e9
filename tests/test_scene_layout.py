"""The layout-aware start: a prompt "A <relation> B" places one density blob per object (real3d/scene_layout.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from real3d import scene_layout
from real3d.cameras import orbit
from real3d.errors import ConfigError
from real3d.field import TriplaneField
from real3d.guidance.reference import silhouette_aspect
from real3d.jobs.generate import run_config
from real3d.system import Real3DSystem, build_prior, deterministic, shaped_start
from real3d.toyworld.runs import gt_views
from tests.test_generate import tiny


def centres(prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    placed = scene_layout.blobs(prompt)
    assert placed is not None, prompt
    a, b = torch.tensor(placed)[:, :3]
    return a, b


def test_on_top_of_stacks_the_first_object_above_the_second() -> None:
    for prompt in ("a red cube on top of a blue sphere", "a red cube on a blue sphere", "a cube above a cone"):
        a, b = centres(prompt)
        assert a[2] > 0 > b[2] and a[:2].abs().max() == 0, prompt


def test_under_swaps_the_stack() -> None:
    a, b = centres("a red cube under a blue sphere")
    assert a[2] < 0 < b[2]


def test_next_to_puts_the_first_object_on_the_viewers_left() -> None:
    a, b = centres("a pink sphere next to a cyan cone")  # seen from the front (+x), the viewer's left is −y
    assert a[1] < 0 < b[1] and a[2] == b[2] == 0
    a, b = centres("a cone to the right of a cube")
    assert a[1] > 0 > b[1]


def test_one_object_keeps_the_single_blob() -> None:
    for prompt in ("a red cube", "a red sphere with a face", "on a cube", "a cube on", "an onion", "a bonnet"):
        assert scene_layout.blobs(prompt) is None, prompt


def test_two_blobs_start_two_separate_objects() -> None:
    """Density is high at both centres and, for "next to", low in the gap between them."""
    placed = scene_layout.blobs("a pink sphere next to a cyan cone")
    field = TriplaneField(TriplaneField.Config(init_std=0.0, blobs=placed))
    a, b = torch.tensor(placed)[:, :3]
    eps = field.tau_threshold_density(0.1)
    inside = field.density(torch.stack([a, b]))
    assert (inside > eps).all()
    assert field.density(torch.zeros(1, 3)) < eps  # the gap at the origin is empty


def test_the_default_blob_is_the_single_ball() -> None:
    field = TriplaneField(TriplaneField.Config(init_std=0.0))
    x = torch.randn(64, 3)
    expected = field.cfg.blob_density * (1 - x.norm(dim=-1) / field.cfg.blob_radius)
    assert torch.allclose(field.blob(x), expected)


def test_run_config_lays_out_the_prompt_and_keeps_what_the_user_gave() -> None:
    pair = "a red cube on top of a blue sphere"
    assert run_config("real3d", pair).field.blobs == scene_layout.blobs(pair)
    assert run_config("real3d", "a red cube").field.blobs is None
    assert run_config("real3d", pair, ["layout=none"]).field.blobs is None
    given = run_config("real3d", pair, ["field.blobs=[[0,0,0,0.4]]"]).field.blobs
    assert given == [[0.0, 0.0, 0.0, 0.4]]


def test_bad_blobs_fail_with_their_message() -> None:
    with pytest.raises(ConfigError, match=r"field.blobs: expected a list of \[x, y, z, radius > 0\]"):
        run_config("real3d", "a red cube", ["field.blobs=[[0,0,0]]"])
    with pytest.raises(ConfigError, match=r"system.p_local: expected a number or \[start_step"):
        run_config("real3d", "a red cube on a blue sphere", ["system.p_local=[0,1]"])


def test_start_axes_undo_the_view_elevation_about_the_balls_radius() -> None:
    """An ellipsoid k times as tall as wide, seen from 15° up, reads √(k² cos² 15° + sin² 15°) times as tall in
    its views: start_axes gives back k (held to [1/3, 3]) as (k^−½, k^−½, k^½), height and width about the
    ball's radius; a k within 0.25 of 1 keeps the ball."""
    e = math.radians(15.0)

    def seen(k: float) -> float:  # the silhouette's height over width of an ellipsoid k times as tall as wide
        return math.sqrt(k**2 * math.cos(e) ** 2 + math.sin(e) ** 2)

    for k in (0.5, 1.3, 2.0):
        x, y, z = scene_layout.start_axes(seen(k), 15.0)
        assert x == y and z / x == pytest.approx(k) and x * z == pytest.approx(1.0)
    for k in (0.81, 1.0, 1.2):  # within the margin of a ball
        assert scene_layout.start_axes(seen(k), 15.0) == [1.0, 1.0, 1.0]
    x, _, z = scene_layout.start_axes(10.0, 15.0)
    assert z / x == pytest.approx(3.0)


def test_silhouette_aspect_reads_how_tall_the_gt_objects_are() -> None:
    """On the GT views: the capsule (1.28 tall, 0.56 wide) about twice as tall as wide, the sphere as tall as
    wide, the flat torus half; an empty view reads 1."""
    assert silhouette_aspect(gt_views("an orange capsule")) == pytest.approx(2.0, abs=0.1)
    assert silhouette_aspect(gt_views("a blue sphere")) == pytest.approx(1.0, abs=0.03)
    assert silhouette_aspect(gt_views("a purple torus")) < 0.6
    assert silhouette_aspect(torch.ones(2, 32, 32, 3)) == 1.0


def test_a_reference_start_is_shaped_by_x_tilde_on_one_object_only(tmp_path: Path) -> None:
    """system.start_shape=reference: x̃ of a tall object (here drawn: a dark bar twice as tall as wide) makes
    the start blob tall; a two-object prompt keeps its balls, given axes win, and `ball` is the ball. A run
    samples x̃ for it even without D, and its field takes the axes."""
    overrides = [*tiny(tmp_path), "system.start_shape=reference"]
    x_ref = torch.full((run_config("real3d", "a red cube", overrides).reference.count, 32, 32, 3), 255).byte()
    x_ref[:, 8:24, 12:20] = 40  # [N,H,W,3]: 16 rows by 8 columns
    x, y, z = shaped_start(run_config("real3d", "a red cube", overrides), x_ref).field.blob_axes
    assert z / x == pytest.approx(2.07, abs=0.1) and x == y  # √((2² − sin² 15°) / cos² 15°)
    for cfg in (
        run_config("real3d", "a red cube on top of a blue sphere", overrides),
        run_config("real3d", "a red cube", [*overrides, "field.blob_axes=[1,1,0.5]"]),
        run_config("real3d", "a red cube", [*tiny(tmp_path), "system.start_shape=ball"]),
    ):
        assert shaped_start(cfg, x_ref) == cfg
    cfg = run_config("real3d", "an orange capsule", [*overrides, "system.lambda_adv=0"])
    system = Real3DSystem(cfg, build_prior(cfg))
    assert system.discriminator is None and system.reference.shape[0] == cfg.reference.count
    assert system.cfg == shaped_start(cfg, system.reference)  # the axes of its own x̃, in the config it saves
    assert system.model.field.blob_axes.tolist() == pytest.approx(system.cfg.field.blob_axes)


def test_objects_are_the_two_sides_of_the_relation() -> None:
    assert scene_layout.objects("a red cube on top of a blue sphere") == ["a red cube", "a blue sphere"]
    assert scene_layout.objects("A cube under a sphere.") == ["A cube", "a sphere"]  # blobs' order: A first
    assert scene_layout.objects("a red cube") is None


def test_focused_cameras_orbit_and_look_at_the_target() -> None:
    cams = orbit(3, elevation=20.0)
    target = torch.tensor([0.0, 0.2, 0.36])
    near = cams.focus(target, 2.0)
    assert torch.allclose((near.position - target).norm(dim=-1), cams.radius)
    rays_o, rays_d = near.rays(1, 1)  # the one pixel's ray is the optical axis
    to_target = torch.nn.functional.normalize(target - rays_o[:, 0], dim=-1)
    assert torch.allclose(rays_d[:, 0], to_target, atol=1e-5)
    half = torch.deg2rad(torch.stack([cams.fovy, near.fovy]) / 2).tan()
    assert torch.allclose(half[0] / half[1], torch.tensor(2.0))
    assert torch.allclose(near.offset(90.0).target, near.target) and near.index(0).target.shape == (1, 3)


def test_only_draws_one_object_and_leaves_the_scene_after() -> None:
    placed = scene_layout.blobs("a red cube on top of a blue sphere")
    field = TriplaneField(TriplaneField.Config(init_std=0.0, blobs=placed))
    a, b = torch.tensor(placed)[:, :3]
    both = field.density(torch.stack([a, b]))
    with field.only(0):
        alone = field.density(torch.stack([a, b]))
    assert alone[0] == both[0] > 0 and alone[1] == 0
    assert torch.equal(field.density(torch.stack([a, b])), both)


def test_a_local_step_draws_one_object_with_its_own_prompt(tmp_path: Path) -> None:
    """p_local = 1: every step is one object alone (its prompt, no D); a single object never is."""
    overrides = [*tiny(tmp_path), "system.p_local=1.0"]
    cfg = run_config("real3d", "a red cube on top of a blue sphere", overrides)
    system = Real3DSystem(cfg, build_prior(cfg))
    assert [p.prompt for p in system.object_prompts] == ["a red cube", "a blue sphere"]
    gen = torch.Generator().manual_seed(0)
    drawn = {system.local_object(step, gen) for step in range(32)}
    assert drawn == {0, 1}
    with deterministic():
        stats = system.training_step(0, gen)
    assert math.isfinite(stats["loss_sds"]) and stats["loss_adv"] == 0 and "d_loss" not in stats
    single = Real3DSystem(cfg := run_config("real3d", "a red cube", overrides), build_prior(cfg))
    assert single.object_prompts == [] and single.local_object(0, gen) is None


def test_alternate_local_order_gives_each_object_its_share(tmp_path: Path) -> None:
    """local_order: alternate draws object step mod 2 on every local step, so over 600 steps at p_local 0.9 the
    two objects' counts differ by a few steps; drawn at random, seed 3's stream gives them 298 and 247."""
    overrides = [*tiny(tmp_path), "system.p_local=0.9"]
    counts = {}
    for order in ("random", "alternate"):
        cfg = run_config("real3d", "a red cube on top of a blue sphere", [*overrides, f"system.local_order={order}"])
        system, gen = Real3DSystem(cfg, build_prior(cfg)), torch.Generator().manual_seed(3)
        drawn = [(step, system.local_object(step, gen)) for step in range(600)]
        assert all(k == step % 2 for step, k in drawn if k is not None) == (order == "alternate")
        counts[order] = [sum(k == i for _, k in drawn) for i in (0, 1)]
    assert abs(counts["alternate"][0] - counts["alternate"][1]) < 15 < abs(counts["random"][0] - counts["random"][1])


def test_dmtet_zoom_narrows_only_the_explicit_renderers_view(tmp_path: Path) -> None:
    """system.dmtet_zoom: v2 (DMTet) sees the same direction with tan(fovy/2) / zoom; v1 (NeRF) is untouched."""
    views = {}
    for zoom in (1.0, 0.8):
        cfg = run_config("real3d", "a red cube", [*tiny(tmp_path), f"system.dmtet_zoom={zoom}"])
        views[zoom] = Real3DSystem(cfg, build_prior(cfg)).views(torch.Generator().manual_seed(0), 0)
    (v1, v2), (z1, z2) = views[1.0], views[0.8]
    assert torch.equal(v1.fovy, z1.fovy) and torch.equal(v2.azimuth, z2.azimuth)
    assert torch.allclose(torch.tan(torch.deg2rad(z2.fovy) / 2), torch.tan(torch.deg2rad(v2.fovy) / 2) / 0.8)
    assert torch.allclose(z2.c2w, v2.c2w)


def test_colour_matching_samples_x_tilde_without_d_and_moves_theta(tmp_path: Path) -> None:
    """system.lambda_colour > 0 alone (λ_adv 0, no D) still samples x̃ and adds loss_colour, whose gradient
    reaches θ; with both weights at 0 no x̃ is drawn."""
    overrides = [*tiny(tmp_path), "system.lambda_adv=0", "system.lambda_colour=300", "system.lambda_sds=0"]
    overrides += ["regularizers.lambda_plane_tv=0", "regularizers.lambda_opacity_entropy=0"]
    cfg = run_config("real3d", "a red cube", overrides)
    system = Real3DSystem(cfg, build_prior(cfg))
    assert system.discriminator is None and system.reference_colours.shape == (4, 3)
    with deterministic():
        stats = system.training_step(0, torch.Generator().manual_seed(0))
    assert stats["loss_colour"] > 0 and stats["loss"] == stats["loss_colour"]  # every other term weighted 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in system.model.parameters())
    one = run_config("real3d", "a red cube", [*overrides, "system.colour_by_view=false"])
    colours = Real3DSystem(one, build_prior(one)).reference_colours  # every view word: the mean of all x̃
    assert torch.equal(colours, colours[:1].expand(4, 3))
    plain = run_config("real3d", "a red cube", [*tiny(tmp_path), "system.lambda_adv=0"])
    assert not hasattr(Real3DSystem(plain, build_prior(plain)), "reference_colours")
