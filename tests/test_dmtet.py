"""DMTet (Eq. 9): tet grid, marching tetrahedra, the renderer's gradients and silhouette fitting."""

import math

import pytest
import torch
import trimesh

from real3d import precision
from real3d.cameras import Cameras, orbit
from real3d.field import TriplaneField
from real3d.render.dmtet import DMTetGeometry, DMTetRenderer, marching_tets, tet_grid
from real3d.render.nerf import ray_box
from real3d.render.shading import ShadingConfig, SolidBackground
from tests.analytic_fields import SphereField


def make_renderer(field, **cfg) -> DMTetRenderer:
    return DMTetRenderer(
        DMTetRenderer.Config(**cfg),
        field=field,
        background=SolidBackground(SolidBackground.Config()),
        shading=ShadingConfig(),
    )


@pytest.mark.parametrize("res", [32, 64])
def test_dmtet_grid_spans_cube_with_positive_tets(res):
    grid = tet_grid(res, 1.0)
    tets = grid.all_tets()
    v = grid.verts[tets]  # [T,4,3]
    vol = torch.linalg.det(v[:, 1:] - v[:, :1]) / 6
    assert tets.shape == (6 * res**3, 4)
    assert (vol > 0).all(), "every tet must be positively oriented"
    assert torch.allclose(vol.sum(), torch.tensor(8.0), rtol=1e-4), "tets tile the cube exactly"
    assert grid.verts.min() == -1.0 and grid.verts.max() == 1.0
    assert tet_grid(res, 1.0) is grid, "grids are cached"


def test_dmtet_sphere_meshes_to_watertight_outward_sphere():
    grid, radius = tet_grid(32, 1.0), 0.53
    field = SphereField(radius)
    mesh = marching_tets(grid.verts, field.tau(grid.verts) - 0.1, grid.all_tets())
    r = mesh.verts.detach().norm(dim=-1)
    assert (r - radius).abs().max() < grid.cell_size
    tm = trimesh.Trimesh(mesh.verts.detach().numpy(), mesh.faces.numpy(), process=False)
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.volume == pytest.approx(4 / 3 * torch.pi * radius**3, rel=0.03)  # positive: outward winding
    normals, centres = mesh.face_normals().detach(), mesh.verts.detach()[mesh.faces].mean(1)
    big = normals.norm(dim=-1) > 1e-6
    assert ((normals * centres).sum(-1)[big] > 0).all(), "every face normal points away from the centre"


@pytest.mark.parametrize("eps", [0.1, 0.6])
def test_a_field_cut_by_its_ball_meshes_on_the_ball_not_a_staircase(eps):
    """A blob larger than the ball is cut by it (τ ≈ 0.9 inside, 0 outside). Read through τ − ε alone, marching
    tets puts each vertex at one fraction of its edge wherever the bound crosses it: terraces a third of a cell
    deep. Intersected with the bound's distance (`level_set`), the surface is the ball itself."""
    field = TriplaneField(TriplaneField.Config(init_std=0.0, blob_radius=5.0, blob_density=60.0, ball=0.73))
    geometry = DMTetGeometry(32, 1.0, eps, deform_scale=0.0, band_cells=1)
    grid, cell = geometry.grid, geometry.grid.cell_size
    stepped = marching_tets(grid.verts, field.tau(grid.verts).detach() - eps, grid.all_tets())
    assert stepped.verts.norm(dim=-1).std() > 0.1 * cell
    mesh = geometry.mesh(field)
    r = mesh.verts.detach().norm(dim=-1)
    assert (r - 0.73).abs().mean() < 0.01 * cell and (r - 0.73).abs().max() < 0.1 * cell  # chords of a curve
    tm = trimesh.Trimesh(mesh.verts.detach().numpy(), mesh.faces.numpy())
    assert tm.is_watertight and tm.volume == pytest.approx(4 / 3 * math.pi * 0.73**3, rel=0.02)


