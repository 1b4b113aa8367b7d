"""The decoding setting a trained model is meant to be used with, recorded in its experiment folder.

An experiment's ``config.yaml`` holds the ``decode`` section training validated with; the recipe decodes with
other settings (``run.sh --decode-opts``: lists of ``decode.*`` overrides) and picks one to use. Stage 5 records
it with ``python -m elfs2t.bin.decode ... --record-setting``: ``exp/<tag>/decode_setting.yaml``::

    overrides: [decode.strategy=rescore]
    tag: rescore_k0.95_l0.05-0.2_d4        # the decode_<tag> folder it was scored in

``elfs2t.load`` / ``transcribe`` / ``export`` apply these overrides on top of the config (a user's own
``decode.*`` overrides go after them). A folder without the file decodes with its config's ``decode`` section.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml

from elfs2t.atomic import write_text
from elfs2t.config import ConfigError

__all__ = ["SETTING_FILE", "record_setting", "read_setting", "check_overrides"]

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
