"""The mesh regularizer of the explicit renderer (normal consistency), the NeRF's distortion and the field's own
(plane total variation), real3d/regularizers.py."""

from __future__ import annotations

import torch

from real3d.cameras import orbit
from real3d.field import TriplaneField
from real3d.regularizers import (
    RegularizerConfig,
    distortion_loss,
    field_regularizer_losses,
    normal_consistency_loss,
    plane_tv_loss,
    regularizer_losses,
)
from real3d.render.base import RenderOutput
from real3d.render.dmtet import DMTetRenderer, marching_tets, tet_grid
from real3d.render.nerf import NeRFRenderer
from real3d.render.shading import ShadingConfig, SolidBackground
from tests.analytic_fields import SphereField


def with_mesh(verts: torch.Tensor, faces: torch.Tensor) -> RenderOutput:
    z = torch.zeros(1, 1, 1, 3)
    return RenderOutput(rgb=z, opacity=z[..., :1], depth=z[..., :1], mesh_verts=verts, mesh_faces=faces)


def test_a_smooth_sphere_is_consistent_a_noisy_one_is_not_and_descent_smooths_it() -> None:
    grid = tet_grid(32, 1.0)
    mesh = marching_tets(grid.verts, SphereField(0.53).tau(grid.verts).detach() - 0.1, grid.all_tets())
    smooth = normal_consistency_loss(with_mesh(mesh.verts, mesh.faces))
    noise = torch.randn(mesh.verts.shape, generator=torch.Generator().manual_seed(0))
    verts = (mesh.verts + 0.3 * grid.cell_size * noise).requires_grad_(True)
    noisy = normal_consistency_loss(with_mesh(verts, mesh.faces))
    assert smooth is not None and noisy is not None
    assert smooth < 0.01 < 0.5 < noisy
    opt = torch.optim.Adam([verts], lr=2e-3)
    for _ in range(50):
        loss = normal_consistency_loss(with_mesh(verts, mesh.faces))
        assert loss is not None
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss < noisy / 5


def test_the_term_applies_to_the_dmtet_render_only() -> None:
    torch.manual_seed(0)
    field, bg = TriplaneField(TriplaneField.Config(resolution=16)), SolidBackground(SolidBackground.Config())
    shading = ShadingConfig()
    cfg = RegularizerConfig(lambda_normal_consistency=10.0)
    cams = orbit(1, 20.0, 2.5, 45.0)
    dmtet = DMTetRenderer(DMTetRenderer.Config(grid_resolution=16), field=field, background=bg, shading=shading)
    nerf = NeRFRenderer(NeRFRenderer.Config(num_samples=16), field=field, background=bg, shading=shading)
    losses = regularizer_losses(dmtet(cams, 16, 16), cfg)
    assert set(losses) == {"loss_normal_consistency"} and losses["loss_normal_consistency"] > 0
    losses["loss_normal_consistency"].backward()
    assert field.planes.grad is not None and field.planes.grad.abs().sum() > 0  # θ gets the gradient
    assert regularizer_losses(nerf(cams, 16, 16), cfg) == {}


