"""The Whisper front end: a frozen Whisper encoder turning 16 kHz audio into 20 ms frames.

:class:`WhisperFrontEnd` describes the encoder (hub id or local directory, mel bins, hidden size, mode)
and names its features (``tag``, e.g. ``whisper-tiny.en_trim``); :meth:`WhisperFrontEnd.build` loads
:class:`WhisperEncoderModel`, which encodes a batch of waveforms into one ``(T_i, D)`` array each and knows the
fingerprint of its weights (:mod:`elfs2t.fingerprint`; recorded with the features, :mod:`elfs2t.features.record`).

Two modes (the tag records which; features of one mode must never feed a model trained on the other):

* ``pad30``: faithful to Whisper's training. Each 30 s window is padded with zeros to 30 s
  (3000 mel frames), encoded whole (1500 frames), and the frames that cover the audio are kept.
* ``trim``: only the needed frames are encoded. The log-mel frames are exactly those of the padded
  input, the positional embeddings are sliced to the needed length, and attention is masked to the
  utterance, so the output does not depend on the other utterances of the batch. Much faster for
  short utterances; the states differ from ``pad30`` (Whisper's attention sees the padding there),
  except for audio that fills the 30 s window, where both modes are identical.

Frames: ``T = lhotse.utils.compute_num_frames(duration, 0.02, 16000)`` (= ``cut.num_frames``), at
least 1. Audio longer than 30 s is encoded in consecutive 30 s windows whose frames are concatenated.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
import torch
from torch import nn

from elfs2t.config import ConfigError, config_check
from elfs2t.fingerprint import weights_fingerprint

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP_LENGTH = 160  # samples per mel frame (10 ms)
N_FFT = 400
FRAME_SHIFT = 0.02  # seconds per encoder frame (2 mel frames)
SAMPLES_PER_FRAME = 2 * HOP_LENGTH
WINDOW_FRAMES = 1500  # encoder frames in one 30 s window
WINDOW_SAMPLES = WINDOW_FRAMES * SAMPLES_PER_FRAME  # 480000
MODES = ("trim", "pad30")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def num_frames(num_samples: int) -> int:
    """Encoder frames covering ``num_samples`` at 16 kHz (lhotse's rounding, at least 1)."""
    return max(1, (num_samples + SAMPLES_PER_FRAME // 2) // SAMPLES_PER_FRAME)


def is_local(name_or_path: str) -> bool:
    """True for a local directory; a missing path that looks like one (``./x``, ``/x``, ``~``) is an error."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return True
    if name_or_path.startswith((".", "/", "~")) or os.sep + os.sep in name_or_path or name_or_path.count("/") > 1:
        raise FileNotFoundError(f"Whisper model directory not found: {name_or_path}")
    return False


@dataclass(frozen=True, kw_only=True)
class WhisperFrontEnd:
    """A frozen Whisper encoder used as a feature extractor, and the tag of its features."""

    model: str
    """Hugging Face hub id (``openai/whisper-large-v3``) or a local Whisper directory."""
    mode: Literal["trim", "pad30"] = "trim"
    """``trim``: encode only the needed frames; ``pad30``: pad every window to 30 s, as Whisper was trained."""
    num_mel_bins: int = 80
    """Log-mel bins of the input (80; 128 for large-v3)."""
    hidden_size: int = 384
    """Encoder output width D."""
    sample_rate: int = SAMPLE_RATE
    """Input sample rate in Hz."""
    frame_shift: float = FRAME_SHIFT
    """Seconds per output frame."""
    name: str = "whisper"
    """Short model name used in the tag (``whisper-tiny.en``)."""

    def validate(self) -> None:
        config_check(self.mode in MODES, "mode", self.mode, f"must be one of {list(MODES)}")
        config_check(self.num_mel_bins in (80, 128), "num_mel_bins", self.num_mel_bins, "must be 80 or 128")

    @property
    def tag(self) -> str:
        """Names ``dump/<tag>/``: model and mode, e.g. ``whisper-large-v3_pad30``."""
        return f"{self.name}_{self.mode}"

    @classmethod
    def from_pretrained(cls, model: str | Path, mode: str = "trim", name: Optional[str] = None) -> "WhisperFrontEnd":
        """Read the sizes from the model's config (local directory: no hub access)."""
        from transformers import WhisperConfig

        model = str(model)
        local = is_local(model)
        try:
            cfg = WhisperConfig.from_pretrained(model, local_files_only=local)
        except Exception as exc:
            cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"cannot read the Whisper encoder {model!r} (--encoder): {cause}") from exc
        if name is None:
            base = Path(model.rstrip("/")).name
            name = base if base.lower().startswith("whisper") else f"whisper-{base}"
        spec = cls(model=model, mode=mode, num_mel_bins=cfg.num_mel_bins, hidden_size=cfg.d_model, name=name)  # type: ignore[arg-type]
        spec.validate()
        return spec

    def with_mode(self, mode: str) -> "WhisperFrontEnd":
        """The same encoder in the other mode."""
        spec = replace(self, mode=mode)
        spec.validate()
        return spec

    def num_frames(self, duration: float) -> int:
        """Output frames for ``duration`` seconds (equals ``cut.num_frames`` of the cached cut)."""
        return num_frames(round(duration * self.sample_rate))

    def build(self, device: str | torch.device = "cpu", dtype: str = "float32") -> "WhisperEncoderModel":
        """Load the frozen encoder (eval mode, no grad) on ``device`` in ``dtype``."""
        return WhisperEncoderModel(self, device=device, dtype=dtype)


def mel_filters(num_mel_bins: int) -> np.ndarray:
    """Whisper's Slaney mel filter bank, ``(1 + N_FFT // 2, num_mel_bins)``."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=num_mel_bins).mel_filters


def log_mel(wavs: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Whisper's log-mel spectrogram, batched: ``(B, N)`` float32 -> ``(B, n_mels, N // 160)``.

    Same as ``WhisperFeatureExtractor`` (centered STFT, drop the last frame, per-utterance floor
    at max - 8, ``(x + 4) / 4``); the floor is taken over the whole (zero-padded) row.
    """
    window = torch.hann_window(N_FFT, device=wavs.device)
    stft = torch.stft(wavs, N_FFT, HOP_LENGTH, window=window, return_complex=True)  # (B, 201, N/160 + 1)
    power = (stft[..., :-1].abs() ** 2).contiguous()
    mel = filters.T @ power  # (B, n_mels, M)
    logm = torch.clamp(mel, min=1e-10).log10()
    peak = logm.amax(dim=(1, 2), keepdim=True)
    return (torch.maximum(logm, peak - 8.0) + 4.0) / 4.0


class WhisperEncoderModel(nn.Module):
    """Frozen Whisper encoder: a batch of 16 kHz waveforms -> a list of ``(T_i, D)`` frame arrays."""

    def __init__(self, spec: WhisperFrontEnd, device: str | torch.device = "cpu", dtype: str = "float32"):
        super().__init__()
        from transformers import WhisperModel

        spec.validate()
        device = torch.device(device)
        config_check(dtype in DTYPES, "dtype", dtype, f"must be one of {list(DTYPES)}")
        config_check(not (device.type == "cpu" and dtype == "float16"), "dtype", dtype,
                     "float16 is for GPUs; use float32 or bfloat16 on CPU")
        self.spec, self.device, self.dtype = spec, device, DTYPES[dtype]
        local = is_local(spec.model)
        try:
            whisper = WhisperModel.from_pretrained(spec.model, dtype=torch.float32, local_files_only=local)
        except Exception as exc:
            raise ConfigError(f"encoder={spec.model!r}: cannot load Whisper weights ({exc})") from exc
        self.encoder = whisper.get_encoder()
        del whisper
        if self.encoder.config.num_mel_bins != spec.num_mel_bins or self.encoder.config.d_model != spec.hidden_size:
            raise ConfigError(f"encoder={spec.model!r}: sizes differ from the front-end spec {spec}")
        self.fingerprint = weights_fingerprint(self.encoder)  # of the float32 weights, before the cast
        self.dtype_name = dtype
        self.encoder.to(device=device, dtype=self.dtype).eval().requires_grad_(False)
        self.register_buffer("filters", torch.from_numpy(mel_filters(spec.num_mel_bins)).float().to(device))
        self.max_positions = self.encoder.config.max_source_positions

    def train(self, mode: bool = True) -> "WhisperEncoderModel":
        """The encoder stays in eval mode (frozen)."""
        return super().train(False)

    @torch.inference_mode()
    def forward(self, wavs: Sequence[np.ndarray | torch.Tensor]) -> list[torch.Tensor]:
        """Encode mono 16 kHz waveforms ``[(N_i,)]`` -> ``[(T_i, D)]`` in the model dtype, on its device."""
        # Split every utterance into 30 s windows; encode all windows of the batch together.
        pieces: list[tuple[int, torch.Tensor, int]] = []  # (utterance, samples, frames)
        for i, w in enumerate(wavs):
            w = torch.as_tensor(w, dtype=torch.float32).reshape(-1)
            total = num_frames(len(w))
            for k in range(math.ceil(total / WINDOW_FRAMES)):
                frames = min(WINDOW_FRAMES, total - k * WINDOW_FRAMES)
                pieces.append((i, w[k * WINDOW_SAMPLES : (k + 1) * WINDOW_SAMPLES], frames))
        frames = [p[2] for p in pieces]
        if self.spec.mode == "pad30":
            out = self._encode_padded([p[1] for p in pieces])
        else:
            out = self._encode_trimmed([p[1] for p in pieces], frames)
        result: list[list[torch.Tensor]] = [[] for _ in wavs]
        for (i, _, t), h in zip(pieces, out):
            result[i].append(h[:t])
        return [torch.cat(r, 0) for r in result]

    def _mels(self, chunks: list[torch.Tensor], length: int) -> torch.Tensor:
        """Zero-pad each chunk to ``length`` samples -> log-mel ``(B, n_mels, length // 160)`` in float32."""
        batch = torch.zeros(len(chunks), length, device=self.device)
        for b, c in enumerate(chunks):
            batch[b, : len(c)] = c.to(self.device)
        return log_mel(batch, self.filters)

    def _encode_padded(self, chunks: list[torch.Tensor]) -> torch.Tensor:
        # Zeros after the window, as OpenAI's Whisper pads (the last frames see zeros, not a reflection).
        mel = self._mels(chunks, WINDOW_SAMPLES + N_FFT)[..., : 2 * WINDOW_FRAMES].to(self.dtype)  # (B, n_mels, 3000)
        return self.encoder(mel).last_hidden_state  # (B, 1500, D)

    def _encode_trimmed(self, chunks: list[torch.Tensor], frames: list[int]) -> torch.Tensor:
        enc = self.encoder
        t_max = max(frames)
        lens = torch.tensor(frames, device=self.device)
        # + N_FFT: the mel frames we keep see only the utterance and zeros, as with 30 s padding.
        mel = self._mels(chunks, t_max * SAMPLES_PER_FRAME + N_FFT)[..., : 2 * t_max]  # (B, n_mels, 2T)
        mel_keep = torch.arange(2 * t_max, device=self.device)[None, :] < 2 * lens[:, None]  # (B, 2T)
        x = mel.to(self.dtype) * mel_keep[:, None, :]
        # Zero beyond each utterance after conv1 too, so its edge sees the same zeros as when alone.
        x = nn.functional.gelu(enc.conv1(x)) * mel_keep[:, None, :]
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)  # (B, T, D)
        x = x + enc.embed_positions.weight[:t_max]
        mask = None
        if min(frames) < t_max:  # key padding mask, additive: (B, 1, T, T)
            keep = torch.arange(t_max, device=self.device)[None, :] < lens[:, None]
            mask = torch.zeros(len(frames), 1, t_max, t_max, device=self.device, dtype=self.dtype)
            mask.masked_fill_(~keep[:, None, None, :], torch.finfo(self.dtype).min)
        for layer in enc.layers:
            x = layer(x, mask)
        return enc.layer_norm(x)  # (B, T, D)
