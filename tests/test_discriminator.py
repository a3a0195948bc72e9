import torch

from real3d.guidance.discriminator import ConvDiscriminator, PixelDiscriminator, diff_augment


def colour_batch(rgb: list[float], n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    base = torch.tensor(rgb).expand(n, size, size, 3)
    return (base + 0.05 * torch.randn(n, size, size, 3, generator=gen)).clamp(0, 1)


def test_losses_are_eq4_non_saturating():
    torch.manual_seed(0)
    d = ConvDiscriminator(ConvDiscriminator.Config(augment=False))
    d.eval()
    fake = torch.rand(4, 32, 32, 3)
    logits = d(fake)
    assert torch.allclose(d.generator_loss(fake), -torch.log(torch.sigmoid(logits)).mean(), atol=1e-5)


def test_discriminator_separates_and_pulls_renders_toward_reference():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    d = ConvDiscriminator(ConvDiscriminator.Config(lr=1e-3))
    real = lambda: colour_batch([0.9, 0.2, 0.2], 8, 32, gen)
    fake = torch.full((4, 48, 48, 3), 0.5)  # a grey render at another resolution (like the DMTet view)
    fake[..., 2] = 0.9
    for _ in range(60):
        stats = d.update(real(), [fake], gen)
    assert stats["d_real"] > 0.7 and stats["d_fake"] < 0.3, stats
    # θ's side of Eq. 4: descending −log D(x') moves a free render toward the reference colour
    pixels = fake.clone().requires_grad_(True)
    before = (pixels.detach() - torch.tensor([0.9, 0.2, 0.2])).abs().mean()
    opt = torch.optim.Adam([pixels], lr=0.02)
    for _ in range(40):
        opt.zero_grad()
        d.generator_loss(pixels.clamp(0, 1), gen).backward()
        opt.step()
    after = (pixels.detach().clamp(0, 1) - torch.tensor([0.9, 0.2, 0.2])).abs().mean()
    assert after < 0.6 * before


def test_diff_augment_is_differentiable_and_keeps_shape():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 16, 16, requires_grad=True)
    y = diff_augment(x * 2 - 1, gen)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_r1_penalty_runs_and_steps_persist():
    gen = torch.Generator().manual_seed(2)
    d = ConvDiscriminator(ConvDiscriminator.Config(r1_every=1, r1_gamma=10.0))
    stats = d.update(torch.rand(4, 32, 32, 3), [torch.rand(2, 64, 64, 3)], gen)
    assert stats["r1"] > 0 and int(d.state_dict()["steps"]) == 1


