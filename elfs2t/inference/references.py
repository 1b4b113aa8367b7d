"""References to the frozen pre-trained models a trained model needs (the Whisper encoder, a text encoder), and
finding them on another machine.

Training records each frozen model the model loads by name or path (``exp/<tag>/frozen.json``: config key, value
as given, short name, and the fingerprint of the weights loaded, :mod:`elfs2t.fingerprint`); the Whisper encoder's
is in ``encoder.json`` (:mod:`elfs2t.features.record`). An exported folder refers to them the same way, without
the machine's paths. :func:`find_model` looks a reference up, first found wins:

1. the location the user passes (``elfs2t.load(..., encoder=..., text_model=...)``, ``--encoder``,
   ``--text-model``);
2. the recorded path, if it exists from here (relative ones also from the training run's folder);
3. ``<dir>/<name>`` for every folder of the ``ELFS2T_MODELS`` environment variable (``:``-separated), then this
   installation's ``tools/models/<name>`` (the offline bundles of ``tools/install.sh``);
4. the recorded hub id (models loaded from a hub at training).

Whatever is found must have the recorded fingerprint: a different model of the same shape is refused with one line.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from elfs2t.config import ConfigError

__all__ = ["ENV_MODELS", "FROZEN_FILE", "ModelRef", "make_ref", "write_frozen", "read_frozen", "find_model",
           "check_fingerprint", "record_frozen", "TOOLS_MODELS"]

ENV_MODELS = "ELFS2T_MODELS"
FROZEN_FILE = "frozen.json"
TOOLS_MODELS = Path(__file__).resolve().parents[2] / "tools" / "models"


@dataclass
class ModelRef:
    """A frozen model as a trained model refers to it."""

    value: Optional[str]
    """As the config gave it at training (a hub id or a path; None in an exported folder for local paths)."""
    name: str
    """Short name (the directory's name, or the hub id's last part) looked up under ``ELFS2T_MODELS``."""
    hub_id: Optional[str] = None
    """The hub id, when it was loaded from a hub."""
    fingerprint: Optional[str] = None
    """Fingerprint of its weights at training."""


def _is_local(value: str, bases: list[Path]) -> bool:
    return (value.startswith((".", "/", "~")) or Path(value).expanduser().exists()
            or any((b / value).exists() for b in bases))


def make_ref(value: str, fingerprint: Optional[str] = None, bases: list[Path] = ()) -> ModelRef:
    """The reference of a model loaded from ``value`` (a hub id or a local directory)."""
    local = _is_local(value, list(bases))
    return ModelRef(value=value, name=Path(value.rstrip("/")).name, hub_id=None if local else value,
                    fingerprint=fingerprint)


def write_frozen(folder: str | Path, refs: dict[str, ModelRef]) -> Path:
    """``folder/frozen.json``: ``{config key: reference}``."""
    path = Path(folder) / FROZEN_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({k: asdict(r) for k, r in refs.items()}, indent=1) + "\n")
    tmp.replace(path)
    return path


def read_frozen(folder: str | Path) -> dict[str, ModelRef]:
    """The references in ``folder/frozen.json`` ({} without the file)."""
    path = Path(folder) / FROZEN_FILE
    if not path.is_file():
        return {}
    try:
        return {k: ModelRef(**v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable references ({exc})") from exc


def find_model(ref: ModelRef, given: Optional[str], bases: list[Path], what: str) -> str:
    """Where to load the model ``ref`` from (see the module docstring); ConfigError naming what was tried."""
    if given:
        if not Path(given).expanduser().exists() and _is_local(given, []):
            raise ConfigError(f"{what}: {given} does not exist")
        return given
    tried = []
    if ref.value and ref.hub_id is None:
        for base in [Path.cwd(), *bases]:
            candidate = Path(ref.value).expanduser() if Path(ref.value).is_absolute() else base / ref.value
            if candidate.exists():
                return str(candidate)
        tried.append(ref.value)
    dirs = [Path(d) for d in os.environ.get(ENV_MODELS, "").split(os.pathsep) if d] + [TOOLS_MODELS]
    for d in dirs:
        if (d / ref.name).exists():
            return str(d / ref.name)
        tried.append(str(d / ref.name))
    if ref.hub_id:
        return ref.hub_id
    raise ConfigError(f"{what} '{ref.name}' (a local directory at training) is not found (tried {', '.join(tried)}): "
                      f"pass its location, or put it under ${ENV_MODELS}")


def check_fingerprint(ref: ModelRef, fingerprint: str, location: str, what: str) -> None:
    """ConfigError (one line) when the model loaded from ``location`` is not the one the model was trained with."""
    if ref.fingerprint and fingerprint != ref.fingerprint:
        raise ConfigError(f"{what} {location}: its weights (fingerprint {fingerprint}) are not those the model was "
                          f"trained with ('{ref.name}', fingerprint {ref.fingerprint})")


def record_frozen(exp_dir: str | Path, refs: dict[str, ModelRef]) -> None:
    """Write a training run's references; a resumed run whose frozen models have other weights is refused."""
    for key, old in read_frozen(exp_dir).items():
        new = refs.get(key)
        if new is not None and old.fingerprint and new.fingerprint and old.fingerprint != new.fingerprint:
            raise ConfigError(f"{key}={new.value}: its weights (fingerprint {new.fingerprint}) are not those "
                              f"{exp_dir} was trained with (fingerprint {old.fingerprint})")
    write_frozen(exp_dir, refs)
