"""The differentiable rasterizer (Eq. 10): coverage, interpolated attributes and silhouette gradients."""

import pytest
import torch
import trimesh

from real3d.analytic import render_sphere
from real3d.cameras import orbit
from real3d.errors import ConfigError
from real3d.render.raster import TorchRasterizer, interpolate, make_rasterizer, nvdiffrast_available, to_clip

RADIUS, SIZE = 0.6, 96


def sphere_mesh() -> tuple[torch.Tensor, torch.Tensor]:
    ico = trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)
    return torch.tensor(ico.vertices, dtype=torch.float32), torch.tensor(ico.faces)


def test_raster_mask_iou_against_ray_cast_sphere():
    verts, faces = sphere_mesh()
    cams = orbit(3, 20.0, 2.5, 45.0)
    raster = TorchRasterizer().rasterize(to_clip(verts, cams.mvp(SIZE, SIZE)), faces, SIZE, SIZE)
    _, target = render_sphere(cams, SIZE, SIZE, RADIUS)
    mask, target = raster.mask, target[..., 0] > 0
    iou = (mask & target).sum((1, 2)) / (mask | target).sum((1, 2))
    assert (iou >= 0.98).all(), iou


def test_raster_interpolates_position_depth_normal_of_front_surface():
    verts, faces = sphere_mesh()
    cams = orbit(2, 30.0, 2.5, 45.0)
    raster = TorchRasterizer().rasterize(to_clip(verts, cams.mvp(SIZE, SIZE)), faces, SIZE, SIZE)
    xyz = interpolate(verts, raster, faces)[raster.mask]  # [P,3]
    assert ((xyz.norm(dim=-1) - RADIUS).abs() < 0.01).all(), "points lie on the sphere"
    cam = cams.position[raster.mask.nonzero()[:, 0]]
    assert ((xyz * cam).sum(-1) > 0).all(), "the z-buffer keeps the near half"
    rays_o, rays_d = cams.rays(SIZE, SIZE)
    b = (rays_o * rays_d).sum(-1)
    t = -b - (b * b - (rays_o.square().sum(-1) - RADIUS**2)).clamp(min=0).sqrt()  # analytic ray distance
    depth = (xyz - cam).norm(dim=-1)
    assert (depth - t.reshape(2, SIZE, SIZE)[raster.mask]).abs().median() < 0.005


def test_raster_antialias_gives_silhouette_gradients():
    """Coverage of a growing sphere grows: d(Σ soft mask)/d(scale) ≈ the analytic rate 2·area."""
    verts, faces = sphere_mesh()
    cams = orbit(2, 0.0, 2.5, 45.0)
    scale = torch.tensor(1.0, requires_grad=True)
    clip = to_clip(verts * scale, cams.mvp(SIZE, SIZE))
    rast = TorchRasterizer()
    raster = rast.rasterize(clip, faces, SIZE, SIZE)
    hard = raster.mask[..., None].float()
    soft = rast.antialias(hard, raster, clip, faces)
    soft.sum().backward()
    assert hard.sum().grad_fn is None and scale.grad > 0
    rate = 2 * hard.sum()  # area of a small disc ∝ scale² (perspective changes it by a few percent)
    assert abs(float(scale.grad) / float(rate) - 1) < 0.15
    _, fine = render_sphere(cams, 4 * SIZE, 4 * SIZE, RADIUS)
    coverage = torch.nn.functional.avg_pool2d(fine.permute(0, 3, 1, 2), 4).permute(0, 2, 3, 1)  # 16 samples/pixel
    soft = soft.detach()
    assert (soft - coverage).abs().sum() < 0.9 * (hard - coverage).abs().sum(), "closer to the true pixel coverage"


def test_raster_backend_choice():
    assert isinstance(make_rasterizer("torch"), TorchRasterizer)
    auto = make_rasterizer("auto")
    assert (auto.nvdiffrast is not None) == nvdiffrast_available()
    assert auto._pick(torch.zeros(1, 3, 4)) is auto.torch, "CPU tensors always take the torch backend"
    if not nvdiffrast_available():
        with pytest.raises(ConfigError, match="nvdiffrast"):
            make_rasterizer("nvdiffrast")


@pytest.mark.skipif(not nvdiffrast_available(), reason="needs CUDA and nvdiffrast")
def test_raster_nvdiffrast_agrees_with_torch_backend():
    verts, faces = sphere_mesh()
    cams = orbit(2, 20.0, 2.5, 45.0)
    clip = to_clip(verts, cams.mvp(SIZE, SIZE))
    ref = TorchRasterizer().rasterize(clip, faces, SIZE, SIZE)
    nv = make_rasterizer("nvdiffrast")
    clip_gpu = clip.cuda().requires_grad_(True)
    out = nv.rasterize(clip_gpu, faces.cuda(), SIZE, SIZE)
    mask = out.mask.cpu()
    assert ((mask & ref.mask).sum() / (mask | ref.mask).sum()) > 0.995
    both = mask & ref.mask
    xyz_nv = interpolate(verts.cuda(), out, faces.cuda()).cpu()
    err = (xyz_nv[both] - interpolate(verts, ref, faces)[both]).abs().amax(-1)
    assert err.median() < 1e-4 and (err < 1e-3).float().mean() > 0.99  # a few edge pixels pick another face
    soft = nv.antialias(out.mask[..., None].float(), out, clip_gpu, faces.cuda())
    soft.sum().backward()
    radial = (clip_gpu.grad[..., :2] * clip_gpu.detach()[..., :2]).sum()
    assert radial > 0, "growing the outline increases coverage"


def test_raster_empty_and_behind_camera():
    verts, faces = sphere_mesh()
    cams = orbit(1, 0.0, 2.5, 45.0)
    rast = TorchRasterizer()
    behind = to_clip(verts + cams.position * 2, cams.mvp(32, 32))  # sphere behind the camera
    assert not rast.rasterize(behind, faces, 32, 32).mask.any()
    assert not rast.rasterize(to_clip(verts, cams.mvp(32, 32)), faces[:0], 32, 32).mask.any()


def test_raster_barycentrics_of_a_degenerate_triangle_are_finite():
    """A triangle that collapses to a point on screen (as slivers of a box-filling mesh do) gets the centroid,
    not 0/0: one such pixel made a whole turntable's judge score NaN."""
    from real3d.render.raster import _perspective_bary

    pos_clip = torch.tensor([[[0.1, 0.2, 0.5, 1.0], [0.1, 0.2, 0.5, 1.0], [0.1, 0.2, 0.5, 1.0]]])  # [1,3,4]
    faces = torch.tensor([[0, 1, 2]])
    face_id = torch.full((1, 4, 4), -1)
    face_id[0, 1, 2] = 0
    bary = _perspective_bary(pos_clip, faces, face_id, 4, 4)
    assert torch.isfinite(bary).all()
    assert torch.allclose(bary[0, 1, 2], torch.full((3,), 1 / 3))