def ball(colour: list[float], centre: tuple[float, float], radius: float, size: int = 32) -> torch.Tensor:
    """One image [size,size,3]: a disc of `colour` on white."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    inside = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2)[..., None]
    return torch.where(inside, torch.tensor(colour), torch.ones(3))


def test_pixel_discriminator_sees_colours_not_shapes():
    """The per-pixel D scores an image by its colours alone: the same pixels shuffled score the same, and a
    saturated blue ball is told from the prior's blue and pulled toward it, whatever its size."""
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    d = PixelDiscriminator(PixelDiscriminator.Config())
    prior_blue, pure_blue = [0.12, 0.24, 0.88], [0.0, 0.0, 1.0]
    real = torch.stack([ball(prior_blue, (0.1 * i - 0.2, 0.0), 0.5 + 0.05 * i) for i in range(4)])
    fake = torch.stack([ball(pure_blue, (0.0, 0.1 * i - 0.2), 0.5 + 0.05 * i) for i in range(4)])
    for _ in range(100):
        stats = d.update(real, [fake], gen)
    assert stats["d_real"] > 0.6 and stats["d_fake"] < 0.4, stats
    d.eval()
    shuffled = fake.reshape(4, -1, 3)[:, torch.randperm(32 * 32, generator=gen)].reshape(4, 32, 32, 3)
    assert torch.allclose(d(shuffled), d(fake), atol=1e-4)
    big_real_colour = ball(prior_blue, (0.0, 0.0), 0.9)[None]  # the wrong size in the right colour passes
    assert torch.sigmoid(d(big_real_colour)) > torch.sigmoid(d(fake[:1]))
    pixels = fake.clone().requires_grad_(True)
    opt = torch.optim.Adam([pixels], lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        d.generator_loss(pixels.clamp(0, 1)).backward()
        opt.step()
    inside = fake[..., 0] == 0.0  # the ball's pixels
    moved = pixels.detach().clamp(0, 1)[inside].mean(0)
    assert (moved - torch.tensor(prior_blue)).norm() < 0.6 * (torch.tensor(pure_blue) - torch.tensor(prior_blue)).norm()


def test_an_object_only_pixel_discriminator_reads_colour_but_not_size():
    """With `object_only` the per-pixel D averages over the object's pixels: the prior's blue scores the same
    as a small ball or a large one, and the white background gets no gradient (nothing pulls the size)."""
    gen = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    d = PixelDiscriminator(PixelDiscriminator.Config(object_only=True))
    prior_blue, pure_blue = [0.12, 0.24, 0.88], [0.0, 0.0, 1.0]
    real = torch.stack([ball(prior_blue, (0.0, 0.1 * i), 0.3 + 0.05 * i) for i in range(4)])
    fake = torch.stack([ball(pure_blue, (0.1 * i, 0.0), 0.3 + 0.05 * i) for i in range(4)])
    for _ in range(100):
        stats = d.update(real, [fake], gen)
    assert stats["d_real"] > 0.6 and stats["d_fake"] < 0.4, stats
    d.eval()
    small, large = d(ball(prior_blue, (0.0, 0.0), 0.3)[None]), d(ball(prior_blue, (0.0, 0.0), 0.9)[None])
    gap = (d(real[:1]) - d(fake[:1])).abs()
    assert (small - large).abs() < 0.05 * gap, (small, large, gap)
    pixels = fake[:1].clone().requires_grad_(True)
    d.generator_loss(pixels).backward()
    assert pixels.grad is not None
    white = (fake[:1] == 1).all(-1)  # [1,H,W] background
    assert pixels.grad[white].abs().max() == 0 and pixels.grad[~white].abs().max() > 0


def test_colour_matching_pulls_the_inner_colour_and_leaves_edges_and_size_alone():
    """Feature matching on colour: x̃'s mean inner colour is its object's colour whatever the ball's size and
    its soft edge; a pure-blue render is pulled to it through its inner pixels only (edge and background get no
    gradient, so nothing pulls the outline), and a render in x̃'s colour costs 0 at any size."""
    from real3d.guidance.reference import colour_matching_loss, inner_object_pixels, object_colour

    prior_blue, pure_blue = torch.tensor([0.12, 0.24, 0.88]), [0.0, 0.0, 1.0]

    def soft_ball(colour, radius: float) -> torch.Tensor:  # a one-pixel ring half white, as a blurred sample's
        return (ball(colour, (0.0, 0.0), radius) + ball(colour, (0.0, 0.0), radius + 0.07)) / 2

    reals = torch.stack([soft_ball(prior_blue.tolist(), 0.3 + 0.1 * i) for i in range(4)])
    torch.testing.assert_close(object_colour(reals), prior_blue)
    for radius in (0.3, 0.8):
        assert float(colour_matching_loss(soft_ball(prior_blue.tolist(), radius)[None], prior_blue)) < 1e-10
    fake = soft_ball(pure_blue, 0.5)[None].requires_grad_(True)
    colour_matching_loss(fake, prior_blue).backward()
    inner = inner_object_pixels(fake)
    assert fake.grad is not None and fake.grad[~inner].abs().max() == 0 and fake.grad[inner].abs().max() > 0
    assert not inner[(fake.detach() - torch.tensor(pure_blue)).abs().amax(-1) > 1e-6].any()  # no edge pixel
    pixels = soft_ball(pure_blue, 0.5)[None].requires_grad_(True)
    opt = torch.optim.Adam([pixels], lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        colour_matching_loss(pixels, prior_blue).backward()
        opt.step()
    assert (object_colour(pixels.detach()) - prior_blue).norm() < 0.2 * (torch.tensor(pure_blue) - prior_blue).norm()
    assert float(colour_matching_loss(torch.ones(1, 8, 8, 3), prior_blue)) == 0.0  # nothing drawn: no pull


def test_solid_colour_pull_darkens_a_faint_object_along_its_hue_and_leaves_a_full_colour_alone():
    """colour_pull "solid": a faint orange fog (orange blended with white) is pulled away from white along its
    own hue toward x̃'s distance from white; a render as far from white as x̃ or further, whatever its hue or
    shade (a darker red, a feature x̃ lacks), costs 0 and gets no gradient."""
    from real3d.guidance.reference import colour_matching_loss, object_colour

    prior_orange = torch.tensor([0.88, 0.48, 0.04])
    fog = (0.35 * prior_orange + 0.65).tolist()  # a faint object: a third of the colour, the rest white
    pixels = ball(fog, (0.0, 0.0), 0.5)[None].requires_grad_(True)
    start = object_colour(pixels.detach())
    opt = torch.optim.SGD([pixels], lr=100.0)
    for _ in range(20):
        opt.zero_grad()
        colour_matching_loss(pixels, prior_orange, "solid").backward()
        opt.step()
    end = object_colour(pixels.detach())
    assert (1 - end).norm() > (1 - start).norm() + 0.5 * ((1 - prior_orange).norm() - (1 - start).norm())
    hue_start, hue_end = (1 - start) / (1 - start).norm(), (1 - end) / (1 - end).norm()
    assert (hue_end - hue_start).norm() < 1e-3  # still orange, only more of it
    for full in ([0.5, 0.0, 0.0], [0.1, 0.2, 0.9], prior_orange.tolist()):  # further from white, or as far
        other = ball(full, (0.0, 0.0), 0.5)[None].requires_grad_(True)
        loss = colour_matching_loss(other, prior_orange, "solid")
        loss.backward()
        assert float(loss.detach()) == 0.0 and other.grad is not None and other.grad.abs().max() == 0


def test_colour_matching_targets_come_from_x_tilde_of_the_same_side():
    """x̃'s colour per view word: a door drawn on the front shows in the front views' colour alone, so the back
    views of a render are not pulled toward it; a word with no x̃ of its own gets the mean of all of them."""
    from real3d.cameras import VIEW_WORDS, view_direction
    from real3d.guidance.reference import ReferenceConfig, object_colours_by_view, reference_views

    cfg = ReferenceConfig(count=12, overhead_fraction=0.0)
    words = [view_direction(a, e) for a, e in reference_views(cfg).tolist()]
    body, door = [0.1, 0.2, 0.8], [0.9, 0.9, 0.2]
    images = torch.stack([ball(door if w == "front" else body, (0.0, 0.0), 0.6) for w in words])
    colours = object_colours_by_view(images, cfg)
    assert colours.shape == (len(VIEW_WORDS), 3) and {"front", "side", "back"} <= set(words)
    torch.testing.assert_close(colours[VIEW_WORDS.index("front")], torch.tensor(door))
    torch.testing.assert_close(colours[VIEW_WORDS.index("back")], torch.tensor(body))
    share = words.count("front") / len(words)
    mean = share * torch.tensor(door) + (1 - share) * torch.tensor(body)
    torch.testing.assert_close(colours[VIEW_WORDS.index("overhead")], mean)  # no overhead x̃: all of them
