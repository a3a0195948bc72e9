import math

import torch

from real3d.cameras import CameraConfig, Cameras, orbit, project, ray_map, sample_views, view_code, view_direction


def test_point_projects_to_same_pixel_through_rays_and_mvp():
    cams = sample_views(CameraConfig(), 5, torch.Generator().manual_seed(1))
    H, W = 24, 32
    rays_o, rays_d = cams.rays(H, W)
    pix = torch.tensor([0, 7 * W + 5, 13 * W + 30, H * W - 1])  # a few pixels, row-major
    depth = torch.tensor([1.5, 2.0, 2.5, 3.0])
    pts = rays_o[:, pix] + rays_d[:, pix] * depth[None, :, None]  # [B,4,3]
    uv = project(pts, cams.mvp(H, W), H, W)
    expected = torch.stack([pix % W, pix // W], -1).float()
    assert torch.allclose(uv, expected.expand_as(uv), atol=1e-3)


def test_azimuth_zero_sees_the_front():
    cam = orbit(1, elevation=0.0, radius=3.0)
    assert torch.allclose(cam.position, torch.tensor([[3.0, 0.0, 0.0]]), atol=1e-6)
    H = W = 33
    rays_o, rays_d = cam.rays(H, W)
    centre = rays_d[0, (H // 2) * W + W // 2]
    assert torch.allclose(centre, torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)  # looks toward −x, at the front face
    # +y (the object's left side) appears on the image's right, +z up
    uv = project(torch.tensor([[[0.0, 0.5, 0.0], [0.0, 0.0, 0.5]]]), cam.mvp(H, W), H, W)[0]
    assert uv[0, 0] > W // 2 and abs(uv[0, 1] - H // 2) < 1e-4
    assert uv[1, 1] < H // 2 and abs(uv[1, 0] - W // 2) < 1e-4


def test_ray_map_says_where_each_side_of_the_object_lies():
    """ray_map: the front camera's middle pixel looks along −x; mirrored cameras (±a) give mirrored maps, left
    and right swapped and y negated, which differ (what view_code's sin a alone says only globally); the rays
    are each camera's own; no view is all zeros."""
    az, el = torch.tensor([0.0, 60.0, -60.0]), torch.tensor([0.0, 15.0, 15.0])
    rays = ray_map(view_code(az, el), 33)  # [3,3,33,33]
    torch.testing.assert_close(rays[0, :, 16, 16], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    mirrored = rays[2].flip(-1) * torch.tensor([1.0, -1.0, 1.0])[:, None, None]
    torch.testing.assert_close(rays[1], mirrored, atol=1e-6, rtol=0)
    assert (rays[1] - rays[2]).abs().max() > 0.5
    _, rays_d = Cameras(az, el, torch.full((3,), 2.5), torch.full((3,), 45.0)).rays(33, 33)
    torch.testing.assert_close(rays.flatten(2).transpose(1, 2), rays_d, atol=1e-5, rtol=0)
    assert ray_map(torch.zeros(2, 5), 8).eq(0).all()


def test_view_direction_words_and_offset():
    assert [view_direction(a, 10) for a in (0, 30, 90, -90, 170, -180)] == [
        "front",
        "front",
        "side",
        "side",
        "back",
        "back",
    ]
    assert view_direction(0, 75) == "overhead"
    cams = Cameras(torch.tensor([10.0]), torch.tensor([20.0]), torch.tensor([2.5]), torch.tensor([45.0]))
    v2 = cams.offset(90.0)
    assert v2.directions() == ["side"] and float(v2.azimuth) == 100.0
    # the second view keeps its distance to the origin
    assert math.isclose(float(v2.position.norm()), 2.5, rel_tol=1e-6)


def test_sampled_views_stay_in_configured_ranges():
    cfg = CameraConfig(azimuth_range=[-30.0, 30.0], elevation_range=[0.0, 20.0], radius_range=[2.0, 2.5])
    cams = sample_views(cfg, 256, torch.Generator().manual_seed(0))
    assert cams.azimuth.min() >= -30 and cams.azimuth.max() <= 30
    assert cams.elevation.min() >= 0 and cams.elevation.max() <= 20
    assert torch.allclose(cams.position.norm(dim=-1), cams.radius)


def test_azimuth_spread_schedule_opens_the_views_from_the_front():
    cfg = CameraConfig(azimuth_spread=[0.0, 30.0, 180.0, 300.0])
    gen = torch.Generator().manual_seed(0)
    early, mid, late = (sample_views(cfg, 512, gen, step).azimuth.abs() for step in (0, 150, 300))
    assert early.max() <= 30 and mid.max() <= 105 and mid.max() > 90
    assert late.max() > 170  # the whole configured range again
    # the default (180) draws exactly what the range alone draws: datasets and runs of before are unchanged
    plain = sample_views(CameraConfig(), 64, torch.Generator().manual_seed(3), step=0).azimuth
    assert torch.equal(plain, -180 + 360 * torch.rand(64, generator=torch.Generator().manual_seed(3)))


def test_azimuth_spread_that_misses_the_range_fails_with_its_message():
    import pytest

    from real3d.errors import ConfigError

    with pytest.raises(ConfigError, match="camera.azimuth_spread: each value must be >= 0 and reach into"):
        CameraConfig(azimuth_range=[100.0, 170.0], azimuth_spread=30.0).check("camera")
    CameraConfig(azimuth_range=[100.0, 170.0]).check("camera")  # the default spread leaves any range alone
