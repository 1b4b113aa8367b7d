"""The decoding setting a trained model is meant to be used with, recorded in its experiment folder.

An experiment's ``config.yaml`` holds the ``decode`` section training validated with; the recipe decodes with
other settings (``run.sh --decode-confs``: named decoding configs, each a list of ``decode.*`` overrides) and picks
one to use. Stage 5 records
it with ``python -m elfs2t.bin.decode ... --record-setting``: ``exp/<tag>/decode_setting.yaml``::

    overrides: [decode.strategy=rescore]
    tag: rescore_k0.95_l0.05-0.2_d4        # the decode_<tag> folder it was scored in

``elfs2t.load`` / ``transcribe`` / ``export`` apply these overrides on top of the config (a user's own
``decode.*`` overrides go after them). A folder without the file decodes with its config's ``decode`` section.

A named decoding config (a recipe's ``conf/decode/<name>.yaml``, ``--decode-conf`` of ``decode`` and
``audio_reliance``) holds a ``decode:`` section alone, e.g. ``decode: {strategy: flow, flow: {steps: 4}}``;
:func:`decode_conf_overrides` turns it into the same ``decode.*`` overrides (``decode.strategy=flow
decode.flow.steps=4``), checked against the decoding config's keys, so a recorded setting never names a file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from elfs2t.atomic import write_text
from elfs2t.config import ConfigError, load_yaml, structure

__all__ = ["SETTING_FILE", "record_setting", "read_setting", "check_overrides", "decode_conf_overrides"]

SETTING_FILE = "decode_setting.yaml"


def check_overrides(overrides: list[str], where: str = "decoding") -> list[str]:
    """The overrides, if all are ``decode.*`` ones and none names a removed decoding option (ConfigError naming
    the others: a config file's removed option is dropped, but an override asks for a setting and would go unused,
    e.g. a ``decode.sampler.*`` setting recorded before ``decode.strategy``)."""
    from elfs2t.experiment import DecodeConfig

    bad = [o for o in overrides if not o.lstrip("-").startswith("decode.")]
    if bad:
        raise ConfigError(f"only decode.* keys can be overridden at {where} time, got {bad}")
    for o in overrides:
        key = o.lstrip("-").split("=", 1)[0].split(".")[1]
        if key in DecodeConfig.RETIRED:
            reason = DecodeConfig.RETIRED[key][1].split(";")[0]
            raise ConfigError(f"{o} ({where} override): decode.{key} is a removed option ({reason})")
    return list(overrides)


def record_setting(exp_dir: str | Path, overrides: list[str], tag: Optional[str] = None) -> Path:
    """Write ``exp_dir/decode_setting.yaml`` (atomically)."""
    return write_text(Path(exp_dir) / SETTING_FILE,
                      yaml.safe_dump({"overrides": check_overrides(overrides), "tag": tag}, sort_keys=False))


def read_setting(folder: str | Path) -> tuple[list[str], Optional[str]]:
    """The recorded overrides and decode tag of a model folder (``[], None`` without a record)."""
    path = Path(folder) / SETTING_FILE
    if not path.is_file():
        return [], None
    try:
        data = yaml.safe_load(path.read_text()) or {}
        overrides = [str(o) for o in data.get("overrides") or []]
    except (yaml.YAMLError, AttributeError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable decoding setting ({exc})") from exc
    return check_overrides(overrides, f"{path}: recorded decoding"), data.get("tag")


def _value_text(value: Any) -> str:
    """``value`` written so that an override's YAML parsing gives it back (``flow``, ``4``, ``1.0e-05``, ``[a, b]``)."""
    candidates = [value] if isinstance(value, str) else []
    candidates += [json.dumps(value), yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()]
    for text in candidates:
        try:
            parsed = yaml.safe_load(text) if text.strip() else ""  # as elfs2t.config.apply_overrides reads it
        except yaml.YAMLError:
            continue
        if parsed == value and type(parsed) is type(value):
            return text
    raise ConfigError(f"value {value!r} cannot be written as a decode.* override")


def _flatten(data: Any, prefix: str) -> list[str]:
    if isinstance(data, dict):
        return [o for key, value in data.items() for o in _flatten(value, f"{prefix}.{key}")]
    return [f"{prefix}={_value_text(data)}"]


def decode_conf_overrides(paths: Iterable[str | Path]) -> list[str]:
    """The ``decode.*`` overrides of named decoding configs (YAML files holding a ``decode:`` section alone), file
    after file, in each file's order. A key the decoding config does not have, a value of the wrong type or
    another top-level section is a ConfigError naming the file and the key."""
    from elfs2t.experiment import DecodeConfig

    overrides: list[str] = []
    for path in paths:
        data = load_yaml(path)
        other = sorted(set(data) - {"decode"})
        if other:
            raise ConfigError(f"{path}: unknown config key(s) {other}; a decoding config holds a 'decode' section "
                              "only")
        section = data.get("decode") or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: decode: expected a mapping, got {section!r}")
        flat = _flatten(section, "decode") if section else []
        try:
            check_overrides(flat, "decoding config")
            structure(DecodeConfig, section, prefix="decode")
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        overrides += flat
    return overrides
