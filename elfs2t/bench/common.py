"""Shared pieces of the benchmarks: utterances (real or synthetic), the decoding systems' record, fixed-size batches,
timing, peak memory, the environment header and side-by-side tables.

Peak memory is measured per system:

* CPU: the process's peak resident set size (``VmHWM`` in ``/proc/self/status``), reset before each system
  by writing ``5`` to ``/proc/self/clear_refs`` (after returning freed heap to the OS with glibc's
  ``malloc_trim``). Reported is the peak *above* the resident size at the start
  (activations, caches, buffers: what the system adds to weights already loaded); ``abs`` the absolute peak.
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (weights included).
"""
from __future__ import annotations

import ctypes
import datetime
import gc
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = ["Utterance", "System", "synthetic_utterances", "load_utterances", "fixed_batches", "collate", "env_header",
           "PeakMemory", "sync", "timed", "format_table", "DTYPES"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SAMPLE_RATE = 16000
FRAME_SHIFT = 0.02
_WORDS = ("the cat dog bird sat ran flew away a red green small big house tree near over under quickly slowly "
          "today she he they saw found").split()


@dataclass
class Utterance:
    """One test utterance: audio and/or cached encoder frames, and its reference (None when synthetic)."""

    id: str
    duration: float
    feats: Optional[torch.Tensor] = None
    """(T, D) cached encoder frames."""
    audio: Optional[np.ndarray] = None
    """(N,) float32 16 kHz mono waveform."""
    text: Optional[str] = None
    """Reference (transcript or translation); None for synthetic data (not scored)."""
    task: str = "asr"


@dataclass
class System:
    """One decoding setting: ``run(utterances) -> hypotheses``."""

    name: str
    """Row name in the tables (e.g. ``ar asr_ar beam4``)."""
    family: str
    """``elf``, ``ar``, ``whisper`` or ``faster-whisper`` (ratios, matched accuracy, the plot)."""
    run: Callable[[list[Utterance]], list[str]]
    """Utterances (or their audio, ``from_audio``) -> one hypothesis each."""
    from_audio: bool
    """Reads audio (Whisper) instead of cached encoder frames."""
    trained: bool
    """Scored when the references are real (random-weight models are timed only)."""
    info: dict = field(default_factory=dict)
    """Extra columns of its row (decoding, steps, params_m, ...)."""
    flops: Optional[Callable[[list[Utterance]], float]] = None
    """FLOPs of the batch just decoded (called right after ``run``); None: not counted."""


def synthetic_utterances(n: int, *, feat_dim: int, min_duration: float = 2.0, max_duration: float = 4.0,
                         audio: bool = True, seed: int = 0) -> list[Utterance]:
    """``n`` utterances with random frames ``(T = duration / 20 ms, feat_dim)``, noise audio and random
    word strings of ~2.5 words/s (only used to size the AR targets); references are not real (no scoring)."""
    if n < 1 or min_duration <= 0 or max_duration < min_duration:
        raise ValueError(f"synthetic_utterances: need n >= 1 and 0 < min_duration <= max_duration, got "
                         f"n={n}, {min_duration}..{max_duration}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        dur = round(float(rng.uniform(min_duration, max_duration)), 2)
        frames = max(1, int(round(dur / FRAME_SHIFT)))
        feats = torch.from_numpy(rng.standard_normal((frames, feat_dim)).astype(np.float32))
        wav = (0.05 * rng.standard_normal(int(dur * SAMPLE_RATE))).astype(np.float32) if audio else None
        words = " ".join(rng.choice(_WORDS, size=max(1, int(2.5 * dur))))
        out.append(Utterance(id=f"syn{i:04d}", duration=dur, feats=feats, audio=wav, text=words))
    return out


def load_utterances(cuts_path: str | Path, *, max_utts: int = 0, target: str = "transcript", feats: bool = True,
                    audio: bool = True) -> list[Utterance]:
    """Utterances of a cuts manifest (stage-2 cuts carry both features and their recording).

    ``max_utts`` > 0 keeps the first ones in manifest order. ``feats`` / ``audio``: what to load (a cut
    without cached features or without a readable recording raises, naming the cut and the file).
    """
    from elfs2t.data.dataset import target_text, task_of
    from elfs2t.features.storage import open_cuts  # stage 2's feature paths are relative to the manifest

    path = Path(cuts_path)
    if not path.is_file():
        raise FileNotFoundError(f"cuts manifest not found: {path}")
    out = []
    for cut in open_cuts(path):
        if max_utts and len(out) >= max_utts:
            break
        utt = Utterance(id=cut.id, duration=float(cut.duration), text=target_text(cut, target), task=task_of(target))
        try:
            if feats:
                if not cut.has_features:
                    raise ValueError("no cached features (give the stage-2 cuts of dump/<encoder_tag>/<set>/)")
                utt.feats = torch.from_numpy(cut.load_features()).float()
            if audio:
                if cut.sampling_rate != SAMPLE_RATE:
                    cut = cut.resample(SAMPLE_RATE)
                utt.audio = cut.load_audio().mean(axis=0).astype(np.float32)
        except Exception as exc:
            raise ValueError(f"{path}: cut {cut.id}: {exc}") from exc
        out.append(utt)
    if not out:
        raise ValueError(f"{path}: no cuts")
    return out


def fixed_batches(utts: Sequence[Utterance], batch_size: int) -> list[list[Utterance]]:
    """Batches of exactly ``batch_size`` utterances (the last may be smaller), longest first: the same
    batches for every system."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    ordered = sorted(utts, key=lambda u: -u.duration)
    return [ordered[i: i + batch_size] for i in range(0, len(ordered), batch_size)]


def collate(utts: Sequence[Utterance]) -> dict:
    """The S2T batch dict of docs/contracts.md (``feats (B, T, D)`` zero-padded, ``feat_lens``, ``text``, ...)."""
    if any(u.feats is None for u in utts):
        raise ValueError("collate: utterances without cached features")
    lens = torch.tensor([u.feats.shape[0] for u in utts], dtype=torch.long)
    padded = torch.zeros(len(utts), int(lens.max()), utts[0].feats.shape[1])
    for i, u in enumerate(utts):
        padded[i, : u.feats.shape[0]] = u.feats
    return {"cut_ids": [u.id for u in utts], "feats": padded, "feat_lens": lens, "text": [u.text or "" for u in utts],
            "task": [u.task for u in utts], "duration": torch.tensor([u.duration for u in utts])}


def env_header(device: str | torch.device, dtype: str, note: str = "") -> list[str]:
    """Lines that say where the numbers come from: time, load average, CPU, threads, torch, device."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"host: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average (1/5/15 min): {load}",
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}",
        f"device: {device}" + (f" ({torch.cuda.get_device_name(torch.device(device))})"
                               if torch.device(device).type == "cuda" else "") + f", dtype {dtype}",
    ]
    if note:
        lines.append(note)
    return lines


