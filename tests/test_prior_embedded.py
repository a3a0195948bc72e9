"""Embedded prior: save/reload gives the same ε̂, CFG, training is resumable through the CLI, sampling CLI,
the shipped weights load offline on the CPU."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from real3d import precision
from real3d.cli import main
from real3d.errors import UserError
from real3d.priors.base import Prior, cfg_combine, perp_neg_combine
from real3d.priors.embedded import SHIPPED, EmbeddedPrior
from real3d.priors.train import TrainConfig, train
from tests.cpu import THREADS


def tiny_prior() -> EmbeddedPrior:
    torch.manual_seed(0)
    return EmbeddedPrior(EmbeddedPrior.Config(resolution=16, block_out_channels=[32, 32], attention_heads=2))


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """32 random 16 px images with toy-world captions, as train-prior reads them."""
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    captions = [f"a {c} cube, {v} view" for c in ("red", "blue") for v in ("front", "side", "back", "overhead")]
    np.savez(path, images=rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8), captions=np.array(captions * 4))
    return path


def test_save_and_reload_give_the_same_noise_prediction(tmp_path: Path) -> None:
    prior = tiny_prior()
    for p in prior.unet.parameters():  # not the zero-initialised output layer of a fresh UNet
        p.data += 0.01 * torch.randn_like(p)
    prior.save_pretrained(tmp_path / "p")
    again = EmbeddedPrior.from_pretrained(tmp_path / "p")
    assert isinstance(again, Prior)
    prior.requires_grad_(False)  # frozen like the reloaded one, so both run the same (traced) UNet
    emb = prior.encode_text(["a red cube, front view", "a blue ball, back view"])
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 700])
    with torch.no_grad():
        torch.testing.assert_close(
            again.predict_noise(x, t, emb, 5.0), prior.predict_noise(x, t, emb, 5.0), rtol=0, atol=0
        )
    assert again.identity == prior.identity
    assert json.loads((tmp_path / "p" / "config.json").read_text())["resolution"] == 16


def test_classifier_free_guidance_combines_conditional_and_unconditional() -> None:
    prior = tiny_prior()
    for p in prior.unet.parameters():
        p.data += 0.01 * torch.randn_like(p)
    emb = prior.encode_text(["a red cube"])
    assert emb.cond.shape == emb.uncond.shape == (1, 24, 384)
    assert not torch.allclose(emb.cond, emb.uncond)
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([500])
    with torch.no_grad():
        eps_c, eps_u = prior.denoiser(x, t, emb.cond), prior.denoiser(x, t, emb.uncond)
        torch.testing.assert_close(
            prior.predict_noise(x, t, emb, 3.0), cfg_combine(eps_u, eps_c, 3.0), atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(prior.predict_noise(x, t, emb, 1.0), eps_c)


def test_perp_neg_pushes_away_only_what_a_negative_does_not_share_with_the_prompt() -> None:
    """perp_neg_combine: a negative along δ = ε_y − ε_∅ changes nothing; one orthogonal to δ is subtracted whole;
    weight 0 is plain CFG. The prior's batched call equals the combination of its separate calls."""
    torch.manual_seed(0)
    u, d = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    ortho = torch.randn(2, 3, 4, 4)
    ortho -= (ortho * d).sum((1, 2, 3), keepdim=True) / d.pow(2).sum((1, 2, 3), keepdim=True) * d
    negatives = torch.stack([u + 2 * d, u + ortho], 1)  # [B,2,...]: along δ, orthogonal to δ
    w = torch.tensor([[1.0, 0.0], [0.0, 0.5]])
    out = perp_neg_combine(u, u + d, negatives, w, 3.0)
    torch.testing.assert_close(out[0], cfg_combine(u, u + d, 3.0)[0])
    torch.testing.assert_close(out[1], cfg_combine(u, u + d, 3.0)[1] - 3.0 * 0.5 * ortho[1])
    torch.testing.assert_close(
        perp_neg_combine(u, u + d, negatives, torch.zeros(2, 2), 3.0), cfg_combine(u, u + d, 3.0)
    )

    prior = tiny_prior()
    for p in prior.unet.parameters():
        p.data += 0.01 * torch.randn_like(p)
    emb = prior.encode_text(["a red cube, front view", "a red cube, side view"])
    back = prior.encode_text(["a red cube, back view"] * 2).cond
    emb.negative, emb.negative_weight = back[:, None], torch.tensor([[1.0], [0.25]])
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([500, 300])
    with torch.no_grad():
        eps_u, eps_c, eps_n = (prior.denoiser(x, t, c) for c in (emb.uncond, emb.cond, back))
        expected = perp_neg_combine(eps_u, eps_c, eps_n[:, None], emb.negative_weight, 4.0)
        torch.testing.assert_close(prior.predict_noise(x, t, emb, 4.0), expected, atol=1e-5, rtol=1e-5)


