"""SDS (Eq. 2) gives exactly w(t)(ε̂ − ε) without touching the prior, t_max anneals, positional prompt
embedding interpolates the view prompts, x̃ is cached and reused, and SDS on a free image moves it to the
prompt's colour with the shipped prior."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from real3d import system as system_module
from real3d.config import parse
from real3d.errors import ConfigError
from real3d.guidance.prompts import PositionalPrompt, view_weights
from real3d.guidance.reference import ReferenceConfig, cache_path, reference_images, reference_prompts
from real3d.guidance.sds import SDSConfig, draw_t, optimize_image, sds, sds_rgb, t_max_at, weight
from real3d.jobs.generate import run_config
from real3d.priors.base import TextEmbedding
from real3d.priors.embedded import EmbeddedPrior
from real3d.system import Real3DSystem, build_prior, deterministic
from tests.test_generate import tiny


class LinearPrior:
    """A stand-in prior with a known ε̂(x_t, t, y) = 0.5·x_t + y·1 (y: the embedding's mean), 8 px pixels."""

    resolution = 8
    num_train_timesteps = 1000
    identity = "linear-test-prior"

    def __init__(self) -> None:
        self.alphas_cumprod = torch.linspace(0.999, 0.01, 1000)
        self.sampled: list[str] = []

    def encode_text(self, prompts: list[str]) -> TextEmbedding:
        cond = torch.stack([torch.full((2, 4), float(len(p))) for p in prompts])
        return TextEmbedding(cond, torch.zeros_like(cond))

    def predict_noise(
        self, x_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding, guidance_scale: float
    ) -> torch.Tensor:
        y = emb.uncond + guidance_scale * (emb.cond - emb.uncond)
        return 0.5 * x_t + y.mean(dim=(1, 2))[:, None, None, None]

    def encode_images(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb.permute(0, 3, 1, 2) * 2 - 1

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1).permute(0, 2, 3, 1) / 2

    def sample(
        self,
        prompts: list[str],
        n: int = 1,
        steps: int = 20,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        views: torch.Tensor | None = None,
    ) -> torch.Tensor:
        assert views is not None and views.shape == (len(prompts), 5)
        self.sampled += prompts
        return torch.rand(len(prompts) * n, 8, 8, 3, generator=generator)


@pytest.mark.parametrize("weighting", ["sigma2", "uniform", "snr"])
def test_sds_gradient_is_weighted_noise_residual(weighting: str) -> None:
    prior = LinearPrior()
    cfg = SDSConfig(guidance_scale=7.5, weighting=weighting, t_min=0.1, t_max=[0.9, 0.9])
    emb = prior.encode_text(["a red cube", "a cone"])
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    out = sds(prior, x, emb, cfg, generator=torch.Generator().manual_seed(3))
    out.loss.backward()
    gen = torch.Generator().manual_seed(3)  # the same t and ε again
    t = torch.randint(100, 900, (2,), generator=gen)
    eps = torch.randn(x.shape, generator=gen)
    a_bar = prior.alphas_cumprod[t]
    x_t = a_bar.sqrt()[:, None, None, None] * x.detach() + (1 - a_bar).sqrt()[:, None, None, None] * eps
    expected = weight(cfg, a_bar)[:, None, None, None] * (prior.predict_noise(x_t, t, emb, 7.5) - eps) / 2
    assert torch.equal(out.t, t)
    torch.testing.assert_close(x.grad, expected)
    torch.testing.assert_close(out.grad / 2, x.grad)  # g itself, returned for statistics


def test_sds_clips_gradients_and_reaches_renders_through_encode_images() -> None:
    prior = LinearPrior()
    rgb = torch.rand(1, 8, 8, 3, requires_grad=True)
    cfg = SDSConfig(guidance_scale=100.0, grad_clip=0.01, weighting="uniform")
    sds_rgb(prior, rgb, prior.encode_text(["a very long prompt indeed"]), cfg).loss.backward()
    assert rgb.grad.abs().max() <= 2 * 0.01 + 1e-7  # ∂x/∂rgb = 2
    assert rgb.grad.abs().max() >= 2 * 0.01 - 1e-7


def test_t_max_anneals_linearly() -> None:
    cfg = SDSConfig(t_max=[0.98, 0.5], anneal_steps=100)
    assert t_max_at(cfg, 0) == 0.98 and t_max_at(cfg, 50) == pytest.approx(0.74) and t_max_at(cfg, 500) == 0.5
    assert t_max_at(SDSConfig(t_max=[0.98, 0.5]), 500) == 0.98
    prior = LinearPrior()
    x = torch.zeros(256, 3, 8, 8, requires_grad=True)
    late = sds(prior, x, prior.encode_text(["a"] * 256), cfg, step=100, generator=torch.Generator().manual_seed(0))
    assert int(late.t.max()) < 500 and int(late.t.min()) >= 20


def test_guidance_scale_follows_its_schedule() -> None:
    """A CFG schedule [s0, start, end, s1] gives SDS the scale of its step: at the end step, the same
    gradient as the constant end scale, with the same t and ε."""
    prior, x = LinearPrior(), torch.randn(2, 3, 8, 8)
    emb = prior.encode_text(["a red cube", "a cone"])

    def grad(scale: float | list[float], step: int) -> torch.Tensor:
        cfg = SDSConfig(guidance_scale=scale, t_min=0.1, t_max=[0.9, 0.9])
        return sds(prior, x, emb, cfg, step, torch.Generator().manual_seed(5)).grad

    ramp = [100.0, 20.0, 7.5, 300.0]
    torch.testing.assert_close(grad(ramp, 50), grad(20.0, 50))
    torch.testing.assert_close(grad(ramp, 200), grad(13.75, 200))
    torch.testing.assert_close(grad(ramp, 300), grad(7.5, 300))
    assert not torch.allclose(grad(ramp, 300), grad(20.0, 300))
    with pytest.raises(ConfigError, match="sds.guidance_scale: every value must be >= 1.0"):
        parse(SDSConfig, {"guidance_scale": [0, 20.0, 0.5, 600]}, "sds")


def test_t_window_slides_down_with_t_max() -> None:
    cfg = SDSConfig(t_max=[0.98, 0.1], anneal_steps=100, t_window=0.2)
    prior = LinearPrior()
    x = torch.zeros(512, 3, 8, 8)
    emb = prior.encode_text(["a"] * 512)
    gen = torch.Generator().manual_seed(0)
    early, mid, late = (sds(prior, x, emb, cfg, step=s, generator=gen).t for s in (0, 50, 100))
    assert int(early.min()) >= 780 and int(early.max()) < 980  # U(0.78, 0.98), not U(0.02, 0.98)
    assert int(mid.min()) >= 340 and int(mid.max()) < 540
    assert int(late.min()) >= 20 and int(late.max()) < 100  # the bottom stops at t_min
    cfg.t_max = [0.98, 0.02]
    cfg.check("sds")  # the window may slide all the way down to t_min
    cfg.t_max = [0.98, 0.01]
    with pytest.raises(ConfigError, match=r"sds.t_max: expected \[start, end\], both at or above t_min=0.02"):
        cfg.check("sds")
    with pytest.raises(ConfigError, match="t_window: must be between 0.0 and 1.0"):
        parse(SDSConfig, {"t_window": 1.5}, "sds")


def test_t_cap_lowers_each_images_window_and_leaves_uncapped_draws_as_they_were() -> None:
    cfg = SDSConfig(t_max=[0.98, 0.5], anneal_steps=100, t_window=0.5)
    t = draw_t(cfg, 0, 1000, 512, torch.Generator().manual_seed(0), [1.0, 0.5] * 256)  # [B]
    nerf, dmtet = t[0::2], t[1::2]
    assert int(nerf.min()) >= 480 and int(nerf.max()) < 980  # U(0.48, 0.98): the step's own window
    assert int(dmtet.min()) >= 20 and int(dmtet.max()) < 500  # U(0.02, 0.5): the window slid under the cap
    assert float(dmtet.float().std()) > 100  # spread over the range, not one value
    late = draw_t(cfg, 100, 1000, 512, torch.Generator().manual_seed(0), [1.0, 0.5] * 256)
    assert int(late.max()) < 500  # a cap at or above t_max(step) changes nothing ...
    same = draw_t(cfg, 100, 1000, 512, torch.Generator().manual_seed(0))
    assert torch.equal(late, same)  # ... not even the random stream


def test_positional_prompt_weights_follow_the_camera_convention() -> None:
    az = torch.tensor([0.0, 90.0, -90.0, 180.0, -180.0, 45.0, 135.0, 0.0, 0.0])
    el = torch.tensor([15.0] * 7 + [60.0, 90.0])
    w = view_weights(az, el)  # columns: front, side, back, overhead
    torch.testing.assert_close(w.sum(1), torch.ones(9))
    torch.testing.assert_close(
        w[:5], torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]])
    )
    torch.testing.assert_close(w[5], torch.tensor([0.5, 0.5, 0, 0]))
    torch.testing.assert_close(w[6], torch.tensor([0, 0.5, 0.5, 0]))
    torch.testing.assert_close(w[7], torch.tensor([0.5, 0, 0, 0.5]))
    torch.testing.assert_close(w[8], torch.tensor([0.0, 0, 0, 1]))