def _status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """``with PeakMemory(device) as mem: ...`` then ``mem.peak_mb`` (see the module docstring) and ``mem.abs_mb``."""

    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.peak_mb: Optional[float] = None
        self.abs_mb: Optional[float] = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = 0
            return self
        gc.collect()
        try:  # give freed heap back to the OS, so that the baseline is what is really in use (glibc)
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset VmHWM to the current RSS
        except OSError:
            log.debug("cannot reset the peak RSS; the absolute process peak is reported")
        self._start = _status_kb("VmRSS") or 0
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.abs_mb = self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        hwm = _status_kb("VmHWM")
        if hwm is not None:
            self.abs_mb = hwm / 1024
            self.peak_mb = max(0, hwm - self._start) / 1024


def sync(device: str | torch.device) -> None:
    """Wait for queued CUDA work (no-op on CPU), so that wall-clock times are complete."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def timed(fn: Callable[[], Any], device: str | torch.device) -> tuple[Any, float]:
    """``(fn(), seconds)`` with CUDA synchronised before and after."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, (int, float)) and fmt:
        return format(value, fmt)
    return str(value)


def format_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """A GitHub-markdown table: ``columns`` = ``(key, header, format spec)``; missing values print as ``-``."""
    cells = [[_cell(r.get(k), f) for k, _, f in columns] for r in rows]
    headers = [h for _, h, _ in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells]
    return "\n".join(out)
