"""Stable Diffusion prior end to end with a tiny randomly initialised pipeline that the test builds itself
(offline: a character-level CLIP tokenizer from a vocabulary written here). On CUDA (if present) too, fp16."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from real3d.errors import UserError
from real3d.guidance.anchor import prior_picker, prompt_margin
from real3d.guidance.prompts import PositionalPrompt
from real3d.guidance.sds import SDSConfig, sds_rgb
from real3d.priors.base import Prior
from real3d.priors.stable_diffusion import StableDiffusionPrior

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _tokenizer_files(folder: Path) -> None:
    """A CLIP BPE vocabulary of single byte-characters (with and without the end-of-word mark), no merges."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]  # GPT-2 byte map
    vocab = ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("tiny-sd")
    torch.manual_seed(0)
    _tokenizer_files(root / "tokenizer")
    tokenizer = CLIPTokenizer(
        str(root / "tokenizer" / "vocab.json"), str(root / "tokenizer" / "merges.txt"), model_max_length=16
    )
    tokenizer.save_pretrained(root / "tokenizer")
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    text.save_pretrained(root / "text_encoder")
    UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    ).save_pretrained(root / "unet")
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=16,
    ).save_pretrained(root / "vae")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(root / "scheduler")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return root


def _prior(folder: Path, device: str) -> StableDiffusionPrior:
    return StableDiffusionPrior(StableDiffusionPrior.Config(path=str(folder), resolution=16), device)


@pytest.mark.parametrize("device", DEVICES)
def test_sds_through_the_vae_reaches_the_render(tiny_sd: Path, device: str) -> None:
    prior = _prior(tiny_sd, device)
    assert isinstance(prior, Prior)
    assert prior.latent_shape == (4, 8, 8)
    assert prior.dtype == (torch.float16 if device == "cuda" else torch.float32)
    emb = prior.encode_text(["a red cube, front view", "a red cube, side view"])
    assert emb.cond.shape == emb.uncond.shape == (2, 16, 32)
    rgb = torch.rand(2, 24, 24, 3, device=device, requires_grad=True)  # resized to 16 px inside
    out = sds_rgb(prior, rgb, emb, SDSConfig(guidance_scale=7.5), generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert rgb.grad is not None and torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0
    assert all(p.grad is None for p in prior.parameters()), "SDS must not backprop into the prior"


@pytest.mark.parametrize("device", DEVICES)
def test_sampling_decodes_images(tiny_sd: Path, device: str) -> None:
    prior = _prior(tiny_sd, device)
    rgb = prior.sample(["a blue ball"], n=2, steps=3, generator=torch.Generator().manual_seed(0))
    assert rgb.shape == (2, 16, 16, 3) and rgb.min() >= 0 and rgb.max() <= 1
    again = prior.sample(["a blue ball"], n=2, steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rgb, again)


def test_missing_or_incomplete_folder_is_one_line(tmp_path: Path, tiny_sd: Path) -> None:
    with pytest.raises(UserError, match=r"nowhere.*lacks model_index.json, unet, vae"):
        _prior(tmp_path / "nowhere", "cpu")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "model_index.json").write_text("{}")
    (partial / "unet").symlink_to(tiny_sd / "unet")
    with pytest.raises(UserError, match=r"partial lacks vae, text_encoder, tokenizer, scheduler") as err:
        _prior(partial, "cpu")
    assert "\n" not in str(err.value)


def test_not_in_offline_cache_says_set_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not in the offline Hugging Face cache.*prior.path"):
        StableDiffusionPrior(StableDiffusionPrior.Config(model_id="nobody/no-such-model"))


@pytest.mark.parametrize("device", DEVICES)
def test_the_anchor_pick_runs_through_the_vae_on_images_kept_on_the_cpu(tiny_sd: Path, device: str) -> None:
    """prompt_margin on Stable Diffusion: x̃ on the CPU, the prior on its device; the draws are shared, so two
    copies of one image get one margin, and the picker returns one of the candidates."""
    prior = _prior(tiny_sd, device)
    prompt = PositionalPrompt(prior, "a red cube")
    images = torch.rand(3, 24, 24, 3)
    images[2] = images[0]
    emb = prompt(torch.zeros(3), torch.full((3,), 15.0))
    other = prompt(torch.full((3,), 180.0), torch.full((3,), 15.0))
    margin = prompt_margin(prior, images, emb, other, 4, torch.Generator().manual_seed(0))
    assert margin.shape == (3,) and torch.isfinite(margin).all() and margin[0] == margin[2] != margin[1]
    views = torch.tensor([[0.0, 15.0]] * 3)
    assert prior_picker(prior, prompt, samples=4)(images, views, 0.0) in (0, 1)  # a tie goes to the first copy
