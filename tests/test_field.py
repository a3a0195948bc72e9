import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from real3d import config as config_lib
from real3d import precision
from real3d.cameras import orbit
from real3d.errors import ConfigError
from real3d.field import TriplaneField, bucket_rows
from real3d.model import SceneConfig, SceneModel
from real3d.regularizers import RegularizerConfig, field_regularizer_losses, plane_tv_loss, regularizer_losses
from real3d.render.dmtet import marching_tets, tet_grid


def make_model(**overrides) -> SceneModel:
    cfg = config_lib.parse(SceneConfig, config_lib.apply_overrides({}, [f"{k}={v}" for k, v in overrides.items()]))
    return SceneModel(cfg)


def test_gradients_reach_every_parameter_of_theta():
    torch.manual_seed(0)
    model = make_model(background_type="mlp", **{"field.resolution": 32, "explicit.grid_resolution": 32})
    model.train()
    cams = orbit(2, elevation=20.0)
    out = model.renderer(cams, 24, 24, "lambertian", light=cams.position)  # x'1, implicit (Eq. 6–8)
    losses = regularizer_losses(out, RegularizerConfig(lambda_orient=1.0, lambda_opacity_entropy=1.0))
    mesh_out = model.explicit(cams.offset(90.0), 24, 24, "lambertian", light=cams.position)  # x'2, DMTet
    (out.rgb.mean() + mesh_out.rgb.mean() + sum(losses.values())).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"


def test_fixed_seed_gives_identical_render():
    def render() -> torch.Tensor:
        torch.manual_seed(3)
        model = make_model(**{"field.resolution": 32})
        model.train()
        return model.renderer(orbit(1), 16, 16, generator=torch.Generator().manual_seed(5)).rgb

    assert torch.equal(render(), render())


def test_occupancy_skipping_matches_full_evaluation():
    torch.manual_seed(0)
    model = make_model(**{"field.resolution": 32})
    model.eval()
    cams = orbit(3, elevation=10.0)
    full = model.renderer(cams, 32, 32).rgb  # before any update every cell counts as occupied
    model.renderer.grid.update(model.field.density)
    assert model.renderer.grid.fraction() < 0.5  # the blob leaves most of the box empty
    skipped = model.renderer(cams, 32, 32).rgb
    diff = (full - skipped).abs()
    assert diff.max() < 0.03 and diff.mean() < 3e-3


def test_blob_and_tau_sign_convention():
    field = TriplaneField(TriplaneField.Config(init_std=0.0))
    centre, far = torch.zeros(1, 3), torch.tensor([[0.95, 0.0, 0.0]])
    assert field.tau(centre) > 0.1 > field.tau(far)  # inside: τ > ε
    assert 0 <= float(field.tau(far).detach()) < 1 and float(field.tau(centre).detach()) < 1
    sigma_eps = field.tau_threshold_density(0.1)
    assert torch.isclose(-torch.expm1(-torch.tensor(sigma_eps) * field.cfg.tau_step), torch.tensor(0.1))
    # normals of the blob point away from the centre
    pts = torch.tensor([[0.3, 0.0, 0.0], [0.0, -0.3, 0.0], [0.0, 0.0, 0.3]])
    n = field.normals(pts)
    assert torch.allclose(n, pts / 0.3, atol=1e-3)


def test_ball_bound_turns_a_box_filling_field_into_a_ball():
    """A blob far larger than the cube fills it: with `ball` the surface is that sphere, not the cube's faces."""
    grid = tet_grid(32, 1.0)

    def surface_radii(ball: float) -> torch.Tensor:
        field = TriplaneField(TriplaneField.Config(init_std=0.0, blob_radius=5.0, ball=ball))
        mesh = marching_tets(grid.verts, field.tau(grid.verts).detach() - 0.1, grid.all_tets())
        return mesh.verts.norm(dim=-1)

    assert surface_radii(0.0).numel() == 0  # it fills the whole cube: no crossing inside the grid
    r = surface_radii(0.8)
    assert 0.8 - grid.cell_size < r.min() and r.max() < 0.8 + 2 * grid.cell_size  # a hard step: within a tet's edge
    inside = TriplaneField(TriplaneField.Config(ball=0.8))
    plain = TriplaneField(TriplaneField.Config())
    plain.load_state_dict(inside.state_dict())
    x = torch.tensor([[0.5, 0.2, 0.0], [0.7, 0.7, 0.0]])  # |x| 0.54 inside the ball, 0.99 outside it
    assert torch.equal(inside.density(x)[0], plain.density(x)[0]) and inside.density(x)[1] == 0


