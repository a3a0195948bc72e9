"""A layout-aware start: one density blob per object of a prompt "A <relation> B" (the init of Eq. 5's σ).

θ starts as a soft ball (DreamFusion / Magic3D's density blob, `TriplaneField.blob`). For a prompt of two
objects and a relation, one ball at the origin asks SDS to split it, which a small prior rarely does: the two
objects merge into one shape of one colour. Here the prompt's relation places two smaller blobs instead —
"A on top of B" stacks A above B along +z, "A next to B" puts A on the left of B seen from the front (the
front faces +x, so the viewer's left is −y). Any other prompt keeps the single blob.

The two sides of the relation are also the objects' own prompts ("a red cube", "a blue sphere"): with
`system.p_local`, a step draws one object alone, zoomed to the size of a single object, and scores it with
its own prompt (local guidance, `Real3DSystem.local_object`), which a small prior draws far better than
the pair; the other steps see the whole scene with the whole prompt (Eq. 11).

The words are general English, not the toy world's parser: a user's "a teapot on a table" is laid out too.

A prompt of one object can start from an ellipsoid in place of the ball (`system.start_shape: reference`):
`start_axes` stretches the blob to as many times as tall as wide as the prior's own samples x̃ show the object
(`guidance.reference.silhouette_aspect`), so a capsule or a cylinder does not have to grow out of a ball.
"""

from __future__ import annotations

import math
import re

# relation phrase → (A's offset direction, whether A and B swap); A is the text before the phrase
_RELATIONS: dict[str, tuple[tuple[float, float, float], bool]] = {
    "on top of": ((0.0, 0.0, 1.0), False),
    "above": ((0.0, 0.0, 1.0), False),
    "on": ((0.0, 0.0, 1.0), False),
    "under": ((0.0, 0.0, 1.0), True),
    "below": ((0.0, 0.0, 1.0), True),
    "beneath": ((0.0, 0.0, 1.0), True),
    "next to": ((0.0, -1.0, 0.0), False),
    "beside": ((0.0, -1.0, 0.0), False),
    "left of": ((0.0, -1.0, 0.0), False),
    "right of": ((0.0, -1.0, 0.0), True),
}
# longest phrase first, so "on top of" wins over "on"; "to the left of" reads as "left of"
_PATTERN = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _RELATIONS), key=len, reverse=True)) + r")\b")

OFFSET = 0.36  # each blob's centre from the origin (scene cube half-size 1)
RADIUS = 0.32  # each blob's radius (the single blob's default is 0.5): the two nearly touch when stacked


def _split(prompt: str) -> tuple[str, str, str] | None:
    """(A, relation phrase, B) at the first relation phrase with an object on each side, or None."""
    text = prompt.lower()
    for m in _PATTERN.finditer(text):
        a, b = text[: m.start()].strip(" ,."), text[m.end() :].strip(" ,.")
        if re.search(r"\w", a) and re.search(r"\w", b):
            return prompt[: m.start()].strip(" ,."), m.group(1), prompt[m.end() :].strip(" ,.")
    return None


def relation(prompt: str) -> str | None:
    """The first relation phrase of `prompt` with an object on each side, or None."""
    parts = _split(prompt)
    return parts[1] if parts else None


def objects(prompt: str) -> list[str] | None:
    """The object prompts [A, B] of "A <relation> B" (in the order of `blobs`), None for any other prompt."""
    parts = _split(prompt)
    return [parts[0], parts[2]] if parts else None


def blobs(prompt: str) -> list[list[float]] | None:
    """[[x, y, z, r], …]: two blobs for "A <relation> B" (A's first), None for any other prompt (one blob)."""
    rel = relation(prompt)
    if rel is None:
        return None
    direction, swap = _RELATIONS[rel]
    sign = -1.0 if swap else 1.0
    a = [sign * OFFSET * d + 0.0 for d in direction]  # + 0.0: no −0.0 in the saved config
    b = [0.0 - c for c in a]
    return [[*a, RADIUS], [*b, RADIUS]]


def start_axes(aspect: float, elevation: float, margin: float = 0.25, limit: float = 3.0) -> list[float]:
    """The start blob's semi-axes [x, y, z] in units of its radius for a one-object prompt whose views at
    `elevation` degrees show the object `aspect` times as tall as wide (x̃'s `silhouette_aspect`).

    An ellipsoid of semi-axes (s, s, k·s) seen from elevation e has a silhouette √(k² cos² e + sin² e) times as
    tall as wide, so k = √((aspect² − sin² e) / cos² e), held to [1 / limit, limit]. The axes are (k^−½, k^−½,
    k^½): the radius is the geometric mean of the height and the width, so a tall start is also a narrower
    and smaller one (an ellipsoid of the ball's volume grows a cylinder taller than the ball does). A k
    within `margin` of 1 (1 / (1 + margin) to 1 + margin) keeps the ball: x̃ reads a cube 1.03–1.07 tall
    against its GT views' 0.92, and the cones (k ≈ 1.2) lose mesh IoU from a start so little taller
    (docs/results.md, twenty-ninth round)."""
    e = math.radians(elevation)
    k = math.sqrt(max(aspect**2 - math.sin(e) ** 2, 0.0) / math.cos(e) ** 2)
    if 1 / (1 + margin) < k < 1 + margin:
        return [1.0, 1.0, 1.0]
    k = min(max(k, 1 / limit), limit)
    return [k**-0.5, k**-0.5, k**0.5]
