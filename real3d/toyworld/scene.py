"""Toy-world scenes: vocabulary, the scene tree with its SDF and albedo, captions and the prompt parser.

A scene is one object, or two objects and a relation ("on top of": objects[0] rests on objects[1];
"next to": objects[0] on the left, seen from the front). Objects follow the camera convention of
real3d.cameras: +z up, the **front faces +x**; a feature (face, door, handle) sits on the front in a
contrasting colour so that a 64 px view can tell front from back.
"""

from __future__ import annotations

import difflib
import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch

from ..cameras import view_direction, without_view
from ..errors import UserError, shorten
from . import sdf as S

# ------------------------------------------------------------------------------------------- vocabulary

SHAPES = ["sphere", "cube", "cylinder", "cone", "torus", "capsule"]
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "orange": (0.98, 0.52, 0.06),
    "yellow": (0.95, 0.86, 0.12),
    "green": (0.16, 0.62, 0.18),
    "cyan": (0.10, 0.78, 0.82),
    "blue": (0.12, 0.24, 0.88),
    "purple": (0.52, 0.16, 0.72),
    "pink": (0.98, 0.55, 0.74),
    "black": (0.07, 0.07, 0.07),
}
FEATURES = ["face", "door", "handle"]
FEATURE_SHAPES = {
    "face": ["sphere", "cube", "cylinder", "capsule"],
    "door": ["cube", "cylinder"],
    "handle": ["cube", "cylinder"],
}
RELATIONS = ["on top of", "next to"]

SYNONYMS: dict[str, list[str]] = {  # canonical word first; captions draw from these, the parser accepts all
    "sphere": ["sphere", "ball"],
    "cube": ["cube", "box", "block"],
    "cylinder": ["cylinder", "can"],
    "cone": ["cone"],
    "torus": ["torus", "donut", "ring"],
    "capsule": ["capsule", "pill"],
    "purple": ["purple", "violet"],
    "cyan": ["cyan", "turquoise"],
    "on top of": ["on top of", "on", "above"],
    "next to": ["next to", "beside"],
}
INVERSE_RELATIONS = {"under": "on top of", "below": "on top of", "beneath": "on top of"}  # swap the objects
ARTICLES = {"a", "an", "the"}

FEATURE_INK = {"dark": (0.06, 0.06, 0.06), "light": (0.96, 0.96, 0.96)}  # feature colour on light / dark bodies
SINGLE_SCALE, PAIR_SCALE, PAIR_GAP = 0.7, 0.42, 0.45  # unit-size shapes scaled to these; next-to centres at ±gap


def _synonyms(word: str) -> list[str]:
    return SYNONYMS.get(word, [word])


# -------------------------------------------------------------------------------------------- the scene


@dataclass(frozen=True)
class Obj:
    """One object: a unit-size primitive scaled by `scale` and moved to `position` (world units)."""

    shape: str
    colour: str
    feature: str | None = None
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = SINGLE_SCALE


@dataclass(frozen=True)
class Part:
    """A piece of an object: `sdf` at unit size, placed at `centre` with `scale`, in one colour."""

    sdf: Callable[[torch.Tensor], torch.Tensor]
    centre: tuple[float, float, float]
    scale: float
    rgb: tuple[float, float, float]


def _ink(colour: str) -> tuple[float, float, float]:
    r, g, b = COLOURS[colour]
    return FEATURE_INK["dark" if 0.3 * r + 0.59 * g + 0.11 * b > 0.3 else "light"]


def _feature_parts(obj: Obj) -> list[Part]:
    """Unit-size pieces of the object's front feature, on its +x surface."""
    prim = S.PRIMITIVES[obj.shape]
    assert prim.front_x is not None and obj.feature in FEATURES, f"{obj.shape} cannot carry {obj.feature}"
    front, hh, ink = prim.front_x, prim.half_height, _ink(obj.colour)

    def at(x: float, y: float, z: float) -> tuple[float, float, float]:
        return tuple(c + obj.scale * u for c, u in zip(obj.position, (x, y, z)))  # type: ignore[return-value]

    if obj.feature == "face":
        eyes = [Part(lambda p: S.sphere(p, 0.17), at(front(y, 0.25), y, 0.25), obj.scale, ink) for y in (-0.3, 0.3)]
        mouth = Part(
            lambda p: S.capsule(p[:, [0, 2, 1]], 0.08, 0.24), at(front(0.0, -0.25), 0.0, -0.25), obj.scale, ink
        )
        return eyes + [mouth]
    if obj.feature == "door":
        return [Part(lambda p: S.box(p, (0.08, 0.24, 0.38)), at(front(0.0, 0.0), 0.0, -hh + 0.38), obj.scale, ink)]
    return [Part(lambda p: S.torus(p, 0.3, 0.09, axis=1), at(front(0.0, 0.0) + 0.05, 0.0, 0.0), obj.scale, ink)]