def test_plane_tv_is_zero_on_constant_planes_and_descent_takes_out_texel_noise() -> None:
    torch.manual_seed(0)
    field = TriplaneField(TriplaneField.Config(resolution=32))
    smooth = torch.linspace(0, 1, 32).expand(3, 12, 32, 32)  # a ramp: steps of 1/31
    assert plane_tv_loss(torch.ones(3, 12, 32, 32)) == 0
    assert plane_tv_loss(smooth) < 2e-3 < 0.02 < plane_tv_loss(field.planes)  # ramp (1/31)², init noise 4·0.1²
    assert field_regularizer_losses(field, RegularizerConfig(), 0) == {}  # off by default
    ramp = RegularizerConfig(lambda_plane_tv=[100, 0.0, 2.0, 300])  # off until step 100, 2 from step 300
    assert field_regularizer_losses(field, ramp, 50) == {}
    tv = plane_tv_loss(field.planes)
    torch.testing.assert_close(field_regularizer_losses(field, ramp, 200)["loss_plane_tv"], tv)
    torch.testing.assert_close(field_regularizer_losses(field, ramp, 900)["loss_plane_tv"], 2 * tv)
    cfg = RegularizerConfig(lambda_plane_tv=1.0)
    before = plane_tv_loss(field.planes).item()
    opt = torch.optim.Adam([field.planes], lr=1e-2)
    for _ in range(30):
        loss = field_regularizer_losses(field, cfg, 0)["loss_plane_tv"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert plane_tv_loss(field.planes) < before / 5


def with_rays(weights: torch.Tensor, edges: torch.Tensor) -> RenderOutput:
    """A render whose rays [R] have weights [R,S] on intervals between sorted edges [R,S+1]."""
    z = torch.zeros(1, 1, 1, 3)
    intervals = torch.stack([edges[:, :-1], edges[:, 1:]], -1)
    return RenderOutput(rgb=z, opacity=z[..., :1], depth=z[..., :1], ray_weights=weights, intervals=intervals)


def test_distortion_is_the_double_sum_and_a_surface_costs_less_than_a_fog() -> None:
    gen = torch.Generator().manual_seed(0)
    weights, edges = torch.rand(6, 16, generator=gen) / 16, torch.rand(6, 17, generator=gen).sort(-1).values
    mid, length = (edges[:, 1:] + edges[:, :-1]) / 2, edges[:, 1:] - edges[:, :-1]
    pairs = weights[:, :, None] * weights[:, None, :] * (mid[:, :, None] - mid[:, None, :]).abs()
    brute = (pairs.sum((1, 2)) + (weights.square() * length).sum(-1) / 3).mean()
    assert torch.allclose(distortion_loss(with_rays(weights, edges)), brute, atol=1e-6)
    even = torch.linspace(0, 1, 33)[None]  # 32 equal intervals
    surface = torch.zeros(1, 32).index_fill(1, torch.tensor([20]), 1.0)  # all the weight in one interval
    fog = torch.zeros(1, 32).index_fill(1, torch.arange(8, 32), 1 / 24)  # the same weight over 24 of them
    assert distortion_loss(with_rays(surface, even)) < 0.02 < 0.2 < distortion_loss(with_rays(fog, even))


def test_distortion_reaches_theta_through_the_nerf_and_skips_dmtet() -> None:
    torch.manual_seed(0)
    field, bg = TriplaneField(TriplaneField.Config(resolution=16)), SolidBackground(SolidBackground.Config())
    cfg, cams = RegularizerConfig(lambda_distortion=1.0), orbit(1, 20.0, 2.5, 45.0)
    nerf = NeRFRenderer(NeRFRenderer.Config(num_samples=16), field=field, background=bg, shading=ShadingConfig())
    losses = regularizer_losses(nerf(cams, 16, 16), cfg)
    assert set(losses) == {"loss_distortion"} and losses["loss_distortion"] > 0
    losses["loss_distortion"].backward()
    assert field.planes.grad is not None and field.planes.grad.abs().sum() > 0
    dmtet = DMTetRenderer(DMTetRenderer.Config(grid_resolution=16), field=field, background=bg, shading=ShadingConfig())
    assert regularizer_losses(dmtet(cams, 16, 16), cfg) == {}


def test_albedo_logits_stay_where_the_sigmoid_still_bends() -> None:
    """A push toward pure blue (as SDS gives at high noise) under Adam drives the albedo's logits far past the
    sigmoid's bend, where a pull back (here: toward the prior's blue) no longer moves the colour; with the
    logit term the logits stay small and the pull brings the colour back."""
    pts = torch.rand(256, 3, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.6
    prior_blue = torch.tensor([0.12, 0.24, 0.88])

    def run(lam: float) -> tuple[float, float]:
        torch.manual_seed(0)
        field = TriplaneField(TriplaneField.Config(resolution=16))
        cfg = RegularizerConfig(lambda_albedo_logit=lam)
        opt = torch.optim.Adam(field.parameters(), lr=5e-3)
        for step in range(400):
            albedo = field.albedo(pts)
            if step < 150:  # SDS's first steps: bluer, at any cost
                push = -(albedo[:, 2] - albedo[:, :2].sum(1)).mean()
            else:  # a later force toward the prior's own blue
                push = (albedo - prior_blue).square().mean()
            loss = push + sum(field_regularizer_losses(field, cfg, step).values(), torch.zeros(()))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            error = (field.albedo(pts) - prior_blue).norm(dim=1).mean()
            return field.albedo_logits(pts).abs().max().item(), error.item()

    assert RegularizerConfig().lambda_albedo_logit == 0  # off by default
    logit_free, error_free = run(0.0)
    logit_held, error_held = run(0.1)
    assert logit_free > 15 and error_free > 0.15, (logit_free, error_free)  # the pull moves nothing
    assert logit_held < 8 and error_held < 0.08, (logit_held, error_held)
