"""Feature-caching benchmark: the frozen Whisper encoder of stage 2 in ``pad30`` and ``trim`` mode, per model.

Each encoder (a local directory, a hub id, or ``random:<size>`` for a random-weight one of
:data:`elfs2t.bench.models.RANDOM_ENCODERS`, e.g. ``random:large-v3``) encodes the same utterances in fixed
batches through :class:`elfs2t.features.whisper.WhisperEncoderModel` -- the code stage 2 runs -- after one
untimed warm-up batch. Reported: x real time (audio seconds per second), utterances/s, peak memory,
analytical FLOPs (``pad30`` always encodes 1500 frames, ``trim`` only the batch's longest utterance) and
the speed-up of ``trim`` over ``pad30``. Reading and writing the archives is not included.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from elfs2t.bench import flops as F
from elfs2t.bench.common import PeakMemory, Utterance, fixed_batches, format_table, timed
from elfs2t.bench.models import count_params, random_whisper_dir
from elfs2t.config import config_check

log = logging.getLogger(__name__)

__all__ = ["FeatureBenchConfig", "run_features_bench", "default_encoders"]

_DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def default_encoders() -> list[str]:
    """The offline bundles ``tools/models/whisper-tiny.en`` and ``whisper-base`` that exist."""
    root = Path(__file__).resolve().parents[2] / "tools" / "models"
    return [str(root / n) for n in ("whisper-tiny.en", "whisper-base") if (root / n / "config.json").is_file()]


@dataclass(kw_only=True)
class FeatureBenchConfig:
    """Which encoders, modes and batches."""

    encoders: list[str] = field(default_factory=default_encoders)
    """Whisper directories / hub ids, or random:<size>."""
    modes: list[str] = field(default_factory=lambda: ["pad30", "trim"])
    """Encoding modes to compare."""
    batch_size: int = 8
    """Utterances per encoder forward (stage 2's default)."""
    device: str = "cpu"
    """cpu or cuda."""
    dtype: str = "fp32"
    """fp32, bf16 or fp16 (GPU)."""
    peak_tflops: float = 0.0
    """Peak TFLOP/s for MFU (0: the table for known GPUs)."""

    def validate(self) -> None:
        config_check(bool(self.encoders), "encoders", self.encoders, "must name at least one encoder")
        config_check(set(self.modes) <= {"pad30", "trim"} and bool(self.modes), "modes", self.modes,
                     "must be pad30 and/or trim")
        config_check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        config_check(self.dtype in _DTYPE_NAMES, "dtype", self.dtype, f"must be one of {sorted(_DTYPE_NAMES)}")


def run_features_bench(cfg: FeatureBenchConfig, utts: list[Utterance]) -> dict:
    """Encode ``utts`` (with audio) with every encoder x mode; returns ``{"rows", "table"}``."""
    from elfs2t.features.whisper import WhisperFrontEnd

    cfg.validate()
    if any(u.audio is None for u in utts):
        raise ValueError("run_features_bench: utterances without audio")
    batches = fixed_batches(utts, cfg.batch_size)
    audio_s = sum(u.duration for u in utts)
    peak = F.peak_flops(cfg.device, cfg.dtype, cfg.peak_tflops)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for name in cfg.encoders:
            path = str(random_whisper_dir(name.split(":", 1)[1], tmp, cfg.device)) if name.startswith("random:") else name
            by_mode = {}
            for mode in cfg.modes:
                spec = WhisperFrontEnd.from_pretrained(path, mode)
                encoder = spec.build(cfg.device, _DTYPE_NAMES[cfg.dtype])
                wcfg = encoder.encoder.config
                encoder([u.audio for u in batches[0]])  # warm-up
                seconds = flops = 0.0
                with PeakMemory(cfg.device) as mem:
                    for batch in tqdm(batches, desc=spec.tag, unit="batch", leave=False):
                        _, dt = timed(lambda: encoder([u.audio for u in batch]), cfg.device)
                        seconds += dt
                        frames = 1500 if mode == "pad30" else max(spec.num_frames(u.duration) for u in batch)
                        flops += F.whisper_encoder_flops(wcfg, len(batch), min(frames, 1500))
                row = {"encoder": spec.tag, "params_m": count_params(encoder.encoder) / 1e6, "mode": mode,
                       "xrt": audio_s / seconds, "utt_s": len(utts) / seconds, "ms_utt": 1e3 * seconds / len(utts),
                       "mem_mb": mem.peak_mb, "gflop_utt": flops / len(utts) / 1e9, "tflop_s": flops / seconds / 1e12}
                if peak:
                    row["mfu"] = 100 * row["tflop_s"] * 1e12 / peak
                by_mode[mode] = row
                rows.append(row)
                del encoder
            if "pad30" in by_mode and "trim" in by_mode:
                by_mode["trim"]["speedup"] = by_mode["trim"]["xrt"] / by_mode["pad30"]["xrt"]
    cols = [("encoder", "encoder", ""), ("params_m", "params M", ".1f"), ("mode", "mode", ""),
            ("xrt", "x real time", ".1f"), ("utt_s", "utt/s", ".1f"), ("ms_utt", "ms/utt", ".1f"),
            ("mem_mb", "peak mem MB", ".0f"), ("gflop_utt", "GFLOP/utt", ".1f"), ("tflop_s", "TFLOP/s", ".3f"),
            ("mfu", "MFU %", ".1f"), ("speedup", "trim / pad30", ".1f")]
    return {"rows": rows, "table": format_table(rows, cols), "config": asdict(cfg), "audio_seconds": audio_s}
