"""View anchors: the prior's own front and back views, from x̃, as reference views (not in the paper).

Image-to-3D methods (Magic123, DreamCraft3D) hold one view of θ to a reference image and leave the other views
to score distillation. Here the references are the prior's own samples: the medoid of x̃'s front-view images,
which the prior draws with the prompt's feature on it, and of its back-view images, which it draws without
(`view_anchors`; docs/results.md, twenty-third and twenty-fourth rounds), or with `system.anchor_pick: prior`
the one the prior itself finds most like the prompt's view there (`prior_picker`, a diffusion classifier;
twenty-sixth round). SDS alone cannot place a feature, since each view paints it somewhere else (fifth
round); one fixed view can. The back anchor keeps the back plain: without it the body copies the front's
feature there (Janus). `sides` adds x̃'s side views (90, 270).
With `system.anchor_source: render` the anchors are θ's own front and back views instead, redrawn by the prior
once the shape has formed (SDEdit, `DiffusionPrior.redraw`; `Real3DSystem.draw_anchors`): the prior adds the
feature to a view that already has θ's shape and colour, so the anchor fits the render it is compared with.
A prompt of two objects ("A <relation> B") has no anchors: x̃ often swaps their colours (4 of the 7 front
views of "a red cube on top of a blue sphere" show a blue cube on a red sphere, and so does their medoid).

θ is drawn at each medoid's own camera. x̃ shows objects larger than the prior's data does (its sampler's
blur), so the anchor does not set the size: at each step it is fitted to the box of the render's solid pixels
(`fit_to_box`), and only the pixels solid in the render and inside the anchor's object are compared, each image
less its mean colour there (`anchor_loss`): the anchor draws its marks on the object the render already has,
not x̃'s paler colour, and neither grows nor cuts its outline. What it may move is the system's choice
(`Real3DSystem.view_anchor`: the albedo, with `anchor_planes: facing` one appearance plane, `anchor_facing`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from ..cameras import VIEW_WORDS, off_front, view_code, view_direction
from ..priors.base import Prior, TextEmbedding, diffuse
from .prompts import PositionalPrompt
from .reference import eroded, inner_object_pixels, object_pixels

ANCHOR_CAMERAS = {"front": (0.0,), "back": (180.0,), "sides": (90.0, 270.0)}  # view word → its anchors' azimuths
ANCHOR_VIEWS = tuple(ANCHOR_CAMERAS)  # the words `system.anchor_views` takes
DEFAULT_ANCHOR_VIEWS = ("front", "back")  # the back: no Janus
SOLID = 0.9  # a render's pixel is the object's surface above this opacity (`solid_pixels`)
REACH = 45.0  # x̃'s images within this many degrees of an anchor's azimuth (and not overhead) are its candidates
AnchorPick = Literal["medoid", "prior"]  # how an anchor is chosen among its candidates (`system.anchor_pick`)
Picker = Callable[[torch.Tensor, torch.Tensor, float], int]  # (images [F,H,W,3], views [F,2], azimuth) → index
CONTRAST_WORD = {"front": "back", "side": "front", "back": "front"}  # `prior_picker`: each view word against
# the view that shows (front) or hides (back) the prompt's feature, whichever it is not


def anchor_azimuths(words: Sequence[str]) -> list[float]:
    """The azimuths (degrees) of the anchors of view words `words`, in order: one for front and back, two for
    sides (90 and 270, each with its own medoid)."""
    return [a for w in words for a in ANCHOR_CAMERAS[w]]


def anchor_facing(azimuth: float) -> tuple[int, int]:
    """The world axis an anchor's camera at `azimuth` looks along, 0 (x) for the front and back, 1 (y) for the
    sides, and the sign of the half of the scene on the camera's side along it (the camera sits at azimuth φ
    on (cos φ, sin φ) in the ground plane)."""
    a = math.radians(azimuth)
    axis = 1 if 45.0 < off_front(azimuth) < 135.0 else 0
    return axis, 1 if (math.cos(a), math.sin(a))[axis] > 0 else -1


def anchor_members(views: torch.Tensor, azimuth: float) -> torch.Tensor:
    """Which of x̃'s cameras (views [N,2]: azimuth, elevation in degrees) see the object as an anchor at
    `azimuth` does: within REACH of it and not overhead (for 0 and 180, DreamFusion's front and back words). [N]"""
    return torch.tensor(
        [off_front(a - azimuth) < REACH and view_direction(a, e) != "overhead" for a, e in views.tolist()],
        dtype=torch.bool,
    )


def medoid(images: torch.Tensor, views: torch.Tensor, azimuth: float) -> int:
    """Index of the medoid of images [F,H,W,3]: the one nearest, on average, to all the others in pixel space
    (a `Picker`; the views and the anchor's azimuth do not enter)."""
    flat = images.flatten(1).float()  # [F,H*W*3]
    return int(torch.cdist(flat, flat).mean(1).argmin())


def prompt_margin(
    prior: Prior,
    images: torch.Tensor,
    emb: TextEmbedding,
    other: TextEmbedding,
    samples: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """How much better the prior explains each image rgb [F,H,W,3] by the prompt `emb` than by `other` (both
    [F,L,D], one row per image): the diffusion classifier of Li et al. (2023, "Your diffusion model is secretly
    a zero-shot classifier"), E_{t,ε} ‖ε_φ(x_t; other, t) − ε‖² − ‖ε_φ(x_t; emb, t) − ε‖² over `samples` draws
    with x_t = α_t x + σ_t ε (Eq. 1) and t spread evenly over [0.1 T, 0.9 T]. Every image shares the draws, so
    the margins [F] rank them; > 0: the image fits `emb` better."""
    x = prior.encode_images(images.to(emb.cond.device))  # [F,C,h,w]; x̃ may sit on the CPU
    steps = (torch.linspace(0.1, 0.9, samples) * prior.num_train_timesteps).long()
    margin = x.new_zeros(len(x), dtype=torch.float32)
    for t in steps.tolist():
        eps = torch.randn(x.shape[1:], generator=generator).to(x.device, x.dtype)  # [C,h,w], shared
        x_t, t_batch = diffuse(prior.alphas_cumprod[t], x, eps), torch.full((len(x),), t, device=x.device)
        err = [(prior.predict_noise(x_t, t_batch, e, 1.0).float() - eps).square().mean((1, 2, 3)) for e in (emb, other)]
        margin += err[1] - err[0]
    return margin / samples


def view_margins(
    prior: Prior,
    prompt: PositionalPrompt,
    images: torch.Tensor,
    views: torch.Tensor,
    azimuth: float,
    samples: int = 24,
    seed: int = 0,
) -> torch.Tensor:
    """How much more each image rgb [F,H,W,3] (its camera views [F,2]) looks like the prompt's view at the
    anchor's `azimuth` ("…, front view") than like CONTRAST_WORD's ("…, back view"), to the prior: `prompt_margin`
    [F], the same draws for every image. Near 0 for every image when the prompt names nothing that tells a
    front from a back."""
    word = view_direction(azimuth, 0.0)
    codes = view_code(views[:, 0], views[:, 1]).to(prompt.views.device)  # [F,5]: each image's own camera

    def embedding(w: str) -> TextEmbedding:
        cond = prompt.views[VIEW_WORDS.index(w)][None].expand(len(images), -1, -1)
        return TextEmbedding(cond, prompt.uncond.expand_as(cond), view=codes)

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return prompt_margin(prior, images, embedding(word), embedding(CONTRAST_WORD[word]), samples, generator)


def prior_picker(prior: Prior, prompt: PositionalPrompt, samples: int = 24, seed: int = 0) -> Picker:
    """A `Picker` that takes the image the prior itself finds most like the prompt's view at the anchor
    (`view_margins`: its view prompt, e.g. "…, front view", against CONTRAST_WORD's: "…, back view"), not
    the most typical one: of x̃'s front views, the medoid often shows the feature faintly or not at all, while
    the prior, asked, prefers the views that show it (docs/results.md, twenty-sixth round)."""

    def pick(images: torch.Tensor, views: torch.Tensor, azimuth: float) -> int:
        return int(view_margins(prior, prompt, images, views, azimuth, samples, seed).argmax())

    return pick


def view_anchors(
    images: torch.Tensor, views: torch.Tensor, words: Sequence[str] = DEFAULT_ANCHOR_VIEWS, pick: Picker = medoid
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each anchor of the view words `words` (`anchor_azimuths`), one of the images [N,H,W,3] in [0,1]
    whose camera (views [N,2]) sees the object as the anchor does (`anchor_members`), chosen by `pick`
    (`medoid`, or `prior_picker`'s). The anchors [A,H,W,3] and their own cameras [A,2] (azimuth, elevation):
    θ is drawn where x̃ was, so a side anchor that shows an edge of the front lays it on the front, not on the
    side."""
    anchors, cams = [], []
    for azimuth in anchor_azimuths(words):
        members = anchor_members(views, azimuth)
        if not bool(members.any()):
            raise ValueError(f"x̃ has no view near azimuth {azimuth:.0f} to anchor to: raise reference.count")
        candidates, candidate_views = images[members], views[members]  # [F,H,W,3], [F,2]
        best = pick(candidates, candidate_views, azimuth)
        anchors.append(candidates[best])
        cams.append(candidate_views[best])
    return torch.stack(anchors), torch.stack(cams)


def outline_box(mask: torch.Tensor) -> torch.Tensor | None:
    """The object's box in normalized image coordinates (align_corners=False), [x0, x1, y0, y1] with −1 the
    left / top edge of the image and 1 the right / bottom one, of mask [H,W]; None where it is empty."""
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    if rows.numel() == 0:
        return None
    h, w = mask.shape
    edges = torch.stack([cols[0], cols[-1] + 1, rows[0], rows[-1] + 1]).float()  # pixel edges
    return torch.cat([edges[:2] * 2 / w - 1, edges[2:] * 2 / h - 1])


def fit_to_box(anchor: torch.Tensor, solid: torch.Tensor) -> torch.Tensor | None:
    """The anchor [H',W',3] resampled onto a render's H×W pixels so that its outline box lands on the box of
    the render's solid pixels (solid [1,H,W], `solid_pixels`), white outside the anchor's image; [1,H,W,3], or
    None where the render has no solid pixel."""
    to_box, from_box = outline_box(solid[0]), outline_box(object_pixels(anchor[None])[0])
    if to_box is None or from_box is None:
        return None
    scale = (from_box[1::2] - from_box[::2]) / (to_box[1::2] - to_box[::2])  # [2]: x, y
    shift = from_box[::2] - to_box[::2] * scale
    theta = torch.stack(
        [torch.stack([scale[0], scale.new_zeros(()), shift[0]]), torch.stack([scale.new_zeros(()), scale[1], shift[1]])]
    )[None]  # [1,2,3]
    grid = F.affine_grid(theta, [1, 3, *solid.shape[1:3]], align_corners=False)
    moved = F.grid_sample(anchor.permute(2, 0, 1)[None].float() - 1, grid, align_corners=False) + 1  # white pad
    return moved.permute(0, 2, 3, 1)  # [1,H,W,3]


def solid_pixels(opacity: torch.Tensor) -> torch.Tensor:
    """Mask [B,H,W] of a render's pixels whose accumulated opacity (opacity [B,H,W,1]) is above SOLID: the
    object's surface, not the fog around it, which shows the background through it."""
    return opacity.detach()[..., 0] > SOLID


def anchor_loss(rgb: torch.Tensor, opacity: torch.Tensor, anchor: torch.Tensor, marks: float = 0.0) -> torch.Tensor:
    """Mean squared error of the render rgb [1,H,W,3] (its opacity [1,H,W,1]) against the anchor fitted to the
    box of its solid pixels, over the pixels that are solid in the render and inner object pixels of the
    anchor (edges of both left out), each less its mean colour there: the anchor draws its marks (the
    feature), not x̃'s own colour, paler than the one SDS gives the body. 0 where they share no pixel. A pixel
    that only one of them shows as object is not pulled: x̃'s blur makes its shapes fuller than the render's,
    and filling them in would grow the box the anchor is fitted to, step after step, to the bound. A faint
    pixel is not pulled either: the colour that would darken it to x̃'s draws a dark ring round the outline.
    With `marks` > 0 only the anchor's pixels farther than that from its mean colour are drawn as they are;
    the others are held to the render's own mean (x̃'s shading on a plain object is not a feature)."""
    solid = solid_pixels(opacity)
    target = fit_to_box(anchor, solid)
    if target is None:
        return rgb.sum() * 0.0
    mask = inner_object_pixels(target) & eroded(solid)  # edges of both left out
    if not bool(mask.any()):
        return rgb.sum() * 0.0
    ours, theirs = rgb[mask], target[mask].to(rgb.dtype)  # [M,3] each
    drawn = theirs - theirs.mean(0)  # [M,3]: x̃'s marks
    if marks > 0:
        drawn = drawn * (drawn.norm(dim=-1, keepdim=True) > marks)
    return ((ours - ours.mean(0)) - drawn).square().sum(-1).mean()
