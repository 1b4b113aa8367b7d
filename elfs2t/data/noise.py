"""Noisy copies of a test set: white Gaussian noise at a given signal-to-noise ratio, written as audio files.

A copy keeps every cut's id, text and speaker, so a decode of it pairs utterance by utterance with the clean set's;
only the audio changes. The noise of a cut is drawn from a generator seeded by ``seed`` and the cut id (the same
audio whatever the order of the cuts) and scaled to ``snr_db`` below the utterance's mean power::

    noisy = add_white_noise(audio, snr_db=10.0, rng=cut_rng(seed, cut.id))   # 10 log10(P_audio / P_noise) = 10

The copies are written to files (flac, 16 bit), not mixed lazily at load time: stage 2 caches them like any set, a
user can listen to them, and they stay the same when the code that draws the noise changes. A cut that cannot be
made noisy (silent, so no SNR is defined, or unreadable) is left out and counted.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
from lhotse import CutSet, Recording
from lhotse.cut import Cut
from lhotse.utils import fastcopy

__all__ = ["cut_rng", "add_white_noise", "NoisyCopy", "noisy_copies"]


def cut_rng(seed: int, cut_id: str) -> np.random.Generator:
    """The noise generator of one cut: seeded by ``seed`` and the cut id, not by the cut's place in the set."""
    return np.random.default_rng([seed, zlib.crc32(cut_id.encode("utf-8"))])


def add_white_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` (samples, any shape) plus white Gaussian noise whose power is ``snr_db`` dB under the audio's mean
    power; float32. Where the sum would clip (|x| > 1), audio and noise are scaled down together (the SNR stays).
    ValueError for silent or non-finite audio (no SNR is defined)."""
    x = np.asarray(audio, dtype=np.float64)
    power = float(np.mean(x ** 2)) if x.size else 0.0
    if not np.isfinite(power) or power <= 0.0:
        raise ValueError("silent or non-finite audio: no signal-to-noise ratio is defined")
    y = x + rng.standard_normal(x.shape) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    peak = float(np.abs(y).max())
    return (y / max(1.0, peak / 0.999)).astype(np.float32)


@dataclass
class NoisyCopy:
    """What :func:`noisy_copies` did: cuts written, and the ids left out with the reason."""

    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def noisy_copies(cuts: CutSet, snr_db: float, audio_dir: str | Path, *, seed: int = 0, stats: NoisyCopy | None = None,
                 progress: Callable[[int], None] = lambda n: None) -> Iterator[Cut]:
    """Yield a noisy copy of every cut of ``cuts``: its audio (mono, the cut's sampling rate) with white noise at
    ``snr_db`` written to ``<audio_dir>/<cut id>.flac``, as a cut of that file with the original id, duration and
    supervisions. Cuts that cannot be copied are logged in ``stats.skipped`` (id, reason) and not yielded.
    ``progress(1)`` is called per input cut."""
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    stats = stats if stats is not None else NoisyCopy()
    for cut in cuts:
        progress(1)
        try:
            audio = cut.load_audio()
            mono = audio.mean(axis=0) if audio.ndim == 2 else audio.reshape(-1)
            noisy = add_white_noise(mono, snr_db, cut_rng(seed, cut.id))
        except Exception as exc:  # counted and reported by the caller, never silently dropped
            stats.skipped.append((cut.id, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"))
            continue
        path = audio_dir / f"{cut.id}.flac"
        sf.write(path, noisy, cut.sampling_rate, subtype="PCM_16")
        rec = Recording.from_file(path, recording_id=cut.id)
        sups = [fastcopy(s, recording_id=rec.id, channel=0) for s in cut.supervisions]
        stats.written += 1
        yield fastcopy(rec.to_cut(), id=cut.id, supervisions=sups)