def test_images_round_trip_through_model_space() -> None:
    prior = tiny_prior()
    rgb = torch.rand(2, 16, 16, 3, requires_grad=True)
    x = prior.encode_images(rgb)
    assert x.shape == (2, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(prior.decode(x), rgb)
    x.sum().backward()
    torch.testing.assert_close(rgb.grad, torch.full_like(rgb, 2.0))
    assert prior.encode_images(torch.rand(1, 40, 40, 3)).shape == (1, 3, 16, 16)  # renders are resized


def test_train_prior_resumes_where_it_stopped(tmp_path: Path, tiny_data: Path) -> None:
    args = [
        "train-prior",
        "--data",
        str(tiny_data),
        "--resolution",
        "16",
        "--channels",
        "32,32",
        "--batch",
        "4",
        "--checkpoint",
        str(tmp_path / "ck"),
        "--out",
        str(tmp_path / "prior"),
    ]
    assert main(args + ["--steps", "5", "--max-minutes", "1e-6"]) == 0  # a leg that ends after one step
    ckpt = torch.load(tmp_path / "ck" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 1
    assert main(args + ["--steps", "5", "--resume"]) == 0
    resumed = torch.load(tmp_path / "ck" / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 5 and resumed["optimizer"]["state"][0]["step"] == 5
    prior = EmbeddedPrior.from_pretrained(tmp_path / "prior")
    assert prior.resolution == 16
    assert (
        main(
            [
                "sample",
                "a red cube, front view",
                "-n",
                "2",
                "--out",
                str(tmp_path / "s"),
                "--steps",
                "2",
                "--weights",
                str(tmp_path / "prior"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["contact_sheet.png", "sample_00.png", "sample_01.png"]


def test_train_prior_further_from_a_trained_one(tmp_path: Path, tiny_data: Path) -> None:
    first = tiny_prior()
    for p in first.unet.parameters():
        p.data += 0.01 * torch.randn_like(p)
    first.save_pretrained(tmp_path / "first")
    args = [
        "train-prior",
        "--data",
        str(tiny_data),
        "--init",
        str(tmp_path / "first"),
        "--batch",
        "4",
        "--steps",
        "2",
        "--lr",
        "1e-9",
        "--warmup",
        "0",
        "--checkpoint",
        str(tmp_path / "ck"),
        "--out",
        str(tmp_path / "p"),
    ]
    assert main(args) == 0
    second = EmbeddedPrior.from_pretrained(tmp_path / "p")
    assert second.cfg.block_out_channels == [32, 32] and second.resolution == 16
    for a, b in zip(first.unet.parameters(), second.unet.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert main(args + ["--resolution", "16"]) == 2  # the model is that of --init


def test_caption_table_is_encoded_once_and_cached_beside_the_data(
    tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from real3d.priors.train import caption_table

    prior, cpu = tiny_prior(), torch.device("cpu")
    captions = np.load(tiny_data)["captions"].tolist()
    table, index = caption_table(prior, captions, cpu, cache=tiny_data)
    assert table.shape == (9, 24, 384) and table.dtype == torch.float16  # 8 unique captions + the empty one
    encoder = prior.text_encoder()
    torch.testing.assert_close(table[index[5]].float(), encoder([captions[5]])[0], atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(table[-1].float(), encoder([""])[0], atol=2e-3, rtol=1e-3)
    assert len(list(tmp_path.glob("data.captions-*.pt"))) == 1
    encoded: list[int] = []
    forward = type(encoder).forward
    monkeypatch.setattr(
        type(encoder),
        "forward",
        lambda self, prompts, batch=512: encoded.append(len(prompts)) or forward(self, prompts, batch),
    )
    again, again_index = caption_table(prior, captions, cpu, cache=tiny_data)
    assert encoded == [1] and torch.equal(again, table) and torch.equal(again_index, index)  # only the probe
    caption_table(prior, captions[:4], cpu, cache=tiny_data)  # other captions: another table
    assert len(list(tmp_path.glob("data.captions-*.pt"))) == 2 and encoded[-1] == 5


def test_wrong_data_and_missing_weights_are_user_errors(tmp_path: Path, tiny_data: Path) -> None:
    with pytest.raises(UserError, match="holds 16 px images, the prior is 32 px"):
        from real3d.jobs.train_prior import load_data

        load_data(tiny_data, 32, 32)
    with pytest.raises(UserError, match="no trained embedded prior in .*config.json"):
        EmbeddedPrior.from_pretrained(tmp_path)
    if not torch.cuda.is_available():
        assert main(["train-prior", "--device", "cuda", "--steps", "1"]) == 2


def test_shipped_prior_loads_offline_and_samples_deterministically() -> None:
    prior = EmbeddedPrior.from_pretrained(SHIPPED)
    assert prior.resolution == 32
    assert (SHIPPED / "README.md").exists(), "the shipped prior needs its model card"
    a = prior.sample(["a red cube, front view"], 1, 4, None, torch.Generator().manual_seed(1))
    b = prior.sample(["a red cube, front view"], 1, 4, None, torch.Generator().manual_seed(1))
    assert a.shape == (1, 32, 32, 3)
    torch.testing.assert_close(a, b)


def test_the_frozen_prior_runs_a_traced_unet_with_the_eager_result(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Inference of a frozen prior goes through the traced graph: the eager UNet's ε̂ for every batch size
    (fp32: to float rounding); a UNet that cannot be traced falls back to eager with one warning line."""
    prior = tiny_prior()
    for p in prior.unet.parameters():
        p.data += 0.01 * torch.randn_like(p)
    prior.requires_grad_(False)
    ctx = prior.encode_text(["a red cube", "a cone", "a blue ball"]).cond
    with torch.no_grad(), precision.use("fp32"):
        for b in (2, 3, 1):  # traced at batch 2, called at others
            x, t = torch.randn(b, 3, 16, 16), torch.randint(0, 1000, (b,))
            eager = prior.unet(x, t, encoder_hidden_states=ctx[:b]).sample
            torch.testing.assert_close(prior.denoiser(x, t, ctx[:b]), eager, rtol=1e-4, atol=1e-5)
        assert len(prior._graphs) == 1 and None not in prior._graphs.values()
        prior.unet.conv_in.bias.add_(0.1)  # new weights: a new graph, not a stale one
        torch.testing.assert_close(
            prior.denoiser(x, t, ctx[:1]), prior.unet(x, t, encoder_hidden_states=ctx[:1]).sample, rtol=1e-4, atol=1e-5
        )
        assert len(prior._graphs) == 2

        def refuse(*args: object, **kwargs: object) -> None:
            raise RuntimeError("cannot trace this")

        monkeypatch.setattr(torch.jit, "trace", refuse)
        prior.unet.conv_in.bias.add_(0.1)
        out = prior.denoiser(x, t, ctx[:1])
    torch.testing.assert_close(out, prior.unet(x, t, encoder_hidden_states=ctx[:1]).sample)
    err = capsys.readouterr().err
    assert "could not be traced (RuntimeError: cannot trace this); running it eagerly" in err
    assert len(err.strip().splitlines()) == 1


def test_a_text_only_prior_gains_view_conditioning_that_starts_as_nothing(tmp_path: Path) -> None:
    """A trained text-only prior loaded view-conditioned predicts the same ε̂ for every view (the view's layer
    starts at zero), eager and traced; once that layer is trained, views change ε̂ and save/reload keeps them;
    no view reads as all zeros; a view-conditioned prior does not load as a text-only one."""
    from real3d.cameras import view_code
    from real3d.guidance.prompts import PositionalPrompt

    torch.manual_seed(0)  # 64 channels, 2 a norm group: with 1 (tiny_prior) the norms cancel any embedding
    text_only = EmbeddedPrior(EmbeddedPrior.Config(resolution=16, block_out_channels=[64, 64], attention_heads=2))
    for p in text_only.unet.parameters():
        p.data += 0.01 * torch.randn_like(p)
    text_only.save_pretrained(tmp_path / "text")
    viewed = EmbeddedPrior.from_pretrained(tmp_path / "text", view_conditioned=True)
    text_only.requires_grad_(False)
    emb = PositionalPrompt(viewed, "a red cube")(torch.tensor([0.0, 120.0]), torch.tensor([15.0, 70.0]))
    torch.testing.assert_close(emb.view, view_code(torch.tensor([0.0, 120.0]), torch.tensor([15.0, 70.0])))
    assert emb.view[:, -1].eq(1).all() and emb.repeat(2).view.shape == (4, 5)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 700])
    with torch.no_grad(), precision.use("fp32"):
        for mode in (contextlib.nullcontext(), viewed.eager()):  # traced, then eager
            with mode:
                torch.testing.assert_close(
                    viewed.predict_noise(x, t, emb, 4.0), text_only.predict_noise(x, t, emb, 4.0), rtol=1e-4, atol=1e-5
                )

    torch.nn.init.normal_(viewed.unet.class_embedding.linear_2.weight, std=0.1)  # as if trained
    viewed.save_pretrained(tmp_path / "viewed")
    again = EmbeddedPrior.from_pretrained(tmp_path / "viewed")
    assert again.cfg.view_conditioned
    with torch.no_grad(), precision.use("fp32"):
        front = again.denoiser(x, t, emb.cond, view_code(torch.zeros(2), torch.zeros(2)))
        back = again.denoiser(x, t, emb.cond, view_code(torch.full((2,), 180.0), torch.zeros(2)))
        assert (front - back).abs().max() > 1e-3
        torch.testing.assert_close(front, viewed.denoiser(x, t, emb.cond, view_code(torch.zeros(2), torch.zeros(2))))
        torch.testing.assert_close(again.denoiser(x, t, emb.cond), again.denoiser(x, t, emb.cond, torch.zeros(2, 5)))
    config = json.loads((tmp_path / "viewed" / "config.json").read_text())
    (tmp_path / "viewed" / "config.json").write_text(json.dumps(config | {"view_conditioned": False}))
    with pytest.raises(UserError, match="does not hold this prior's weights"):
        EmbeddedPrior.from_pretrained(tmp_path / "viewed")


def test_train_prior_view_conditioned_learns_the_views_of_its_data(tmp_path: Path, tiny_data: Path) -> None:
    """`train-prior --init TEXT_ONLY --view-conditioned` trains the view's layer on the data's views; data
    without views is refused with what to do."""
    first = tiny_prior()
    first.save_pretrained(tmp_path / "first")
    args = ["train-prior", "--init", str(tmp_path / "first"), "--view-conditioned", "--batch", "8", "--steps", "3"]
    args += ["--warmup", "0", "--lr", "1e-2", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "p")]
    assert main([*args, "--data", str(tiny_data)]) == 2  # no views in it
    text_only = [a for a in args if a != "--view-conditioned"]
    assert main([*text_only, "--data", str(tiny_data), "view_word_dropout=0.5"]) == 2  # no camera to say it
    data = dict(np.load(tiny_data))
    rng = np.random.default_rng(1)
    views = np.stack([rng.uniform(-180, 180, 32), rng.uniform(-10, 75, 32)], -1).astype(np.float32)
    np.savez(tmp_path / "viewed.npz", **data, views=views)
    assert main([*args, "--data", str(tmp_path / "viewed.npz")]) == 0
    trained = EmbeddedPrior.from_pretrained(tmp_path / "p")
    assert trained.cfg.view_conditioned
    assert trained.unet.class_embedding.linear_2.weight.abs().max() > 0  # it moved from its zero start
    groups = torch.load(tmp_path / "ck" / "checkpoint.pt", weights_only=False)["optimizer"]["param_groups"]
    assert [len(g["params"]) for g in groups] == [len(list(trained.unet.parameters())) - 4, 4]
    assert groups[1]["lr"] == pytest.approx(20 * groups[0]["lr"])  # the view's layers learn faster
    sample = ["sample", "a red cube", "-n", "1", "--steps", "2", "--weights", str(tmp_path / "p")]
    assert main([*sample, "--view", "30", "15", "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "sample_00.png").exists()
    text_only = [*sample[:-1], str(tmp_path / "first"), "--view", "30", "15", "--out", str(tmp_path / "t")]
    assert main(text_only) == 2  # a text-only prior has no camera to take
    assert not (tmp_path / "t").exists()  # refused before its output folder is touched


def test_a_view_conditioned_prior_gains_a_ray_map_that_starts_as_nothing(tmp_path: Path, tiny_data: Path) -> None:
    """A view-conditioned prior loaded with view_rays predicts the same ε̂ (the ray input's weights start at
    zero), eager and traced; once they are trained, mirrored cameras change ε̂ through them and save/reload
    keeps it. `train-prior --init TEXT_ONLY --view-rays` trains them in the view's fast group."""
    from real3d.cameras import view_code

    torch.manual_seed(0)
    cfg = EmbeddedPrior.Config(resolution=16, block_out_channels=[64, 64], attention_heads=2, view_conditioned=True)
    viewed = EmbeddedPrior(cfg)
    for p in viewed.unet.parameters():
        p.data += 0.01 * torch.randn_like(p)
    viewed.save_pretrained(tmp_path / "viewed")
    rays = EmbeddedPrior.from_pretrained(tmp_path / "viewed", view_rays=True)
    viewed.requires_grad_(False)
    x, t, ctx = torch.randn(2, 3, 16, 16), torch.tensor([10, 700]), viewed.encode_text(["a red cube"] * 2).cond
    plus, minus = view_code(torch.full((2,), 60.0), torch.zeros(2)), view_code(torch.full((2,), -60.0), torch.zeros(2))
    with torch.no_grad(), precision.use("fp32"):
        for mode in (contextlib.nullcontext(), rays.eager()):
            with mode:
                torch.testing.assert_close(rays.denoiser(x, t, ctx, plus), viewed.denoiser(x, t, ctx, plus))
        before = rays.denoiser(x, t, ctx, plus) - rays.denoiser(x, t, ctx, minus)
        torch.nn.init.normal_(rays.unet.conv_in.ray_weight, std=0.1)  # as if trained
        rays.save_pretrained(tmp_path / "rays")
        again = EmbeddedPrior.from_pretrained(tmp_path / "rays")
        assert again.cfg.view_rays
        after = again.denoiser(x, t, ctx, plus) - again.denoiser(x, t, ctx, minus)
        assert (after - before).abs().max() > 1e-3
        torch.testing.assert_close(again.denoiser(x, t, ctx, plus), rays.denoiser(x, t, ctx, plus))
    with pytest.raises(UserError, match="does not hold this prior's weights"):
        EmbeddedPrior.from_pretrained(tmp_path / "rays", view_rays=False)
    with pytest.raises(UserError, match="view_rays needs view_conditioned too"):
        EmbeddedPrior.from_pretrained(tmp_path / "rays", view_conditioned=False)

    tiny_prior().save_pretrained(tmp_path / "first")
    data = dict(np.load(tiny_data))
    views = np.stack([np.linspace(-180, 180, 32), np.full(32, 15.0)], -1).astype(np.float32)
    np.savez(tmp_path / "data.npz", **data, views=views)
    args = ["train-prior", "--init", str(tmp_path / "first"), "--view-rays", "--batch", "8", "--steps", "3"]
    args += ["--warmup", "0", "--lr", "1e-2", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "p")]
    assert main([*args, "--data", str(tmp_path / "data.npz")]) == 0
    trained = EmbeddedPrior.from_pretrained(tmp_path / "p")
    assert trained.cfg.view_conditioned and trained.cfg.view_rays
    assert trained.unet.conv_in.ray_weight.abs().max() > 0  # it moved from its zero start
    groups = torch.load(tmp_path / "ck" / "checkpoint.pt", weights_only=False)["optimizer"]["param_groups"]
    assert [len(g["params"]) for g in groups] == [len(list(trained.unet.parameters())) - 5, 5]


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_view_word_dropout_gives_the_caption_without_its_view_word(
    tmp_path: Path, tiny_data: Path, share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TrainConfig.view_word_dropout: a view-conditioned prior is trained on that share of captions without
    their view word (the camera alone says the view), and on the full captions otherwise."""
    data = np.load(tiny_data)
    captions = data["captions"].tolist()
    prior = EmbeddedPrior(dataclasses.replace(tiny_prior().cfg, view_conditioned=True))
    seen: list[torch.Tensor] = []
    denoiser = prior.denoiser

    def recording(x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, view: torch.Tensor | None = None):
        seen.append(context.float())
        return denoiser(x_t, t, context, view)

    monkeypatch.setattr(prior, "denoiser", recording)
    cfg = TrainConfig(steps=2, batch=8, warmup=0, caption_dropout=0.0, view_word_dropout=share)
    views = torch.zeros(len(captions), 2)
    train(prior, cfg, torch.from_numpy(data["images"]), captions, views, tmp_path / "ck", tmp_path / "p")
    encoder = prior.text_encoder()
    full, bare = encoder(sorted(set(captions))).half().float(), encoder(["a red cube", "a blue cube"]).half().float()

    def matches(context: torch.Tensor, table: torch.Tensor) -> bool:  # to the encoder's rounding, which on some
        return bool(((context - table).abs().flatten(1).amax(1) < 1e-2).any())  # CPUs varies with batch size

    for context in torch.cat(seen):
        assert matches(context, bare if share else full)
        assert not matches(context, full if share else bare)


def test_eval_prior_scores_every_group_it_is_given(tmp_path: Path) -> None:
    """`real3d eval-prior` end to end on the shipped prior (1 sample, 1 DDIM step): --pairs 0 leaves the pair
    group out instead of failing on it, and the scores are probabilities."""
    argv = ["eval-prior", "-n", "1", "--pairs", "0", "--steps", "1", "--threads", str(THREADS)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    result = json.loads((tmp_path / "e" / "judge.json").read_text())
    assert set(result) == {"single", "feature", "all"}
    assert all(0.0 <= result[g]["mean"] <= 1.0 for g in result)
