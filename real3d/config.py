"""Typed configs: dataclasses, YAML presets, dotted command-line overrides, one-line errors.

A run's config is a tree of dataclasses. A component slot is a pair of fields,

    renderer_type: str = "nerf"
    renderer: Any = component("renderer")

and the dict under `renderer:` is parsed with the `Config` of the class registered as
("renderer", renderer_type). Values are checked against their annotation and optional bounds
(`bounded(...)`); every mistake raises ConfigError with one line naming the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from . import registry
from .errors import ConfigError
from .io import write_text

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
BUDGET_DIR = CONFIG_DIR / "budgets"


def component(kind: str) -> Any:
    """A dataclass field holding the config of a registered component of `kind` (chosen by `<name>_type`)."""
    return dataclasses.field(default_factory=dict, metadata={"component": kind})


def bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    """A dataclass field with an inclusive numeric range [lo, hi] (either end optional)."""
    kw = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return dataclasses.field(metadata={"lo": lo, "hi": hi}, **kw)


def step_count(default: int) -> Any:
    """A dataclass field counting optimisation steps (>= 0); `rescale_steps` scales it with the budget."""
    return dataclasses.field(default=default, metadata={"lo": 0, "hi": None, "steps": True})


Scheduled = float | list[float]  # a constant, or [start_step, start_value, end_value, end_step]


def scheduled(value: Scheduled, step: int) -> float:
    """A scheduled config value at `step` (threestudio style): constant, or linear from start_value at
    start_step to end_value at end_step, held outside (start_step == end_step makes a switch)."""
    if not isinstance(value, list):
        return float(value)
    s0, v0, v1, s1 = value
    if step <= s0:
        return v0
    if step >= s1:
        return v1
    return v0 + (v1 - v0) * (step - s0) / (s1 - s0)


def schedule_values(value: Scheduled) -> list[float]:
    """The values a schedule takes: [value] for a constant, [start_value, end_value] for a list."""
    return list(value[1:3]) if isinstance(value, list) else [float(value)]


def check_scheduled(value: Scheduled, where: str, lo: float | None = None, hi: float | None = None) -> None:
    """A list-valued schedule must be [start_step, start_value, end_value, end_step] with start <= end, and
    every value it takes >= lo and <= hi where they are given."""
    if isinstance(value, list) and (len(value) != 4 or value[0] > value[3]):
        raise ConfigError(
            f"{where}: expected a number or [start_step, start_value, end_value, end_step] "
            f"with start_step <= end_step, got {value}"
        )
    if lo is not None and min(schedule_values(value)) < lo:
        raise ConfigError(f"{where}: every value must be >= {lo}, got {value}")
    if hi is not None and max(schedule_values(value)) > hi:
        raise ConfigError(f"{where}: every value must be <= {hi}, got {value}")


def rescale_steps(cfg: Any, steps: int) -> Any:
    """The config with a budget of `steps` and every step-valued field (the ends of list schedules and
    `step_count` fields) scaled by steps / cfg.steps, so a preset keeps its shape over a shorter run."""
    factor = steps / cfg.steps

    def scale(node: Any) -> Any:
        if not dataclasses.is_dataclass(node):
            return node
        hints, changes = typing.get_type_hints(type(node)), {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.metadata.get("steps"):
                changes[f.name] = round(value * factor)
            elif hints[f.name] == Scheduled and isinstance(value, list):
                changes[f.name] = [round(value[0] * factor), value[1], value[2], round(value[3] * factor)]
            elif dataclasses.is_dataclass(value):
                changes[f.name] = scale(value)
        return dataclasses.replace(node, **changes)  # type: ignore[type-var]  # node is an instance here

    return dataclasses.replace(scale(cfg), steps=steps)


# ----------------------------------------------------------------------------------------------- parsing


def _nearest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    return "did you mean " + " or ".join(close) + "?" if close else "valid keys: " + ", ".join(valid)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin is dict:
        return f"a mapping of names to {_plural(typing.get_args(tp)[1])}"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _plural(tp: Any) -> str:
    """'numbers' for float, 'integers' for int, ...: _type_name without its article, made plural."""
    name = _type_name(tp)
    return {"true or false": "true or false values"}.get(name, re.sub(r"^an? ", "", name) + "s")


class _WrongType(ConfigError):
    """A value of another type than the key takes (a union tries its next arm; any other refusal is final)."""


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against annotation `tp`; return it converted (int → float, list → tuple)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = _WrongType(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        refusals = []
        for arg in args:
            try:
                return _coerce(value, arg, path)
            except _WrongType:
                continue
            except ConfigError as e:  # the right type, refused (a non-finite number): say why, not the union
                refusals.append(e)
        raise refusals[0] if refusals else bad
    if origin is Literal:
        if value not in args:
            raise bad
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        if origin is tuple and Ellipsis not in args and len(args) != len(value):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {value!r}")
        items = [_coerce(v, args[0] if args else Any, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return {str(k): _coerce(v, args[1], f"{path}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return parse(tp, value, path)
    if tp is float and isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value):
        value = float(value)  # YAML 1.1 reads 2e-2 (no dot) as a string; users mean the number
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):  # .nan, .inf and 1e309 are never a setting
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is bool or tp is int:
        if type(value) is not tp:
            raise bad
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp is type(None) and value is None:
        return None
    raise bad


def _check_bounds(value: Any, meta: typing.Mapping[str, Any], path: str) -> None:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is None and hi is None:
        return
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if v is not None and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            rng = (
                f"between {lo} and {hi}"
                if lo is not None and hi is not None
                else (f">= {lo}" if lo is not None else f"<= {hi}")
            )
            raise ConfigError(f"{path}: must be {rng}, got {value!r}")


def parse(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass `cls` from a plain dict, checking keys, types, ranges and component names."""
    where = path or "config"
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data):
        data = to_dict(data)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown config key '{_join(path, key)}': {_nearest(str(key), sorted(fields))}")
    values: dict[str, Any] = {}
    for name, f in fields.items():  # component fields come after their `_type` field
        key = _join(path, name)
        if "component" in f.metadata:
            kind, chosen = f.metadata["component"], values[name + "_type"]
            if chosen not in registry.names(kind):
                raise ConfigError(
                    f"{key}_type: unknown {kind} '{chosen}'; choose one of: " + ", ".join(registry.names(kind))
                )
            values[name] = parse(registry.lookup(kind, chosen).Config, data.get(name), key)
        elif name in data:
            values[name] = _coerce(data[name], hints[name], key)
            _check_bounds(values[name], f.metadata, key)
        else:
            values[name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        check(where)
    return obj


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def to_dict(cfg: Any) -> Any:
    """Plain YAML-ready data from a config tree (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


# ---------------------------------------------------------------------------------- files and overrides


def presets() -> list[str]:
    """Names of the YAML presets shipped in configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def budgets() -> list[str]:
    """Names of the budgets in configs/budgets/ (what a longer or shorter run changes, see resolve_preset)."""
    return sorted(p.stem for p in BUDGET_DIR.glob("*.yaml"))


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; unreadable files raise ConfigError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {e.start}); give a YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"cannot parse config file {path}{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    _check_keys(data, str(path))
    return data


