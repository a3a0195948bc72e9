"""One small registry: components register under a kind and a name, and are built from their typed config.

    @register("renderer", "nerf")
    class NeRFRenderer(nn.Module):
        @dataclass
        class Config: ...

A YAML config picks a component with `renderer_type: nerf` and configures it under `renderer:`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, dict[str, Any]] = {}  # kind → name → class (each with a `Config`)


def register(kind: str, name: str) -> Callable[[T], T]:
    """Class decorator: make `cls` buildable as the `kind` component `name`. It needs a nested `Config` dataclass."""

    def deco(cls: T) -> T:
        table = _REGISTRY.setdefault(kind, {})
        assert name not in table, f"{kind} {name!r} registered twice"
        assert hasattr(cls, "Config"), f"{cls.__name__} needs a nested Config dataclass"
        table[name] = cls
        return cls

    return deco


def names(kind: str) -> list[str]:
    """Registered names of one kind, sorted."""
    return sorted(_REGISTRY.get(kind, {}))


def lookup(kind: str, name: str) -> Any:
    """The class registered as `name` under `kind` (KeyError if none)."""
    return _REGISTRY[kind][name]


def build(kind: str, name: str, cfg: Any, **kwargs: Any) -> Any:
    """Instantiate component `name` of `kind` with its parsed Config instance `cfg`."""
    cls = lookup(kind, name)
    assert isinstance(cfg, cls.Config), f"{kind} {name} expects {cls.__name__}.Config, got {type(cfg).__name__}"
    return cls(cfg, **kwargs)
