"""Typed configuration: dataclasses, YAML loading, dotted overrides, validation, resolved dumps.

Every concern (data, features, model, flow, optim, train, decode, score) owns one
``@dataclass(kw_only=True)`` next to the code that uses it; a top-level config composes them.
This module holds the machinery that turns YAML + command-line overrides into those dataclasses::

    cfg = load_config(ExperimentConfig, "conf/train.yaml", overrides=["optim.lr=2e-3", "model.depth=4"])
    dump_config(cfg, exp_dir / "config.yaml")

Rules:
* Unknown keys are errors that name the full key path (``model.dpeth``) and the file.
* Values are checked against the field's type annotation (int, float, bool, str, Path, Optional,
  Literal, list[...], tuple[...], dict[str, ...], nested dataclasses); ints are accepted for floats.
* A dataclass may define ``validate(self)`` and raise :class:`ConfigError` with :func:`config_check`;
  it is called after structuring, innermost first, with the key path prefixed to the message.
* Removed options stay readable in old experiment folders: a dataclass lists them in a class attribute
  ``RETIRED = {key: (no_op_value, reason)}``; a retired key set to its no-op value (or any value, when that is
  :data:`ANY`) is dropped with a log line, any other value is an error that says why the option went.
* Overrides are ``key.path=value`` strings; the value is parsed as YAML (``4``, ``true``, ``[1,2]``,
  ``null``), so they go through the same type checks as the file.
"""
from __future__ import annotations

import dataclasses
import logging
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, TypeVar, Union, get_args, get_origin

import yaml

from elfs2t.atomic import write_text
from elfs2t.errors import ConfigError

T = TypeVar("T")
log = logging.getLogger(__name__)

ANY = object()
"""The no-op value of a retired key whose value never mattered (e.g. a decoding setting stored with a model)."""

__all__ = [
    "ANY",
    "ConfigError",
    "config_check",
    "structure",
    "unstructure",
    "load_config",
    "load_yaml",
    "apply_overrides",
    "dump_config",
    "config_hash",
]


def config_check(condition: bool, key: str, value: Any, requirement: str) -> None:
    """Raise :class:`ConfigError` ``"<key>=<value!r>: <requirement>"`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key}={value!r}: {requirement}")


# ---------------------------------------------------------------------------------------------
# YAML and overrides
# ---------------------------------------------------------------------------------------------
def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file (and line, for syntax errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested dict, returning a new dict."""
    out = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.path=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        out = _deep_merge(out, nested)
    return out


# ---------------------------------------------------------------------------------------------
# Structuring dicts into dataclasses
# ---------------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}={value!r}: expected {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        config_check(value in choices, key, value, f"must be one of {list(choices)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return structure(tp, value, prefix=key)
    if origin in (list, tuple) or tp in (list, tuple):
        config_check(isinstance(value, (list, tuple)), key, value, f"expected a list ({_type_name(tp)})")
        args = get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            config_check(len(value) == len(args), key, value, f"expected {len(args)} items")
            return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        config_check(isinstance(value, Mapping), key, value, "expected a mapping")
        args = get_args(tp)
        k_tp, v_tp = args if args else (Any, Any)
        return {_convert(k, k_tp, key): _convert(v, v_tp, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        config_check(isinstance(value, bool), key, value, "expected true or false")
        return value
    if tp is int:
        config_check(isinstance(value, int) and not isinstance(value, bool), key, value, "expected an integer")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        config_check(isinstance(value, (int, float)) and not isinstance(value, bool), key, value, "expected a number")
        return float(value)
    if tp is str:
        config_check(isinstance(value, str), key, value, "expected a string")
        return value
    if tp is Path:
        config_check(isinstance(value, (str, Path)), key, value, "expected a path")
        return Path(value)
    return value


def _drop_retired(cls: type, data: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    """``data`` without the keys ``cls.RETIRED`` lists, when they hold their no-op value (see the module docstring)."""
    retired = getattr(cls, "RETIRED", None) or {}
    hits = [k for k in data if k in retired]
    if not hits:
        return data
    out = dict(data)
    for name in hits:
        no_op, reason = retired[name]
        key = f"{prefix}.{name}" if prefix else name
        if no_op is not ANY and out[name] != no_op:
            raise ConfigError(f"{key}={out[name]!r}: this option was removed ({reason}); only {no_op!r}, what "
                              "the code does now, is still accepted")
        log.info("config: ignoring the removed option %s (%s)", key, reason)
        del out[name]
    return out


def structure(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, checking keys and types; then ``validate()``."""
    data = {} if data is None else data
    where = prefix or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    data = _drop_retired(cls, data, prefix)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        path = [f"{prefix}.{k}" if prefix else k for k in unknown]
        raise ConfigError(f"unknown config key(s) {path}; valid keys under '{where}': {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _convert(value, hints[name], key)
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from exc
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as exc:
            msg = str(exc)
            raise ConfigError(f"{prefix}.{msg}" if prefix and not msg.startswith(prefix) else msg) from exc
    return obj


def unstructure(obj: Any) -> Any:
    """Dataclasses -> plain YAML-safe Python (dicts, lists, str for paths)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: unstructure(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [unstructure(v) for v in obj]
    if isinstance(obj, dict):
        return {k: unstructure(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """YAML file (optional) merged over ``base``, then overrides, structured into ``cls``.

    Errors name the file they came from.
    """
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = _deep_merge(data, load_yaml(path))
    data = apply_overrides(data, overrides)
    try:
        return structure(cls, data)
    except ConfigError as exc:
        if path is None:
            raise
        raise ConfigError(f"{path}: {exc}") from exc


def dump_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically) and return the path."""
    return write_text(path, yaml.safe_dump(unstructure(cfg), sort_keys=False))


def config_hash(cfg: Any, length: int = 8) -> str:
    """Short stable hash of a config, used to refuse silent reuse of an experiment folder."""
    import hashlib

    text = yaml.safe_dump(unstructure(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