def test_ball_bound_of_a_laid_out_scene_is_one_ball_per_object():
    """Two blobs of radius 0.32 at z = ±0.36 with `ball` 0.75 (blob_radius 0.5): each object is bounded by a ball
    of 0.75 · 0.32 / 0.5 = 0.48 around its own centre, not by one ball at the origin."""
    cfg = TriplaneField.Config(ball=0.75, blobs=[[0.0, 0.0, 0.36, 0.32], [0.0, 0.0, -0.36, 0.32]])
    field = TriplaneField(cfg)
    x = torch.tensor(
        [
            [0.0, 0.0, 0.8],  # 0.44 above the top centre: inside its ball, though 0.8 from the origin
            [0.0, 0.0, -0.8],  # the same below the bottom one
            [0.0, 0.5, 0.0],  # 0.5 from the origin, 0.62 from each centre: outside both
            [0.0, 0.45, 0.36],  # 0.45 beside the top centre: inside
        ]
    )
    assert (field.density(x) > 0).tolist() == [True, True, False, True]
    d = field.bound_distance(x)  # signed distance to the nearer ball of radius 0.48, > 0 inside
    assert torch.allclose(d, torch.tensor([0.04, 0.04, 0.48 - math.hypot(0.5, 0.36), 0.03]), atol=1e-6)
    assert TriplaneField(TriplaneField.Config()).bound_distance(x) is None  # no ball: the cube alone


def test_start_radius_moves_the_single_blob_and_nothing_else():
    """`start_radius` widens the one start blob (σ > 0 further out) but keeps its bound at `ball`; a laid-out
    scene, whose blobs come from the layout and whose bounds scale with `blob_radius`, is the same field."""
    x = torch.tensor([[0.6, 0.0, 0.0], [0.0, 0.0, 0.74], [0.0, 0.0, 0.76]])  # [3,3]
    torch.manual_seed(0)
    plain = TriplaneField(TriplaneField.Config(init_std=0.0, ball=0.75))
    wide = TriplaneField(TriplaneField.Config(init_std=0.0, ball=0.75, start_radius=0.7))
    assert plain.blob(x)[0] < 0 < wide.blob(x)[0]  # 0.6 from the centre: outside r = 0.5, inside r = 0.7
    assert wide.density(x)[1] > 0 and wide.density(x)[2] == 0  # the bound stays at 0.75, not 0.75 · 0.7 / 0.5
    blobs = [[0.0, 0.0, 0.36, 0.32], [0.0, 0.0, -0.36, 0.32]]
    pair, pair_wide = (TriplaneField(TriplaneField.Config(ball=0.75, blobs=blobs, start_radius=r)) for r in (0.0, 0.7))
    pair_wide.load_state_dict(pair.state_dict())
    y = torch.rand(512, 3) * 2 - 1  # [512,3] the cube
    assert torch.equal(pair.density(y), pair_wide.density(y))


def test_blob_axes_shape_the_start_blob_but_not_the_bound():
    """`blob_axes` (0.8, 0.8, 1.5) stretch the start blob up and narrow it across: σ's bias is positive 0.6 up
    and negative 0.45 across, the ball's the other way round; the round bound stays the ball of `ball`."""
    x = torch.tensor([[0.0, 0.0, 0.6], [0.45, 0.0, 0.0], [0.0, 0.0, 0.74], [0.0, 0.0, 0.76]])  # [4,3]
    ball = TriplaneField(TriplaneField.Config(init_std=0.0, ball=0.75))
    tall = TriplaneField(TriplaneField.Config(init_std=0.0, ball=0.75, blob_axes=[0.8, 0.8, 1.5]))
    assert ball.blob(x)[0] < 0 < tall.blob(x)[0] and tall.blob(x)[1] < 0 < ball.blob(x)[1]
    assert tall.density(x)[2] > 0 and tall.density(x)[3] == 0
    assert torch.equal(ball.bound_distance(x), tall.bound_distance(x))
    with pytest.raises(ConfigError, match=r"field.blob_axes: expected \[x, y, z\]"):
        TriplaneField.Config(blob_axes=[1.0, 2.0]).check("field")


