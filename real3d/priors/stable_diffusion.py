"""Stable Diffusion as the prior p_φ (the paper's choice), loaded only from local files, never downloaded.

Model space is the VAE latent space: z = 0.18215 · E(2·rgb − 1) at 1/8 of `resolution`, so SDS (Eq. 2)
runs on latents and its gradient reaches the render through the encoder. Weights come from a diffusers
folder (`prior.path=...`, with model_index.json and the subfolders unet, vae, text_encoder, tokenizer,
scheduler) or from the offline Hugging Face cache (`prior.model_id`, `local_files_only=True`). fp16 on CUDA,
float32 on the CPU.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..config import bounded
from ..errors import UserError
from ..registry import register
from .base import DiffusionPrior, TextEmbedding

SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
LATENT_SCALE = 0.18215


def resolve_folder(path: str | None, model_id: str) -> Path:
    """The local diffusers folder: `path` if given, else the offline HF cache snapshot of `model_id`.
    Anything missing is a one-line UserError saying where it looked and what it needs."""
    needs = "model_index.json and the subfolders " + ", ".join(SUBFOLDERS)
    if path:
        folder = Path(path).expanduser()
    else:
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(model_id, local_files_only=True))
        except Exception:
            raise UserError(
                f"Stable Diffusion '{model_id}' is not in the offline Hugging Face cache and "
                f"prior.path is not set; set prior.path to a local diffusers folder with {needs}"
            ) from None
    missing = [s for s in ("model_index.json",) + SUBFOLDERS if not (folder / s).exists()]
    if missing:
        raise UserError(f"Stable Diffusion folder {folder} lacks {', '.join(missing)}; it needs {needs}")
    return folder


@register("prior", "stable-diffusion")
class StableDiffusionPrior(DiffusionPrior):
    """Latent-space prior: model space = VAE latents [B,4,resolution/8,resolution/8]."""

    @dataclass
    class Config:
        path: str | None = None  # local diffusers folder; None: the offline HF cache of model_id
        model_id: str = "stabilityai/stable-diffusion-2-1-base"
        resolution: int = bounded(512, 64, 1024)  # renders are resized to this before the VAE
        guidance_scale: float = bounded(7.5, 1.0)  # default CFG scale for sampling
        fp16: bool = True  # half precision on CUDA (always float32 on the CPU)

    def __init__(self, cfg: StableDiffusionPrior.Config, device: str | torch.device = "cpu") -> None:
        super().__init__()
        from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
        from diffusers.utils import logging as diffusers_logging
        from transformers import CLIPTextModel, CLIPTokenizer
        from transformers.utils import logging as transformers_logging

        diffusers_logging.set_verbosity_error()  # their advice (install accelerate, …) is not ours: one line
        transformers_logging.set_verbosity_error()

        self.cfg = cfg
        self.folder = resolve_folder(cfg.path, cfg.model_id)
        self.resolution = cfg.resolution
        self.default_guidance_scale = cfg.guidance_scale
        dev = torch.device(device)
        self.dtype = torch.float16 if cfg.fp16 and dev.type == "cuda" else torch.float32
        load: dict[str, Any] = {"local_files_only": True, "torch_dtype": self.dtype}
        part = "unet"
        try:  # a folder with every part present can still hold broken files: name the part that fails
            self.unet = UNet2DConditionModel.from_pretrained(self.folder, subfolder=part, **load)
            part = "vae"
            self.vae = AutoencoderKL.from_pretrained(self.folder, subfolder=part, **load)
            part = "text_encoder"
            self.text_model = CLIPTextModel.from_pretrained(self.folder, subfolder=part, **load)
            part = "tokenizer"
            self.tokenizer = CLIPTokenizer.from_pretrained(self.folder, subfolder=part, local_files_only=True)
            part = "scheduler"
            self.noise_scheduler = DDPMScheduler.from_pretrained(self.folder, subfolder=part, local_files_only=True)
        except Exception as e:
            raise UserError(
                f"cannot load {self.folder / part} ({type(e).__name__}): the Stable Diffusion folder is incomplete "
                "or corrupt; download it again in diffusers format"
            ) from None
        self._ddim = DDIMScheduler.from_config(self.noise_scheduler.config)
        self.to(dev).eval().requires_grad_(False)
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @classmethod
    def from_config(cls, cfg: StableDiffusionPrior.Config) -> StableDiffusionPrior:
        return cls(cfg, "cuda" if torch.cuda.is_available() else "cpu")

    @property
    def identity(self) -> str:
        weights = sorted((self.folder / "unet").glob("*.safetensors")) + sorted((self.folder / "unet").glob("*.bin"))
        digest = hashlib.sha256(str(self.folder.resolve()).encode())
        for w in weights:
            digest.update(f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}".encode())
        return "stable-diffusion-" + digest.hexdigest()[:16]

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.resolution // self.vae_scale
        return self.unet.config.in_channels, side, side

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> TextEmbedding:
        tok = self.tokenizer(
            list(prompts) + [""],
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        hidden = self.text_model(tok.input_ids.to(self.device))[0]  # [B+1,77,D]
        return TextEmbedding(hidden[:-1], hidden[-1:].expand(len(prompts), -1, -1))

    def denoiser(
        self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, view: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Stable Diffusion is conditioned on text only: `view` is not used."""
        return self.unet(x_t.to(self.dtype), t, encoder_hidden_states=context.to(self.dtype)).sample

    def encode_images(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb [B,H,W,3] → latents [B,4,r/8,r/8] (mean of the VAE posterior × 0.18215), with gradients."""
        x = rgb.permute(0, 3, 1, 2)
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        posterior = self.vae.encode((x * 2 - 1).to(self.dtype)).latent_dist
        return posterior.mean * LATENT_SCALE

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        rgb = self.vae.decode((x / LATENT_SCALE).to(self.dtype)).sample
        return ((rgb.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)

    def sampling_scheduler(self):
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self._ddim.config)
