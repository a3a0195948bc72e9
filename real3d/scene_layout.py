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
"""

from __future__ import annotations

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