def test_positional_prompt_interpolates_view_embeddings() -> None:
    prior = LinearPrior()
    pp = PositionalPrompt(prior, "a red cube")
    front, side = (len(f"a red cube, {v} view") for v in ("front", "side"))
    emb = pp(torch.tensor([0.0, 45.0, 90.0]), torch.tensor([0.0, 0.0, 0.0]))
    torch.testing.assert_close(emb.cond[:, 0, 0], torch.tensor([front, (front + side) / 2, side], dtype=torch.float))
    assert emb.uncond.shape == emb.cond.shape and emb.uncond.abs().sum() == 0


def test_side_and_back_views_take_their_own_prompts() -> None:
    """prompt_side / prompt_back (threestudio's): the front view keeps the prompt, the side and back views take
    theirs, interpolated by angle as the view words are; the overhead view keeps the prompt."""
    prior = LinearPrior()
    pp = PositionalPrompt(prior, "a red cube with a face", side="a red cube", back="a red")
    emb = pp(torch.tensor([0.0, 45.0, 90.0, 180.0, 0.0]), torch.tensor([0.0, 0.0, 0.0, 0.0, 89.0]))
    front, side, back, overhead = (
        len(f"{p}, {v} view")
        for p, v in [
            ("a red cube with a face", "front"),
            ("a red cube", "side"),
            ("a red", "back"),
            ("a red cube with a face", "overhead"),
        ]
    )
    torch.testing.assert_close(
        emb.cond[:, 0, 0], torch.tensor([front, (front + side) / 2, side, back, overhead], dtype=torch.float)
    )


