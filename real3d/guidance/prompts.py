"""Positional prompt embedding (the paper's Implementation Details).

DreamFusion appends a view word to the prompt (", front view", ", side view", ", back view",
", overhead view"); Real3D goes further and interpolates the embeddings of those view prompts by the angle
between the current view and the front. With the camera convention of real3d.cameras (azimuth 0 sees the
front), a view at |azimuth| = a ∈ [0°, 180°] gets

    e(a) = lerp(front, side, a / 90°)            for a ≤ 90°
         = lerp(side,  back, (a − 90°) / 90°)    for a > 90°

and, looking down, is blended towards the overhead embedding: weight clamp((elevation − 45°) / 30°, 0, 1)
(one half at DreamFusion's 60° overhead border).

Against the Janus problem, `perp_neg` > 0 adds the opposite views as negative prompts for Perp-Neg guidance
(priors.base.perp_neg_combine, as threestudio offers): "…, back view" with weight λ (1 − a/180°) and
"…, front view" with weight λ a/180°, so a view near the front is pushed away from looking like a back and
the other way round.

As threestudio's prompt processor, the side and back views may have prompts of their own (`prompt_side`,
`prompt_back`): e.g. the object without a front feature, so that only views that see the front ask for it.
"""

from __future__ import annotations

import torch

from ..cameras import VIEW_WORDS, off_front, view_code
from ..priors.base import Prior, TextEmbedding

OVERHEAD_START, OVERHEAD_SPAN = 45.0, 30.0


def view_prompt(prompt: str, view: str) -> str:
    """The prompt with DreamFusion's view suffix (as the toy-world captions write it)."""
    return f"{prompt}, {view} view"


def view_weights(azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
    """Interpolation weights [B,4] over (front, side, back, overhead) for views in degrees [B]; rows sum to 1."""
    a = off_front(azimuth)
    to_side = (a / 90.0).clamp(max=1.0)
    to_back = ((a - 90.0) / 90.0).clamp(min=0.0)
    around = torch.stack([1 - to_side, to_side - to_back, to_back], -1)  # [B,3]
    up = ((elevation - OVERHEAD_START) / OVERHEAD_SPAN).clamp(0.0, 1.0)[:, None]
    return torch.cat([around * (1 - up), up], -1)


class PositionalPrompt:
    """One prompt's four view embeddings, interpolated per camera into a TextEmbedding for SDS."""

    def __init__(self, prior: Prior, prompt: str, side: str | None = None, back: str | None = None) -> None:
        """`side`, `back`: the prompts of those views (None: `prompt`), interpolated as the view words are."""
        self.prompt = prompt
        per_view = (prompt, side or prompt, back or prompt, prompt)  # VIEW_WORDS' order
        emb = prior.encode_text([view_prompt(p, v) for p, v in zip(per_view, VIEW_WORDS)])
        self.views, self.uncond = emb.cond, emb.uncond[:1]  # [4,L,D], [1,L,D]

    def __call__(self, azimuth: torch.Tensor, elevation: torch.Tensor, perp_neg: float = 0.0) -> TextEmbedding:
        """Embeddings for views (degrees, [B]): cond [B,L,D] interpolated, uncond [B,L,D], the views' camera
        codes [B,5] (for a view-conditioned prior); with perp_neg > 0 also the front and back view prompts as
        negatives [B,2,L,D] and their weights [B,2]."""
        w = view_weights(azimuth.float(), elevation.float()).to(self.views.device, self.views.dtype)  # [B,4]
        cond = torch.einsum("bv,vld->bld", w, self.views)
        emb = TextEmbedding(cond, self.uncond.expand_as(cond), view=view_code(azimuth, elevation).to(cond.device))
        if perp_neg > 0:
            behind = off_front(azimuth.float()) / 180.0  # [B] 0 front … 1 back
            emb.negative = self.views[[0, 2]][None].expand(len(cond), -1, -1, -1)  # front, back
            emb.negative_weight = perp_neg * torch.stack([behind, 1 - behind], -1).to(self.views.device)
        return emb
