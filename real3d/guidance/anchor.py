"""View anchors: the prior's own front and back views, from x̃, as reference views (not in the paper).

Image-to-3D methods (Magic123, DreamCraft3D) hold one view of θ to a reference image and leave the other views
to score distillation. Here the references are the prior's own samples: the medoid of x̃'s front-view images,
which the prior draws with the prompt's feature on it, and of its back-view images, which it draws without
(`view_anchors`; docs/results.md, twenty-third round). SDS alone cannot place a feature, since each view paints
it somewhere else (fifth round); one fixed view can. The back anchor is there because a triplane's yz plane
gives a front point and its mirror image on the back the same features: held to the front alone, θ drew the
feature (as dents, under light) on both sides.

x̃ shows objects larger than the prior's data does (its sampler's blur), so the anchor does not set the size:
at each step it is fitted to the outline box of the render (`fit_to_box`), and only the pixels where both the
render and the fitted anchor show the object are pulled to its colours (`anchor_loss`). It moves colour and the
feature on the object the render already has, and neither grows nor cuts its outline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..cameras import view_direction
from .reference import inner_object_pixels, object_pixels

ANCHOR_VIEWS = ("front", "back")  # the view words anchored, at azimuths 0 and 180 (the back: no Janus)
ANCHOR_AZIMUTHS = (0.0, 180.0)


def view_anchors(images: torch.Tensor, views: torch.Tensor, words: Sequence[str] = ANCHOR_VIEWS) -> torch.Tensor:
    """For each view word of `words` (some of ANCHOR_VIEWS), the medoid [H,W,3] of the images [N,H,W,3] in [0,1]
    whose camera (views [N,2]: azimuth, elevation in degrees) has that word: the one nearest, on average, to all
    the others in pixel space. [len(words),H,W,3]."""
    seen = [view_direction(a, e) for a, e in views.tolist()]
    medoids = []
    for word in words:
        picked = images[torch.tensor([w == word for w in seen])]
        if len(picked) == 0:
            raise ValueError(f"x̃ has no {word} view to anchor to: raise reference.count")
        flat = picked.flatten(1).float()  # [F,H*W*3]
        medoids.append(picked[torch.cdist(flat, flat).mean(1).argmin()])
    return torch.stack(medoids)


def outline_box(mask: torch.Tensor) -> torch.Tensor | None:
    """The object's box in normalized image coordinates (align_corners=False), [x0, x1, y0, y1] with −1 the
    left / top edge of the image and 1 the right / bottom one, of mask [H,W]; None where it is empty."""
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    if rows.numel() == 0:
        return None
    h, w = mask.shape
    edges = torch.stack([cols[0], cols[-1] + 1, rows[0], rows[-1] + 1]).float()  # pixel edges
    return torch.cat([edges[:2] * 2 / w - 1, edges[2:] * 2 / h - 1])


def fit_to_box(anchor: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor | None:
    """The anchor [H',W',3] resampled onto the render rgb [1,H,W,3] so that its outline box lands on the
    render's (`object_pixels`), white outside the anchor's image; None where the render shows no object."""
    to_box, from_box = outline_box(object_pixels(rgb)[0]), outline_box(object_pixels(anchor[None])[0])
    if to_box is None or from_box is None:
        return None
    scale = (from_box[1::2] - from_box[::2]) / (to_box[1::2] - to_box[::2])  # [2]: x, y
    shift = from_box[::2] - to_box[::2] * scale
    theta = torch.stack(
        [torch.stack([scale[0], scale.new_zeros(()), shift[0]]), torch.stack([scale.new_zeros(()), scale[1], shift[1]])]
    )[None]  # [1,2,3]
    grid = F.affine_grid(theta, [1, 3, *rgb.shape[1:3]], align_corners=False)
    moved = F.grid_sample(anchor.permute(2, 0, 1)[None].float() - 1, grid, align_corners=False) + 1  # white pad
    return moved.permute(0, 2, 3, 1).to(rgb.dtype)  # [1,H,W,3]


def anchor_loss(rgb: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """Mean squared colour error of the render rgb [1,H,W,3] against the anchor fitted to its box, over the
    inner object pixels of both (edges left out); 0 where they share none. A pixel that only one of them shows
    as object is not pulled: x̃'s blur makes its shapes fuller than the render's, and filling them in would grow
    the box the anchor is fitted to, step after step, to the bound."""
    target = fit_to_box(anchor, rgb)
    if target is None:
        return rgb.sum() * 0.0
    mask = inner_object_pixels(target) & inner_object_pixels(rgb)
    if not bool(mask.any()):
        return rgb.sum() * 0.0
    return (rgb[mask] - target[mask]).square().sum(-1).mean()
