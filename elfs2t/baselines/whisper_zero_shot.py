"""Whisper zero-shot baseline (docs/design.md §6): the Whisper model itself transcribes (ASR) or translates
(X -> En) the test sets, greedy or with beam search, through ``transformers``' ``generate``.

Audio is read through Lhotse (``cut.load_audio()``, resampled to 16 kHz when needed), so stage-1
manifests and stage-2 cached-feature cuts (which keep their recording) both work. Whisper sees its
own front end: log-mel of 30-s padded windows (``WhisperFeatureExtractor``) and the full encoder
(``pad30``); utterances longer than 30 s are cut to their first 30 s (counted in the log).

Timing matches the other models: :class:`WhisperFrontEndDataset` (log-mel + encoder, the part the
other models read from stage-2 caches) runs as the decoder's dataset, outside ``decode_seconds``,
and accumulates its own ``encoder_seconds``; :meth:`WhisperZeroShot.generate` (the text decoder on
the encoder states) is what ``decode_seconds`` measures. Output folders follow stage 5:
``exp/whisper_<name>/decode_<task>[_<lang>]_beam<N>/<set>/`` (see :func:`decode_whisper`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
from lhotse import CutSet

from elfs2t.config import ConfigError, config_check, dump_config
from elfs2t.data.dataset import target_text

log = logging.getLogger(__name__)

__all__ = ["WhisperDecodeConfig", "WhisperZeroShot", "WhisperFrontEndDataset", "decode_whisper", "exp_name", "inference_tag"]

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30.0


@dataclass(kw_only=True)
class WhisperDecodeConfig:
    """Zero-shot decoding with a Whisper model."""

    model: str = "openai/whisper-tiny.en"
    """Hugging Face hub id or local Whisper directory (with its tokenizer and feature extractor)."""
    task: Literal["transcribe", "translate"] = "transcribe"
    """``transcribe`` (ASR) or ``translate`` (X -> English; multilingual models only)."""
    language: Optional[str] = None
    """Source language code (``de``) for multilingual models; null: each cut's supervision language
    (Whisper detects it when a cut has none). Ignored by English-only models."""
    beam_size: int = 1
    """1: greedy; > 1: beam search."""
    max_new_tokens: int = 128
    """Longest hypothesis in tokens."""
    max_duration: float = 120.0
    """Seconds of audio per batch."""
    max_cuts: int = 16
    """Utterances per batch (each is padded to 30 s, so this bounds the memory)."""
    lowercase: bool = False
    """Lower-case hypotheses and references (to score against lower-cased systems)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ..."""

    def validate(self) -> None:
        config_check(self.task in ("transcribe", "translate"), "task", self.task, "must be transcribe or translate")
        for key in ("beam_size", "max_new_tokens", "max_cuts"):
            config_check(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")
        config_check(self.max_duration > 0, "max_duration", self.max_duration, "must be positive")


def exp_name(model: str) -> str:
    """``whisper_<name>`` for ``exp/``: ``tools/models/whisper-tiny.en`` -> ``whisper_tiny.en``,
    ``openai/whisper-large-v3`` -> ``whisper_large-v3``."""
    base = Path(str(model).rstrip("/")).name
    if base.lower().startswith("whisper-"):
        base = base[len("whisper-"):]
    return f"whisper_{base}"


def inference_tag(cfg: WhisperDecodeConfig) -> str:
    """``decode_<tag>`` folder name: ``transcribe_beam1``, ``translate_de_beam4``."""
    lang = f"_{cfg.language}" if cfg.language else ""
    return f"{cfg.task}{lang}_beam{cfg.beam_size}"


class WhisperZeroShot:
    """A Whisper model and its processor; :meth:`encode` (front end) and :meth:`generate` (decoder)."""

    def __init__(self, cfg: WhisperDecodeConfig) -> None:
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

        from elfs2t.features.whisper import WhisperFrontEnd, is_local

        cfg.validate()
        self.cfg = cfg
        local = is_local(cfg.model)
        try:
            self.model = WhisperForConditionalGeneration.from_pretrained(cfg.model, dtype=torch.float32,
                                                                         local_files_only=local)
            self.features = WhisperFeatureExtractor.from_pretrained(cfg.model, local_files_only=local)
            self.tokenizer = WhisperTokenizerFast.from_pretrained(cfg.model, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"model={cfg.model!r}: cannot load a Whisper model with its tokenizer and feature "
                              f"extractor ({exc})") from exc
        if cfg.device == "auto":
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(cfg.device)
        self.model.to(self.device).eval().requires_grad_(False)
        self.multilingual = bool(getattr(self.model.generation_config, "is_multilingual", False))
        if cfg.task == "translate" and not self.multilingual:
            raise ConfigError(f"task=translate: {cfg.model} is an English-only Whisper model; use a multilingual one")
        self.encoder_tag = WhisperFrontEnd.from_pretrained(cfg.model, "pad30").tag
        self.encoder_seconds = 0.0
        self.num_truncated = 0

    @property
    def decoder_params(self) -> int:
        """Parameters of the text decoder (its output projection is tied to the token embeddings)."""
        from elfs2t.results import count_params

        return count_params(self.model.model.decoder) + (
            0 if self.model.proj_out.weight is self.model.model.decoder.embed_tokens.weight
            else self.model.proj_out.weight.numel())

    @property
    def encoder_params(self) -> int:
        from elfs2t.results import count_params

        return count_params(self.model.model.encoder)

    @torch.inference_mode()
    def encode(self, audio: list[np.ndarray]) -> torch.Tensor:
        """16 kHz waveforms -> encoder states ``(B, 1500, D)`` (30-s padded log-mel, full encoder)."""
        limit = int(WINDOW_SECONDS * SAMPLE_RATE)
        too_long = sum(len(a) > limit for a in audio)
        if too_long:
            self.num_truncated += too_long
            log.warning("%d utterance(s) longer than 30 s: Whisper zero-shot sees their first 30 s only", too_long)
        feats = self.features([a[:limit] for a in audio], sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        return self.model.model.encoder(feats.to(self.device, self.model.dtype)).last_hidden_state

    @torch.inference_mode()
    def generate(self, batch: dict) -> list[str]:
        """Hypotheses for a batch of :class:`WhisperFrontEndDataset` (``encoder_out``, ``language``)."""
        from transformers.modeling_outputs import BaseModelOutput

        cfg = self.cfg
        kwargs = dict(encoder_outputs=BaseModelOutput(last_hidden_state=batch["encoder_out"]), num_beams=cfg.beam_size,
                      do_sample=False, max_new_tokens=cfg.max_new_tokens, return_timestamps=False)
        if self.multilingual:
            kwargs["task"] = cfg.task
            langs = [cfg.language or lang for lang in batch["language"]]
            if all(langs):
                kwargs["language"] = langs if len(set(langs)) > 1 else langs[0]
        ids = self.model.generate(**kwargs)
        texts = [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return [t.lower() for t in texts] if cfg.lowercase else texts


class WhisperFrontEndDataset:
    """``dataset[cuts] -> batch`` for :func:`elfs2t.decode.decode_cuts`: audio through Lhotse, then
    Whisper's front end and encoder (timed into ``model.encoder_seconds``)::

        {"cut_ids": list[str], "encoder_out": (B, 1500, D), "duration": (B,), "language": list[str | None],
         "text": list[str]}
    """

    def __init__(self, model: WhisperZeroShot) -> None:
        self.model = model

    def __getitem__(self, cuts: CutSet) -> dict:
        cuts = cuts.sort_by_duration(ascending=False)
        audio = []
        for cut in cuts:
            if cut.sampling_rate != SAMPLE_RATE:
                cut = cut.resample(SAMPLE_RATE)
            audio.append(cut.load_audio().mean(axis=0).astype(np.float32))  # (channels, N) -> mono (N,)
        t0 = time.perf_counter()
        encoded = self.model.encode(audio)
        self.model.encoder_seconds += time.perf_counter() - t0
        return {
            "cut_ids": [c.id for c in cuts],
            "encoder_out": encoded,
            "duration": torch.tensor([c.duration for c in cuts]),
            "language": [c.supervisions[0].language if c.supervisions else None for c in cuts],
            "text": [target_text(c) for c in cuts],
        }


def decode_whisper(model: WhisperZeroShot, cuts: CutSet, out_dir: Path, *, show_progress: bool = True) -> dict:
    """Decode ``cuts`` into ``out_dir`` (stage-5 files: ``text``, ``ref``, ``utt_timing.txt``,
    ``timing.json``, ``decode_config.yaml``); returns the timing summary, annotated with the model kind,
    settings, parameters and the encoder's own throughput (``encoder_seconds``, ``encoder_rtfx``)."""
    from elfs2t.decode import annotate_timing, decode_cuts

    cfg = model.cfg
    model.encoder_seconds = 0.0
    summary = decode_cuts(model.generate, cuts, out_dir, max_duration=cfg.max_duration, max_cuts=cfg.max_cuts,
                          text_transform=str.lower if cfg.lowercase else None, show_progress=show_progress,
                          dataset=WhisperFrontEndDataset(model))
    dump_config(cfg, Path(out_dir) / "decode_config.yaml")
    enc_s = model.encoder_seconds
    info = {"model": "whisper", "whisper": cfg.model, "task": cfg.task, "language": cfg.language,
            "beam_size": cfg.beam_size, "params": model.decoder_params, "encoder_params": model.encoder_params,
            "encoder": model.encoder_tag, "encoder_seconds": enc_s,
            "encoder_rtfx": summary["audio_seconds"] / enc_s if enc_s > 0 else None,
            "rtfx_e2e": summary["audio_seconds"] / max(enc_s + summary["decode_seconds"], 1e-9)}
    return annotate_timing(out_dir, info)