def test_normals_are_skipped_only_where_the_weight_is_negligible():
    """A dense shell (a sharp ball): samples behind its surface have w ≈ 0 and get no normal; at the default
    threshold the lambertian render is within one 8-bit level (1/255) of computing every normal, and the kept
    normals are the field's own."""
    torch.manual_seed(0)
    model = make_model(**{"field.resolution": 32, "field.blob_density": 200.0, "renderer.num_samples": 48})
    model.eval()
    model.renderer.grid.update(model.field.density)
    cams = orbit(2, elevation=20.0)
    default = model.renderer.cfg.normal_weight_min
    renders = {}
    for th in (0.0, default):
        model.renderer.cfg.normal_weight_min = th
        renders[th] = model.renderer(cams, 24, 24, "lambertian", light=cams.position)
    torch.testing.assert_close(renders[default].rgb, renders[0.0].rgb, rtol=0, atol=1 / 255)
    w = renders[0.0].weights
    keep = w > default
    assert 0.05 < keep.float().mean() < 0.8  # a real share of the samples is skipped, not all or none
    x_dirs = renders[default].normals_dot_dirs
    assert torch.equal(x_dirs[~keep], torch.zeros_like(x_dirs[~keep]))
    torch.testing.assert_close(x_dirs[keep], renders[0.0].normals_dot_dirs[keep])


def test_bucketed_rows_pad_little_and_repeat_across_calls():
    for n in [1, 64, 65, 1000, 4097, 20916, 45536, 1 << 20]:
        assert n <= bucket_rows(n) <= max(64, n * 1.125)
    # every N of 4k–50k, as the renderers ask for, lands on few sizes: 8 an octave
    assert len({bucket_rows(n) for n in range(4000, 50001)}) <= 8 * 4


def test_padding_the_mlp_rows_changes_no_output_and_no_gradient():
    torch.manual_seed(0)
    field = TriplaneField(TriplaneField.Config(resolution=16))
    x = torch.rand(1001, 3) * 2 - 1  # 1001 rows: padded to 1024 inside the field
    with precision.use("fp32"):  # the reference below runs the MLP without autocast
        sigma, albedo = field(x)
    (sigma.sum() + albedo.square().sum()).backward()
    grads = [p.grad.clone() for p in field.parameters()]
    field.zero_grad()
    raw = field.net(field.encode(x)[0])  # the same MLP on exactly N rows
    sigma_ref = F.softplus(raw[:, 0] + field.blob(x))
    (sigma_ref.sum() + torch.sigmoid(raw[:, 1:]).square().sum()).backward()
    torch.testing.assert_close(sigma, sigma_ref, rtol=1e-6, atol=1e-6)
    for g, p in zip(grads, field.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)


def test_appearance_channels_colour_the_field_without_touching_its_density():
    """Appearance planes start blank (θ as without them), feed the albedo only, and have their own TV term."""
    torch.manual_seed(0)
    with_app = TriplaneField(TriplaneField.Config(resolution=16, appearance_channels=4))
    plain = TriplaneField(TriplaneField.Config(resolution=16))
    plain.net.load_state_dict(with_app.net.state_dict())
    plain.planes.data.copy_(with_app.planes.data[:, : plain.cfg.channels])
    x = torch.rand(500, 3) * 2 - 1
    with precision.use("fp32"):
        torch.testing.assert_close(with_app(x), plain(x))  # blank appearance: the same field
        with torch.no_grad():
            with_app.planes[:, plain.cfg.channels :].normal_()
        (sigma, albedo), (sigma_plain, albedo_plain) = with_app(x), plain(x)
    torch.testing.assert_close(sigma, sigma_plain)  # density never reads the appearance planes
    assert (albedo - albedo_plain).abs().mean() > 0.01
    losses = field_regularizer_losses(with_app, RegularizerConfig(lambda_plane_tv=1.0, lambda_appearance_tv=1.0), 0)
    assert losses["loss_plane_tv"] == plane_tv_loss(plain.planes) and losses["loss_appearance_tv"] > 0
    sigma, albedo = with_app(torch.zeros(0, 3))  # no points (an empty DMTet band): empty outputs, no error
    assert sigma.shape == (0,) and albedo.shape == (0, 3)


