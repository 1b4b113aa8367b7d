"""Audio inputs for ``elfs2t.load(...).transcribe`` and ``python -m elfs2t.bin.transcribe``, and segmentation.

Inputs (:func:`open_inputs`), any mix of:

* audio files in any format Lhotse reads (wav, flac, ogg, ...; any sampling rate or channel count: the features
  are computed from 16 kHz mono, resampled by Lhotse and mixed down, exactly as stage 2 does) -- the utterance id
  is the file name without its extension (``-2``, ``-3`` ... added to repeated names);
* a Kaldi ``wav.scp`` (``<utt-id> <path>`` per line; a piped command is refused with the line named);
* a Lhotse cuts manifest (``*.jsonl.gz``, ``*.jsonl``; its cut ids are kept; supervisions are not needed).

Segmentation (:func:`segment_cut`): audio longer than the model holds (``max_seconds``: the longest utterance it
was trained on, at most Whisper's 30 s window; or the user's ``--max-segment``) is split at the quietest 100 ms
within the last half of each window, never silently cut; with segmentation off it is refused with a message that
says so (:class:`TooLongError`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from lhotse import CutSet, Recording
from lhotse.cut import Cut

from elfs2t import errors
from elfs2t.features.cache import load_cut_audio
from elfs2t.features.whisper import SAMPLE_RATE

log = logging.getLogger(__name__)

__all__ = ["InputError", "TooLongError", "Segment", "open_inputs", "segment_cut", "CUTS_SUFFIXES"]

CUTS_SUFFIXES = (".jsonl.gz", ".jsonl")
WINDOW = 0.1  # seconds of the energy window that places a split


class InputError(errors.InputError, ValueError):
    """An input cannot be read; the message names the file (and line)."""


class TooLongError(errors.InputError, ValueError):
    """Audio longer than the model holds while segmentation is off."""


@dataclass
class Segment:
    """One decoded piece of an input: its cut and where it sits in the input (seconds)."""

    cut: Cut
    input_id: str
    start: float
    end: float


def _unique(name: str, seen: dict[str, int]) -> str:
    seen[name] = seen.get(name, 0) + 1
    return name if seen[name] == 1 else f"{name}-{seen[name]}"


def _recording_cut(path: Path, cut_id: str) -> Cut:
    if not path.is_file():
        raise InputError(f"{path}: no such audio file")
    try:
        rec = Recording.from_file(path, recording_id=cut_id)
    except Exception as exc:  # soundfile / audioread errors: report the file
        raise InputError(f"{path}: cannot read audio ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]})") from exc
    if rec.num_samples == 0:
        raise InputError(f"{path}: the audio is empty")
    return rec.to_cut().with_id(cut_id)


def _wav_scp(path: Path, seen: dict[str, int]) -> list[tuple[Cut, str]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        utt, _, target = line.strip().partition(" ")
        target = target.strip()
        if not target:
            raise InputError(f"{path}:{n}: expected '<utt-id> <path>', got {line.strip()!r}")
        if target.endswith("|"):
            raise InputError(f"{path}:{n}: a piped command ({target!r}) is not supported: write the audio to a file")
        audio = Path(target)
        if not audio.is_absolute() and not audio.exists() and (path.parent / audio).exists():
            audio = path.parent / audio
        out.append((_recording_cut(audio, _unique(utt, seen)), f"{path}:{n}"))
    if not out:
        raise InputError(f"{path}: no entries")
    return out


def open_inputs(inputs: Iterable[str | Path | Cut], errors: Optional[list[str]] = None) -> list[tuple[Cut, str]]:
    """``(cut, source)`` per utterance of the inputs (see the module docstring), in input order; ``source`` names
    where it came from. An input that cannot be read raises :class:`InputError`, or, when an ``errors`` list is
    given, is skipped with its message appended there."""
    seen: dict[str, int] = {}
    out: list[tuple[Cut, str]] = []
    for item in inputs:
        try:
            out.extend(_open_one(item, seen))
        except InputError as exc:
            if errors is None:
                raise
            log.warning("skipped: %s", exc)
            errors.append(str(exc))
    return out


def _open_one(item: str | Path | Cut, seen: dict[str, int]) -> list[tuple[Cut, str]]:
    if isinstance(item, Cut):
        return [(item.with_id(_unique(item.id, seen)), item.id)]
    path = Path(item)
    name = path.name
    if name.endswith(CUTS_SUFFIXES):
        if not path.is_file():
            raise InputError(f"{path}: no such cuts manifest")
        try:
            cuts = list(CutSet.from_file(path))
        except Exception as exc:
            raise InputError(f"{path}: cannot read the cuts manifest ({type(exc).__name__}: {exc})") from exc
        for cut in cuts:
            if not cut.has_recording:
                raise InputError(f"{path}: cut {cut.id} has no recording (transcription needs the audio)")
        return [(cut.with_id(_unique(cut.id, seen)), f"{path}:{cut.id}") for cut in cuts]
    if name.endswith(".scp"):
        if not path.is_file():
            raise InputError(f"{path}: no such wav.scp")
        return _wav_scp(path, seen)
    return [(_recording_cut(path, _unique(name.split(".")[0] or name, seen)), str(path))]


def _split_points(audio: np.ndarray, max_seconds: float) -> list[float]:
    """Split times (seconds) that keep every piece at most ``max_seconds``: the quietest ``WINDOW`` in the second
    half of each window."""
    hop = int(0.01 * SAMPLE_RATE)
    frames = len(audio) // hop
    energy = np.square(audio[: frames * hop].reshape(frames, hop)).mean(axis=1)
    width = max(1, int(WINDOW / 0.01))
    smooth = np.convolve(energy, np.ones(width) / width, mode="same")
    points, pos, total = [], 0.0, len(audio) / SAMPLE_RATE
    while total - pos > max_seconds:
        lo, hi = int((pos + max_seconds / 2) / 0.01), int((pos + max_seconds) / 0.01)
        k = lo + int(np.argmin(smooth[lo:hi])) if hi > lo else hi
        pos = max(k * 0.01, pos + 0.01)
        points.append(round(pos, 2))
    return points


def segment_cut(cut: Cut, max_seconds: Optional[float], source: str = "", *, split: bool = True,
                why: str = "") -> list[Segment]:
    """The pieces of ``cut`` to decode: itself if it fits ``max_seconds`` (None: no limit); else pieces of at most
    that long split at quiet points, or with ``split`` off :class:`TooLongError`. ``why`` says where the limit
    comes from, for the messages."""
    if max_seconds is None or cut.duration <= max_seconds:
        return [Segment(cut, cut.id, 0.0, cut.duration)]
    if not split:
        raise TooLongError(f"{source or cut.id}: {cut.duration:.1f} s of audio is longer than the model holds "
                           f"({max_seconds:.1f} s{': ' + why if why else ''}); let it be segmented (the default) or "
                           "pass a larger --max-segment")
    points = _split_points(load_cut_audio(cut), max_seconds)
    bounds = [0.0] + points + [cut.duration]
    pieces = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        piece = cut.truncate(offset=a, duration=b - a, keep_excessive_supervisions=True, preserve_id=True)
        pieces.append(Segment(piece.with_id(f"{cut.id}#{k:03d}"), cut.id, a, b))  # "#": no input id clash
    log.info("%s: %.1f s split into %d segments of at most %.1f s%s", source or cut.id, cut.duration, len(pieces),
             max_seconds, f" ({why})" if why else "")
    return pieces


def model_seconds(train_max: Optional[float], data_max: float, user: Optional[float]) -> tuple[float, str]:
    """The longest piece a model decodes and why: the user's ``--max-segment``, else its longest training
    utterance, else its ``data.max_utt_duration`` -- never beyond Whisper's 30 s window."""
    if user is not None:
        return float(user), "--max-segment"
    if train_max:
        return min(30.0, math.ceil(float(train_max) * 10) / 10), "its longest training utterance"
    return min(30.0, float(data_max)), "its data.max_utt_duration"
