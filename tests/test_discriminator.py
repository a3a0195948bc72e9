import torch

from real3d.guidance.discriminator import ConvDiscriminator, diff_augment


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
