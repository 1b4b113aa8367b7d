"""The encoder record: which frozen encoder made a set of cached features, and which one a model was trained on.

Features of one encoder (or one mode of it: ``trim`` vs ``pad30``, or another compute dtype) fed to a model trained
on another's decode without an error and give wrong text, so every stage that joins features and a model compares
their records:

* stage 2 writes ``encoder.json`` beside the cached features (``dump/<tag>/<set>/encoder.json``);
* stage 4 writes the training features' record into ``exp/<tag>/encoder.json`` (all training and validation
  sets must agree) and a resumed run refuses training features whose record differs;
* stage 5 refuses test features whose record differs from the model's; ``elfs2t.load`` / ``transcribe`` rebuild
  the encoder from the model's record (and check the fingerprint of what they load).

``encoder.json`` is an :class:`EncoderRecord`::

    {"tag": "whisper-base_trim", "model": "../../tools/models/whisper-base", "name": "whisper-base", "mode": "trim",
     "dtype": "float32", "hidden_size": 512, "num_mel_bins": 80, "fingerprint": "f1e96ac5da4ccb74"}

Older dumps have no ``encoder.json``: their record comes from ``plan.json`` (no dtype, no fingerprint) or, for
any cuts with features, from the features' ``type`` (the tag alone). A field that one side does not know is not
compared.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

from lhotse import CutSet

from elfs2t.atomic import write_text
from elfs2t.config import ConfigError, unstructure

log = logging.getLogger(__name__)

__all__ = ["RECORD_FILE", "EncoderRecord", "FeatureMismatchError", "read_record", "write_record",
           "features_record", "check_features", "sets_record", "model_record", "record_training"]

RECORD_FILE = "encoder.json"
COMPARED = ("tag", "mode", "dtype", "hidden_size", "fingerprint")
"""Fields whose difference makes features unusable for a model (where both sides know them)."""


class FeatureMismatchError(ConfigError):
    """Features made by another encoder, mode or dtype than the model's; the message names both sides."""