def test_perp_neg_negatives_are_the_opposite_views() -> None:
    """sds.perp_neg = λ: a front view gets "…, back view" as its negative (weight λ), a back view "…, front
    view", a side view half of each; λ = 0 adds no negatives (plain CFG)."""
    prior = LinearPrior()
    pp = PositionalPrompt(prior, "a red cube")
    az, el = torch.tensor([0.0, 90.0, 180.0, -90.0]), torch.zeros(4)
    assert pp(az, el).negative is None
    emb = pp(az, el, perp_neg=2.0)
    front, back = (len(f"a red cube, {v} view") for v in ("front", "back"))
    assert emb.negative is not None and emb.negative.shape == (4, 2, 2, 4)
    assert emb.negative[:, 0, 0, 0].tolist() == [front] * 4 and emb.negative[:, 1, 0, 0].tolist() == [back] * 4
    torch.testing.assert_close(emb.negative_weight, torch.tensor([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0], [1.0, 1.0]]))
    assert len(emb.repeat(3)) == 12 and emb.repeat(3).negative_weight.shape == (12, 2)


def test_reference_images_are_cached_and_reused(tmp_path: Path) -> None:
    prior = LinearPrior()
    cfg = ReferenceConfig(count=20, batch=8, cache_dir=str(tmp_path), overhead_fraction=0.1)
    prompts = reference_prompts("a red cube", cfg)
    assert len(prompts) == 20 and prompts.count("a red cube, overhead view") == 2
    assert {p.split(", ")[1] for p in prompts} == {"front view", "side view", "back view", "overhead view"}
    first = reference_images(prior, "a red cube", cfg, progress=False)
    assert first.shape == (20, 8, 8, 3) and first.dtype == torch.uint8 and len(prior.sampled) == 20
    again = reference_images(prior, "a red cube", cfg, progress=False)
    assert torch.equal(first, again) and len(prior.sampled) == 20, "the second call must read the cache"
    assert cache_path(prior, "a red cube", ReferenceConfig(count=21, cache_dir=str(tmp_path))) != cache_path(
        prior, "a red cube", cfg
    )
    assert cache_path(prior, "a blue cube", cfg) != cache_path(prior, "a red cube", cfg)
    assert not list(tmp_path.glob("*.tmp*"))