@dataclass(frozen=True)
class Scene:
    """One object, or two with a relation; `yaw` (degrees) turns the whole scene about +z."""

    objects: tuple[Obj, ...]
    relation: str | None = None
    yaw: float = 0.0

    def __post_init__(self) -> None:
        assert (len(self.objects) == 1) == (self.relation is None), "two objects need a relation, one needs none"
        assert self.relation is None or self.relation in RELATIONS, f"unknown relation {self.relation}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Scene:
        d = json.loads(text)
        objects = tuple(
            Obj(o["shape"], o["colour"], o["feature"], tuple(o["position"]), o["scale"]) for o in d["objects"]
        )
        return Scene(objects, d["relation"], d["yaw"])

    @property
    def prompt(self) -> str:
        """The canonical caption (no synonyms, no view suffix)."""
        return caption(self)

    def parts(self) -> list[Part]:
        out = []
        for obj in self.objects:
            out.append(Part(S.PRIMITIVES[obj.shape].sdf, obj.position, obj.scale, COLOURS[obj.colour]))
            if obj.feature is not None:
                out += _feature_parts(obj)
        return out

    def _local(self, points: torch.Tensor) -> torch.Tensor:
        """World points [N,3] → scene frame (undo the yaw)."""
        if self.yaw == 0.0:
            return points
        c, s = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        x, y = points[:, 0], points[:, 1]
        return torch.stack([c * x + s * y, -s * x + c * y, points[:, 2]], dim=-1)

    def part_sdfs(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance to every part [P,N] of world points [N,3]."""
        p = self._local(points)
        return torch.stack(
            [part.scale * part.sdf((p - p.new_tensor(part.centre)) / part.scale) for part in self.parts()]
        )

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance [N] of world points [N,3] (negative inside)."""
        return self.part_sdfs(points).min(dim=0).values

    def nearest_part(self, points: torch.Tensor) -> torch.Tensor:
        """Index [N] into parts() of the part nearest to each world point [N,3]."""
        return self.part_sdfs(points).argmin(dim=0)

    def palette(self) -> torch.Tensor:
        """Colour [P,3] in [0,1] of each part of parts()."""
        return torch.tensor([part.rgb for part in self.parts()])

    def part_owners(self) -> list[tuple[int, bool]]:
        """Per part of parts(): the index of its object and whether it is a piece of that object's front feature."""
        out = []
        for i, obj in enumerate(self.objects):
            out.append((i, False))
            if obj.feature is not None:
                out += [(i, True)] * len(_feature_parts(obj))
        return out


def compose(objects: list[tuple[str, str, str | None]], relation: str | None = None) -> Scene:
    """A scene in its canonical layout from (shape, colour, feature) triples and a relation."""
    if relation is None:
        shape, colour, feature = objects[0]
        return Scene((Obj(shape, colour, feature),))
    (sa, ca, fa), (sb, cb, fb) = objects
    if relation == "next to":
        a = Obj(sa, ca, fa, (0.0, -PAIR_GAP, 0.0), PAIR_SCALE)
        b = Obj(sb, cb, fb, (0.0, PAIR_GAP, 0.0), PAIR_SCALE)
    else:  # on top of: a stack centred on the origin
        ha, hb = S.PRIMITIVES[sa].half_height * PAIR_SCALE, S.PRIMITIVES[sb].half_height * PAIR_SCALE
        bottom = -(ha + hb)
        b = Obj(sb, cb, fb, (0.0, 0.0, bottom + hb), PAIR_SCALE)
        a = Obj(sa, ca, fa, (0.0, 0.0, bottom + 2 * hb + ha), PAIR_SCALE)
    return Scene((a, b), relation)


def random_scene(gen: random.Random, p_single: float = 0.34, p_feature: float = 0.4) -> Scene:
    """A random scene in canonical layout: one object with probability p_single, else two and a relation."""

    def one() -> tuple[str, str, str | None]:
        shape, colour = gen.choice(SHAPES), gen.choice(list(COLOURS))
        allowed = [f for f in FEATURES if shape in FEATURE_SHAPES[f]]
        feature = gen.choice(allowed) if allowed and gen.random() < p_feature else None
        return shape, colour, feature

    if gen.random() < p_single:
        return compose([one()])
    return compose([one(), one()], gen.choice(RELATIONS))


def jitter(
    scene: Scene, gen: random.Random, scale: tuple[float, float] = (0.85, 1.1), shift: float = 0.06, yaw: float = 20.0
) -> Scene:
    """The scene uniformly rescaled, shifted and turned a little (contacts between objects are kept)."""
    k = gen.uniform(*scale)
    d = [gen.uniform(-shift, shift) for _ in range(3)]
    objects = tuple(
        replace(
            o,
            position=(k * o.position[0] + d[0], k * o.position[1] + d[1], k * o.position[2] + d[2]),
            scale=k * o.scale,
        )
        for o in scene.objects
    )
    return replace(scene, objects=objects, yaw=scene.yaw + gen.uniform(-yaw, yaw))


# ------------------------------------------------------------------------------------ captions & parser


def _describe(obj: Obj, gen: random.Random | None) -> str:
    pick = (lambda words: gen.choice(words)) if gen is not None else (lambda words: words[0])
    colour = pick(_synonyms(obj.colour))
    text = f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {pick(_synonyms(obj.shape))}"
    return text + (f" with a {obj.feature}" if obj.feature else "")


def caption(scene: Scene, gen: random.Random | None = None) -> str:
    """The scene in words; with `gen`, synonyms and the inverse relation ("under") are drawn at random."""
    if scene.relation is None:
        return _describe(scene.objects[0], gen)
    a, b = (_describe(o, gen) for o in scene.objects)
    if gen is None:
        return f"{a} {scene.relation} {b}"
    if scene.relation == "on top of" and gen.random() < 0.25:
        return f"{b} {gen.choice(list(INVERSE_RELATIONS))} {a}"
    return f"{a} {gen.choice(_synonyms(scene.relation))} {b}"


def view_caption(prompt: str, azimuth: float, elevation: float) -> str:
    """Prompt with DreamFusion's view suffix for a camera, as the generator chooses it (cameras.view_direction)."""
    return f"{prompt}, {view_direction(azimuth, elevation)} view"


_WORDS: dict[str, tuple[str, str]] = {}  # word → (kind, canonical)
for _kind, _names in (("shape", SHAPES), ("colour", list(COLOURS)), ("feature", FEATURES)):
    for _name in _names:
        for _w in _synonyms(_name):
            _WORDS[_w] = (_kind, _name)
_PHRASES = {w: ("relation", r) for r in RELATIONS for w in _synonyms(r)}
_PHRASES.update({w: ("inverse", r) for w, r in INVERSE_RELATIONS.items()})
KNOWN_WORDS = sorted(set(_WORDS) | {w for p in _PHRASES for w in p.split()} | ARTICLES | {"with"})


def _tokens(prompt: str) -> list[str]:
    text = without_view(prompt.strip().lower())
    return re.sub(r"[^a-z\s]", " ", text).split()


def check_prompt(prompt: str) -> None:
    """A prompt the embedded prior can make: not empty, and only words of the toy world it was trained on
    (UserError naming the first unknown word and the nearest known ones)."""
    if not prompt.strip():
        raise UserError('the prompt is empty; give one, e.g. "a red cube on top of a blue sphere"')
    parse(prompt)


def parse(prompt: str) -> Scene:
    """Prompt → scene in canonical layout. Unknown words or grammar raise UserError (one line)."""
    words = _tokens(prompt)
    for w in words:
        if w not in KNOWN_WORDS:
            close = difflib.get_close_matches(w, KNOWN_WORDS, n=3, cutoff=0.7)  # typos, not any word
            hint = (
                f"did you mean {' or '.join(close)}?"
                if close
                else ("known shapes: " + ", ".join(SHAPES) + "; colours: " + ", ".join(COLOURS))
            )
            raise UserError(f"unknown word '{shorten(w)}' in prompt {shorten(prompt)!r}: {hint}")
    pos = 0

    def expect(kind: str, choices: list[str]) -> str:
        nonlocal pos
        while pos < len(words) and words[pos] in ARTICLES:
            pos += 1
        got = _WORDS.get(words[pos]) if pos < len(words) else None
        if got is None or got[0] != kind:
            seen = f"'{words[pos]}'" if pos < len(words) else "the end"
            raise UserError(
                f"expected a {kind} ({', '.join(choices)}) in prompt {shorten(prompt)!r}, got {shorten(seen)}"
            )
        pos += 1
        return got[1]

    def obj() -> tuple[str, str, str | None]:
        nonlocal pos
        colour = expect("colour", list(COLOURS))
        shape = expect("shape", SHAPES)
        feature = None
        if pos < len(words) and words[pos] == "with":
            pos += 1
            feature = expect("feature", FEATURES)
            if shape not in FEATURE_SHAPES[feature]:
                raise UserError(
                    f"a {shape} cannot have a {feature} in this world; a {feature} goes on a "
                    + " or ".join(FEATURE_SHAPES[feature])
                )
        return shape, colour, feature

    first = obj()
    if pos == len(words):
        return compose([first])
    for phrase, (kind, relation) in sorted(_PHRASES.items(), key=lambda kv: -len(kv[0])):
        n = len(phrase.split())
        if words[pos : pos + n] == phrase.split():
            pos += n
            second = obj()
            if pos != len(words):
                raise UserError(f"unexpected '{' '.join(words[pos:])}' at the end of prompt {prompt!r}")
            pair = [first, second] if kind == "relation" else [second, first]
            return compose(pair, relation)
    raise UserError(
        f"expected a relation ({', '.join(RELATIONS)}, under) after the first object in prompt "
        f"{prompt!r}, got '{words[pos]}'"
    )