def test_dmtet_renderer_gradients_reach_theta_and_deformation():
    field = TriplaneField(TriplaneField.Config(resolution=32))
    renderer = make_renderer(field, grid_resolution=32)
    cams = orbit(2, 20.0, 2.5, 45.0)
    out = renderer(cams, 48, 48, "lambertian", light=torch.nn.functional.normalize(cams.position, dim=-1))
    assert out.rgb.shape == (2, 48, 48, 3) and out.opacity.shape == (2, 48, 48, 1)
    assert 0.02 < out.opacity.mean() < 0.9
    (out.rgb.square().mean() + out.opacity.mean()).backward()
    assert field.planes.grad.abs().sum() > 0 and field.net[0].weight.grad.abs().sum() > 0
    assert renderer.geometry.deformation.grad.abs().sum() > 0


def test_dmtet_silhouette_gradient_matches_analytic_rate():
    """d(Σ opacity)/d(radius) through marching tets + antialiasing ≈ the growth rate of the sphere's image disc."""
    field = SphereField(0.5)
    renderer = make_renderer(field, grid_resolution=32, narrow_band=False)
    cams, size = orbit(3, 20.0, 2.5, 45.0), 64
    renderer(cams, size, size).opacity.sum().backward()
    focal = size / 2 / math.tan(math.radians(45.0) / 2)  # pixels
    d, r = 2.5, 0.5
    disc = focal * r / math.sqrt(d * d - r * r)  # image radius of the sphere in pixels
    rate = 2 * math.pi * disc * focal * d * d / (d * d - r * r) ** 1.5  # d(π disc²)/dr per view
    assert field.radius.grad / (3 * rate) == pytest.approx(1.0, abs=0.1)


def test_dmtet_narrow_band_matches_full_grid():
    field = SphereField(0.55)
    full = make_renderer(field, grid_resolution=64, narrow_band=False)
    band = make_renderer(field, grid_resolution=64, band_start_step=0)
    band.update_step(0)
    m_full, m_band = full.mesh(), band.mesh()
    assert m_band.faces.shape == m_full.faces.shape
    assert torch.allclose(m_band.verts.sort(0).values, m_full.verts.sort(0).values, atol=1e-5)
    n_band = band.geometry.band[0].numel()
    assert n_band < 0.25 * band.geometry.grid.verts.shape[0], "the band evaluates a fraction of the grid"


def silhouette_iou(opacity: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    m = opacity > 0.5
    return ((m & target).sum((1, 2, 3)) / (m | target).sum((1, 2, 3))).float()


@precision.use("fp32")
def test_dmtet_shape_moves_from_sphere_to_cube_silhouettes():
    """θ starts as the field's density blob (a ball); 8 cube silhouettes through DMTet + raster move it to a cube."""
    torch.manual_seed(0)
    field = TriplaneField(TriplaneField.Config(resolution=32))
    renderer = make_renderer(field, grid_resolution=32)  # narrow band on, as in training
    cams = Cameras(
        torch.arange(8.0) * 45, torch.tensor([25.0, -25.0] * 4), torch.full((8,), 2.5), torch.full((8,), 45.0)
    )
    size, half = 48, 0.45
    rays_o, rays_d = cams.rays(size, size)
    t_near, t_far = ray_box(rays_o.reshape(-1, 3), rays_d.reshape(-1, 3), half)
    target = (t_far > t_near).reshape(8, size, size, 1)
    opt = torch.optim.Adam(renderer.parameters(), lr=0.01)
    with torch.no_grad():
        start = silhouette_iou(renderer(cams, size, size).opacity, target).mean()
    for step in range(60):
        renderer.update_step(step)
        loss = (renderer(cams, size, size).opacity - target.float()).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = silhouette_iou(renderer(cams, size, size).opacity, target)
    assert start < 0.6
    assert end.mean() > 0.9, end


def test_dmtet_renders_an_empty_field_as_the_background():
    """Nothing inside τ > ε (no blob, a flat field): the render is the background, and no field call fails on
    zero points (one object alone of a laid-out scene can be empty in a band)."""
    field = TriplaneField(TriplaneField.Config(resolution=16, init_std=0.0, blob_density=0.0))
    renderer = make_renderer(field, grid_resolution=32)
    assert (field.tau(renderer.geometry.grid.verts) < renderer.cfg.eps).all()
    for band_step in (False, True):
        renderer.train(band_step)
        renderer.update_step(0)
        out = renderer(orbit(1), 16, 16)
        assert out.opacity.sum() == 0 and torch.allclose(out.rgb, torch.ones_like(out.rgb))