def test_sds_on_a_free_image_paints_the_prompt_colour() -> None:
    torch.set_num_threads(1)  # small convolutions: one thread is fastest on a shared CPU
    prior = EmbeddedPrior.from_pretrained()
    emb = PositionalPrompt(prior, "a blue cube")(torch.tensor([0.0]), torch.tensor([15.0]))
    cfg = SDSConfig(guidance_scale=20.0, t_max=[0.98, 0.3], anneal_steps=40)
    rgb = optimize_image(prior, emb, cfg, steps=40, lr=0.05, generator=torch.Generator().manual_seed(0))
    centre = rgb[0, 8:24, 8:24].reshape(-1, 3).mean(0)
    assert centre[2] > centre[0] + 0.2 and centre[2] > centre[1] + 0.2, f"centre colour {centre.tolist()}"


def test_free_image_sds_starts_from_given_images() -> None:
    prior = EmbeddedPrior.from_pretrained()
    emb = PositionalPrompt(prior, "a blue cube")(torch.tensor([0.0, 90.0]), torch.tensor([15.0, 15.0]))
    r = prior.resolution
    start = 0.05 + 0.9 * torch.rand(2, r, r, 3, generator=torch.Generator().manual_seed(0))
    cfg = SDSConfig(guidance_scale=20.0, t_max=[0.5, 0.5])
    assert torch.allclose(optimize_image(prior, emb, cfg, steps=0, init=start), start, atol=1e-5)
    moved = optimize_image(prior, emb, cfg, steps=3, lr=0.05, generator=torch.Generator().manual_seed(0), init=start)
    assert 0 < (moved - start).abs().mean() < 0.1  # SDS edits the given images, it does not replace them


def test_dmtet_t_max_caps_the_timesteps_of_dmtets_draws_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """system.dmtet_t_max: in a step that draws both renderers, the DMTet render's t stays under the cap while
    the NeRF's keeps the preset's window (at step 0, U(0.48, 0.98))."""
    drawn: list[torch.Tensor] = []

    def recording_sds(*args: object, **kwargs: object) -> object:
        out = sds(*args, **kwargs)
        drawn.append(out.t)
        return out

    monkeypatch.setattr(system_module, "sds", recording_sds)
    both = ["system.p_nerf=1.0", "system.p_dmtet=1.0", "system.lambda_adv=0", "system.fit_level_every=0"]
    cfg = run_config("real3d", "a red cube", [*tiny(tmp_path), *both, "system.dmtet_t_max=0.3"])
    system = Real3DSystem(cfg, build_prior(cfg))
    with deterministic():
        for step in range(4):
            system.training_step(step, torch.Generator().manual_seed(step))
    n_t = system.prior.num_train_timesteps
    t = torch.stack(drawn)  # [steps, 2]: the NeRF's render, then DMTet's
    assert t.shape == (4, 2)
    assert int(t[:, 1].max()) < 0.3 * n_t and int(t[:, 0].min()) >= 0.4 * n_t