def _check_keys(data: dict[Any, Any], where: str) -> None:
    """Every key of a YAML mapping, at any depth, is a name (YAML also allows numbers, null and lists)."""
    for k, v in data.items():
        if not isinstance(k, str):
            raise ConfigError(f"{where}: key {k!r} is not a name; keys are words like renderer or num_samples")
        if isinstance(v, dict):
            _check_keys(v, where)


def _preset_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path
    if (CONFIG_DIR / f"{name_or_path}.yaml").exists():
        return CONFIG_DIR / f"{name_or_path}.yaml"
    raise ConfigError(
        f"unknown preset '{name_or_path}'; presets: {', '.join(presets())}, each also with a budget "
        f"as NAME-BUDGET ({', '.join(budgets())}), or a path to a .yaml file"
    )


def _layers(name_or_path: str, default_base: str | None = None) -> list[dict[str, Any]]:
    """The raw dicts of a preset and the presets it is based on (`base:`), the root first. A YAML file of the
    user's without `base:` is based on `default_base` (the job's default preset), so an empty or partial file
    changes that preset instead of falling back to the dataclass defaults."""
    path = _preset_path(name_or_path)
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None and default_base is not None and path.parent != CONFIG_DIR:
        base = default_base
    return [*(_layers(base) if base else []), data]