def test_appearance_sides_paint_the_front_without_its_mirror_image_on_the_back():
    """Colour pulled onto a front point (x > 0) through the appearance planes alone reaches the point mirrored
    through the yz plane (−x, y, z) on one set of planes, and leaves it alone with one set per side."""
    x_front = torch.tensor([[0.6, 0.1, -0.2]])
    x_back = x_front * torch.tensor([-1.0, 1.0, 1.0])
    moved = {}
    for sides in (False, True):
        torch.manual_seed(0)
        field = TriplaneField(TriplaneField.Config(resolution=16, appearance_channels=4, appearance_sides=sides))
        with precision.use("fp32"):
            before, front_before = field(x_back)[1].detach(), field(x_front)[1].detach()
            opt = torch.optim.Adam([field.planes, *([field.far_side] if sides else [])], lr=0.05)
            for _ in range(30):
                opt.zero_grad()
                field(x_front)[1].sum().backward()  # darken the front point
                field.planes.grad[:, : field.cfg.channels] = 0  # the geometry planes held
                opt.step()
            moved[sides] = float((field(x_back)[1].detach() - before).abs().max())
            assert (field(x_front)[1] < front_before - 0.05).all()  # the front darkens either way
    assert moved[False] > 0.1 and moved[True] < 1e-3, moved


def test_colours_alone_holds_the_density_and_lets_the_albedo_learn():
    """Inside `colours_alone` σ carries no gradient and the albedo does; outside, both; the flag is restored
    even when the block raises. With appearance channels only they carry the albedo's gradient, and with an axis
    only the plane across it."""
    torch.manual_seed(0)
    field, x = TriplaneField(TriplaneField.Config(resolution=16)), torch.rand(64, 3) * 2 - 1
    with field.colours_alone():
        sigma, albedo = field(x)
    assert not sigma.requires_grad and albedo.requires_grad
    sigma_free, _ = field(x)
    assert sigma_free.requires_grad and torch.equal(sigma, sigma_free.detach())
    try:
        with field.colours_alone():
            raise RuntimeError
    except RuntimeError:
        pass
    assert not field.colour_only
    torch.manual_seed(0)  # with appearance channels: only they learn, the MLP and the geometry planes do not
    field = TriplaneField(TriplaneField.Config(resolution=16, appearance_channels=4))
    with field.colours_alone():
        field(x)[1].sum().backward()
    c = field.cfg.channels
    assert all(p.grad is None for p in field.net.parameters()) and field.planes.grad[:, :c].abs().max() == 0
    assert field.planes.grad[:, c:].abs().sum() > 0
    field = TriplaneField(TriplaneField.Config(resolution=16, appearance_channels=4, appearance_sides=True))
    x = x[x[:, 0].abs() > 0.2]  # clear of the sides' blend across x = 0
    with field.colours_alone((0, 1)):  # a camera on +x: only the yz plane learns, at points with x > 0 (near side)
        field(x)[1].sum().backward()
    assert field.planes.grad[:2].abs().max() == 0 and field.far_side.grad.abs().max() < 1e-5  # e^(−0.2/0.02)
    assert field.planes.grad[2, c:].abs().sum() > 1e-3 and field.facing is None
    field.zero_grad()
    with field.colours_alone((0, -1)):  # a camera on −x: the far side alone
        field(x)[1].sum().backward()
    assert field.planes.grad.abs().max() < 1e-5 and field.far_side.grad[2].abs().sum() > 1e-3


def test_albedo_range_scales_the_sigmoid_into_it():
    """`albedo_range` [lo, hi] maps the same logits into [lo, hi] (default [0, 1]: the plain sigmoid)."""
    torch.manual_seed(0)
    plain = TriplaneField(TriplaneField.Config())
    ranged = TriplaneField(TriplaneField.Config(albedo_range=[0.05, 0.98]))
    ranged.load_state_dict(plain.state_dict())
    x = torch.rand(256, 3) * 1.6 - 0.8
    c, c_ranged = plain.albedo(x), ranged.albedo(x)
    assert torch.allclose(c_ranged, 0.05 + 0.93 * c, atol=1e-6)
    with torch.no_grad():
        plain.net[-1].bias[1:] = 100.0  # saturated logits: the plain sigmoid reaches 1, the ranged one stops at hi
    ranged.load_state_dict(plain.state_dict())
    assert plain.albedo(x).max() == 1.0 and ranged.albedo(x).max() <= 0.98 + 1e-6


