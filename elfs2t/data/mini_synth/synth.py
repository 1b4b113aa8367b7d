"""espeak-ng synthesis of one utterance, resampling, and writing the audio file atomically.

espeak-ng writes 22.05 kHz 16-bit WAV to stdout (``espeak-ng -v <voice> -s <rate> -p <pitch> --stdout
<text>``); the waveform is resampled (band-limited, FFT based) to the corpus rate (16 kHz FLAC for
LibriSpeech, 48 kHz MP3 for Common Voice) and kept within ``[min_s, max_s]`` seconds: too long -> spoken
again faster, too short -> padded with silence at the end. Everything is deterministic.
"""
from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["SynthJob", "espeak", "resample", "synthesize", "run_job", "check_espeak"]

ESPEAK = "espeak-ng"
MAX_RATE = 450
"""espeak-ng's highest speaking rate (words per minute)."""


@dataclass(frozen=True)
class SynthJob:
    """One utterance to synthesize and write."""

    text: str
    """The text to speak (normal casing and punctuation)."""
    voice: str
    """espeak-ng voice+variant."""
    rate: int
    """Words per minute."""
    pitch: int
    """espeak-ng pitch 0-99."""
    path: Path
    """Output audio file (``.flac`` or ``.mp3``)."""
    sample_rate: int
    """Output sampling rate in Hz."""
    min_s: float = 1.0
    """Shortest allowed duration in seconds (padded with silence)."""
    max_s: float = 6.0
    """Longest allowed duration in seconds (re-spoken faster)."""


def check_espeak() -> None:
    """Raise a clear error if espeak-ng is not installed."""
    if shutil.which(ESPEAK) is None:
        raise RuntimeError(f"{ESPEAK} not found on PATH: install it (tools/install.sh, or apt-get install espeak-ng)")


def espeak(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    """Speak ``text``; returns (samples float32 (N,), sampling rate of espeak-ng's output)."""
    cmd = [ESPEAK, "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"espeak-ng failed ({proc.returncode}) for {cmd!r}: {proc.stderr.decode(errors='replace')}")
    samples, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return samples, sr


def _smooth_at_least(n: int) -> int:
    """Smallest integer >= n whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    best = None
    p2 = 1
    while True:
        p3 = p2
        while True:
            p5 = p3
            while p5 < n:
                p5 *= 5
            best = p5 if best is None else min(best, p5)
            if p3 >= n:
                break
            p3 *= 3
        if p2 >= n:
            break
        p2 *= 2
    return best


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling of a 1-D signal by zero-padding / truncating its spectrum.

    The input is padded with zeros to ``q * m`` samples (``sr_in / sr_out = q / p`` in lowest terms,
    ``m`` 5-smooth) so that both FFT sizes are fast and the output length ``p * m`` is exact, then cut
    to ``round(len(x) * sr_out / sr_in)``. When down-sampling, content above the new Nyquist
    frequency is removed. x: (N,) float -> (M,) float32.
    """
    if sr_in == sr_out or len(x) == 0:
        return np.asarray(x, dtype=np.float32)
    g = math.gcd(sr_in, sr_out)
    q, p = sr_in // g, sr_out // g
    n_in = len(x)
    m = _smooth_at_least(-(-n_in // q))
    n_pad, n_out_pad = q * m, p * m
    spec = np.fft.rfft(x.astype(np.float64), n=n_pad)
    n_bins = n_out_pad // 2 + 1
    if n_bins <= len(spec):
        spec = spec[:n_bins].copy()
        if n_out_pad % 2 == 0:  # the Nyquist bin of a real signal of even length is real
            spec[-1] = spec[-1].real
    else:
        spec = np.concatenate([spec, np.zeros(n_bins - len(spec), dtype=spec.dtype)])
    y = np.fft.irfft(spec, n=n_out_pad) * (n_out_pad / n_pad)
    return y[: int(round(n_in * sr_out / sr_in))].astype(np.float32)


def synthesize(job: SynthJob) -> np.ndarray:
    """Speak ``job.text`` at ``job.sample_rate``, within ``[job.min_s, job.max_s]``; (N,) float32."""
    rate = job.rate
    samples, sr = espeak(job.text, job.voice, rate, job.pitch)
    while len(samples) / sr > job.max_s and rate < MAX_RATE:
        rate = min(MAX_RATE, int(rate * (len(samples) / sr) / job.max_s * 1.05) + 1)
        samples, sr = espeak(job.text, job.voice, rate, job.pitch)
    audio = resample(samples, sr, job.sample_rate)
    min_len = int(round(job.min_s * job.sample_rate))
    if len(audio) < min_len:
        audio = np.concatenate([audio, np.zeros(min_len - len(audio), dtype=np.float32)])
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 0.99:  # resampling may overshoot slightly: keep within 16-bit range
        audio = audio * (0.99 / peak)
    return audio


def run_job(job: SynthJob) -> tuple[str, float]:
    """Synthesize and write ``job.path`` atomically; returns (path, duration in seconds)."""
    audio = synthesize(job)
    path = Path(job.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".flac": "FLAC", ".mp3": "MP3", ".wav": "WAV"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported audio extension (use .flac, .mp3 or .wav)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    subtype = "PCM_16" if fmt in ("FLAC", "WAV") else None
    sf.write(tmp, audio, job.sample_rate, format=fmt, subtype=subtype)
    tmp.replace(path)
    return str(path), len(audio) / job.sample_rate