def _split_budget(name: str) -> tuple[str, str | None]:
    """`real3d-quality` names preset real3d with budget quality, unless a file of that very name exists."""
    stem, _, budget = name.rpartition("-")
    if stem and budget in budgets() and not (CONFIG_DIR / f"{name}.yaml").exists() and "/" not in name:
        return stem, budget
    return name, None


def resolve_preset(
    name_or_path: str, budget: str | None = None, default_base: str | None = None
) -> tuple[dict[str, Any], int | None]:
    """The raw dict of a preset (name, NAME-BUDGET or YAML path) with `base:` inheritance and its budget
    resolved, and the budget's step count (None: the steps as written).

    A budget (configs/budgets/NAME.yaml, chosen by `budget`, the NAME-BUDGET form or a `budget:` key of the
    preset) is what a longer run changes in the root method preset: its body is merged right above the root
    (so presets built on it keep their own changes), and its `steps` rescale every step-valued field."""
    name, named = _split_budget(name_or_path)
    layers = _layers(name, default_base)
    in_files = [b for b in (layer.pop("budget", None) for layer in layers) if b is not None]
    chosen = budget or named or (in_files[-1] if in_files else None)
    steps = None
    if chosen is not None:
        if chosen not in budgets():
            raise ConfigError(f"unknown budget '{chosen}'; budgets: {', '.join(budgets())}")
        body = read_yaml(BUDGET_DIR / f"{chosen}.yaml")
        steps = body.pop("steps", None)
        layers.insert(1, body)
    out: dict[str, Any] = {}
    for layer in layers:
        out = merge(out, layer)
    return out, steps


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: values of `over` win, nested mappings merge; where `over` picks another
    component (`X_type`), the base's section `X` is dropped (it configured the other component)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(k, str) and k.endswith("_type") and k in out and out[k] != v:
            out.pop(k[: -len("_type")], None)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings (value parsed as YAML) to a raw config dict, in order.

    Changing a component's `X_type` clears its section `X`, so `background_type=mlp background.hidden=32` works.
    """
    out = merge({}, data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' must look like key.subkey=value, e.g. renderer.num_samples=48")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            child = node.get(p)
            node[p] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        slot = parts[-1][: -len("_type")] if parts[-1].endswith("_type") else None
        if slot and node.get(parts[-1]) != value:
            node[slot] = {}  # another component type starts from its own defaults
        node[parts[-1]] = value
    return out


def load(
    cls: type,
    preset: str | None,
    overrides: list[str] | None = None,
    budget: str | None = None,
    default_base: str | None = None,
) -> Any:
    """Preset (name, NAME-BUDGET or file; None: the dataclass defaults) at a budget (configs/budgets/; None: the
    preset's own) + dotted overrides, applied last → a checked config of dataclass `cls`."""
    raw, steps = resolve_preset(preset, budget, default_base) if preset else ({}, None)
    if steps is None:
        return parse(cls, apply_overrides(raw, overrides or []))
    cfg = rescale_steps(parse(cls, raw), steps)
    return parse(cls, apply_overrides(to_dict(cfg), overrides)) if overrides else cfg


def save(cfg: Any, path: Path) -> None:
    """Write the resolved config as YAML, atomically; `load(cls, str(path))` runs it again."""
    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