def test_a_decal_starts_clear_and_only_a_loss_inside_colours_alone_paints_it():
    """`appearance: decal` starts as the field without it (α ≈ 0.25 %). With `appearance_learns: colours_alone`
    a loss outside that block (SDS, D) does not reach the appearance planes or their map, and one inside it
    paints a point black over a saturated white body in a few steps."""
    torch.manual_seed(0)
    x = torch.tensor([[0.3, 0.1, -0.2]])
    cfg = TriplaneField.Config(resolution=16, appearance_channels=4, appearance="decal", appearance_gain=10.0)
    field = TriplaneField(dataclasses.replace(cfg, appearance_learns="colours_alone"))
    plain = TriplaneField(TriplaneField.Config(resolution=16))
    plain.load_state_dict({**field.state_dict(), "planes": field.planes[:, : field.cfg.channels]}, strict=False)
    assert (field(x)[1] - plain(x)[1]).abs().max() < 2e-3
    field(x)[1].sum().backward()  # outside colours_alone
    c = field.cfg.channels
    assert field.planes.grad[:, c:].abs().max() == 0 and field.texture.weight.grad is None
    assert field.planes.grad[:, :c].abs().sum() > 0  # the body learns
    with torch.no_grad():
        field.net[-1].bias[1:] = 10.0  # a saturated white body
    opt = torch.optim.Adam([field.planes, *field.texture.parameters()], lr=0.05)
    with precision.use("fp32"):
        for _ in range(40):
            opt.zero_grad()
            with field.colours_alone():
                field(x)[1].sum().backward()  # darken the point
            opt.step()
        assert field(x)[1].max() < 0.1


def test_appearance_keys_without_appearance_channels_fail_with_what_to_do():
    """A decal, a gain or a blend on appearance planes that are not there is a config mistake, told in one line."""
    with pytest.raises(ConfigError, match="field.appearance_gain acts on field.appearance_channels.*e.g. 4"):
        TriplaneField.Config(appearance_gain=10.0).check("field")
    TriplaneField.Config(appearance_gain=10.0, appearance_channels=4).check("field")


def test_without_decal_draws_the_body_alone():
    """Inside `without_decal` a painted decal is not drawn: the albedo is the body's, as with a clear decal."""
    torch.manual_seed(0)
    x = torch.rand(16, 3) - 0.5
    field = TriplaneField(TriplaneField.Config(resolution=16, appearance_channels=4, appearance="decal"))
    clear = field(x)[1]
    with torch.no_grad():
        field.planes[:, field.cfg.channels :] = 1.0
        field.texture.weight.fill_(2.0)  # α → 1, a white decal over the whole field
    assert (field(x)[1] - clear).abs().max() > 0.1
    with field.without_decal():
        body = field(x)[1]
        assert torch.allclose(body, torch.sigmoid(field._raw(x)[:, 1:4]))
        with torch.no_grad():  # not even read there (SDS and D's renders pay nothing for a decal they do not see)
            field.planes[:, field.cfg.channels :] = float("nan")
        assert torch.equal(field(x)[1], body)
    assert field(x)[1].isnan().all()  # drawn again after the block


def test_appearance_channels_leave_the_geometry_features_as_they_are():
    """The geometry features reach the MLP with the same values in the same memory layout with appearance
    channels as without (bf16 matmuls round by layout: a decal that changed it changed the run's trajectory)."""
    torch.manual_seed(0)
    plain = TriplaneField(TriplaneField.Config(resolution=16))
    torch.manual_seed(0)
    decal = TriplaneField(TriplaneField.Config(resolution=16, appearance_channels=4, appearance="decal"))
    assert torch.equal(plain.planes, decal.planes[:, : plain.cfg.channels])  # the same random start
    x = torch.rand(64, 3) - 0.5
    a, b = plain.encode(x)[0], decal.encode(x)[0]
    assert torch.equal(a, b) and a.stride() == b.stride()