@dataclass(kw_only=True)
class EncoderRecord:
    """A frozen Whisper encoder as it made (or must make) a model's features."""

    tag: str
    """Features tag ``<name>_<mode>`` (names ``dump/<tag>/``)."""
    model: Optional[str] = None
    """Hub id or local directory the encoder was loaded from, as stage 2 was given it."""
    name: Optional[str] = None
    """Short model name in the tag (``whisper-base``)."""
    mode: Optional[str] = None
    """``trim`` or ``pad30`` (elfs2t.features.whisper)."""
    dtype: Optional[str] = None
    """Compute dtype of the encoder (``float32``, ``float16``, ``bfloat16``); features are stored as float16."""
    hidden_size: Optional[int] = None
    """Width D of the frames."""
    num_mel_bins: Optional[int] = None
    """Log-mel bins of the encoder's input."""
    fingerprint: Optional[str] = None
    """:func:`elfs2t.fingerprint.weights_fingerprint` of the encoder's weights."""

    @classmethod
    def from_encoder(cls, encoder) -> "EncoderRecord":
        """The record of a loaded :class:`~elfs2t.features.whisper.WhisperEncoderModel`."""
        spec = encoder.spec
        return cls(tag=spec.tag, model=spec.model, name=spec.name, mode=spec.mode, dtype=encoder.dtype_name,
                   hidden_size=spec.hidden_size, num_mel_bins=spec.num_mel_bins, fingerprint=encoder.fingerprint)

    @classmethod
    def from_dict(cls, data: dict) -> "EncoderRecord":
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or "tag" not in data:
            raise ValueError(f"not an encoder record (no 'tag'): {data!r}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def describe(self) -> str:
        """``whisper-base_trim (dtype float32, weights f1e96ac5da4ccb74)``: the tag and what else is known."""
        extra = [f"dtype {self.dtype}"] if self.dtype else []
        if self.fingerprint:
            extra.append(f"weights {self.fingerprint}")
        return self.tag + (f" ({', '.join(extra)})" if extra else "")

    def differences(self, other: "EncoderRecord") -> list[str]:
        """The :data:`COMPARED` fields both records know and that differ."""
        out = []
        for key in COMPARED:
            a, b = getattr(self, key), getattr(other, key)
            if a is not None and b is not None and a != b:
                out.append(key)
        return out


def write_record(record: EncoderRecord, path: str | Path) -> Path:
    """Write ``record`` as JSON (atomically)."""
    return write_text(path, json.dumps(unstructure(record), indent=1) + "\n")


def read_record(path: str | Path) -> Optional[EncoderRecord]:
    """The record in ``path`` (an ``encoder.json``), or None when there is none; a broken file is an error."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return EncoderRecord.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable encoder record ({exc})") from exc


def _mode_of(tag: str) -> Optional[str]:
    mode = tag.rsplit("_", 1)[-1] if "_" in tag else None
    return mode if mode in ("trim", "pad30") else None


def features_record(cuts_path: str | Path, cuts: Optional[CutSet] = None) -> EncoderRecord:
    """The record of the features a cuts manifest references: ``encoder.json`` beside it, else its stage-2
    ``plan.json``, else the first cut's features ``type`` (the tag). Raises ConfigError when the cuts carry no
    features."""
    if not Path(cuts_path).is_file():
        raise FileNotFoundError(f"cuts manifest not found: {cuts_path} (did stage 2 run?)")
    folder = Path(cuts_path).parent
    record = read_record(folder / RECORD_FILE)
    if record is not None:
        return record
    plan = folder / "plan.json"
    if plan.is_file():
        try:
            data = json.loads(plan.read_text())
            fe = data.get("front_end") or {}
            return EncoderRecord(tag=data["tag"], model=fe.get("model"), name=fe.get("name"), mode=fe.get("mode"),
                                 hidden_size=fe.get("hidden_size"), num_mel_bins=fe.get("num_mel_bins"))
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("%s: unreadable stage-2 plan; the features' encoder is taken from the cuts", plan)
    cuts = cuts if cuts is not None else CutSet.from_file(cuts_path)
    first = next(iter(cuts), None)
    if first is None or not first.has_features:
        raise ConfigError(f"{cuts_path}: the cuts carry no cached features (run stage 2 on them)")
    tag = first.features.type
    return EncoderRecord(tag=tag, mode=_mode_of(tag), hidden_size=first.features.num_features)


def check_features(model: EncoderRecord, feats: EncoderRecord, *, model_where: str, feats_where: str) -> None:
    """Raise :class:`FeatureMismatchError` (one line) when ``feats`` were not made the way ``model`` was trained."""
    diff = model.differences(feats)
    if diff:
        hint = f" --encoder {model.model}" if model.model else ""
        hint += f" --mode {model.mode}" if model.mode else ""
        hint += f" --dtype {model.dtype}" if model.dtype else ""
        raise FeatureMismatchError(
            f"{feats_where}: features of {feats.describe()}, but {model_where} was trained on {model.describe()} "
            f"({', '.join(diff)} differ{'s' if len(diff) == 1 else ''}); cache them with the model's encoder "
            f"(python -m elfs2t.bin.cache_features{hint})")


def sets_record(manifests: list[str | Path]) -> EncoderRecord:
    """The record shared by the features of several manifests (a model's training and validation sets); a
    :class:`FeatureMismatchError` names the first manifest whose features differ from the first one's."""
    if not manifests:
        raise ConfigError("no cut manifests given")
    first = features_record(manifests[0])
    merged = dict(unstructure(first))
    for path in manifests[1:]:
        other = features_record(path)
        check_features(first, other, model_where=f"{manifests[0]}", feats_where=str(path))
        merged.update({k: v for k, v in unstructure(other).items() if v is not None and merged.get(k) is None})
    return EncoderRecord.from_dict(merged)


def model_record(exp_dir: str | Path) -> Optional[EncoderRecord]:
    """The encoder a trained experiment folder's model was trained on (``exp/<tag>/encoder.json``), or None for
    folders from before the record."""
    return read_record(Path(exp_dir) / RECORD_FILE)


def record_training(exp_dir: str | Path, record: EncoderRecord, *, resuming: bool, write: bool = True) -> EncoderRecord:
    """Check and keep the training features' record in ``exp_dir``: a run that resumes a model (``resuming``:
    the folder holds its checkpoints) must train on features of the encoder it was trained on
    (:class:`FeatureMismatchError` otherwise); fields the old record lacked are filled in. ``write=False`` only
    checks. Returns the record (to be) written."""
    old = model_record(exp_dir) if resuming else None
    if old is not None:
        check_features(old, record, model_where=str(exp_dir), feats_where="the training features")
        merged = {**{k: v for k, v in unstructure(record).items() if v is not None},
                  **{k: v for k, v in unstructure(old).items() if v is not None}}
        record = EncoderRecord.from_dict(merged)
    if write:
        write_record(record, Path(exp_dir) / RECORD_FILE)
    return record
