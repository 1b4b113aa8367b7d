"""Audio-reliance transforms (docs/design.md §2.6): decode with the audio replaced, to see how much the model listens.

:class:`AudioTransform` maps a decoding batch (the dict of :class:`elfs2t.data.dataset.S2TDataset`) to the same
batch with its encoder features replaced; it runs before the model, so it serves ELF-S2T and the AR
baseline alike (``decode.audio`` in :class:`elfs2t.experiment.DecodeConfig`). Modes (:data:`AUDIO_MODES`):

``real``   the features as they are.
``zero``   all features zero (lengths kept): the prefix carries no information about the utterance (it is
           the projector's response to zeros, not the all-zero condition of the CFG unconditional branch).
``noise``  Gaussian noise with the utterance's own scalar mean and standard deviation (over its valid
           frames and channels; the noise sample is standardised, so both match exactly), lengths kept,
           padding zero. The noise of an utterance is seeded by its id (and ``seed``), so it does not
           depend on the batching or the number of decoding processes.
``swap``   another utterance's features, with its length: row ``i`` takes row ``(i + 1) mod B`` of the batch
           (a derangement for ``B >= 2``). A batch of one takes the last row of the previous batch; a
           first batch of one cannot be swapped and is an error (raise ``decode.max_duration``).
"""
from __future__ import annotations

import zlib
from typing import Optional

import torch

__all__ = ["AUDIO_MODES", "AudioTransform", "derangement"]

AUDIO_MODES = ("real", "zero", "noise", "swap")


def derangement(n: int) -> torch.Tensor:
    """The cyclic shift ``i -> (i + 1) mod n``: no index maps to itself when ``n >= 2``."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 elements, got {n}")
    return torch.roll(torch.arange(n), -1)


def _pad(rows: list[torch.Tensor], dim: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros(len(rows), max(r.shape[0] for r in rows), dim, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out


class AudioTransform:
    """``batch -> batch`` with the features replaced according to ``mode`` (see the module docstring)."""

    def __init__(self, mode: str = "real", seed: int = 0) -> None:
        if mode not in AUDIO_MODES:
            raise ValueError(f"audio mode {mode!r}: must be one of {AUDIO_MODES}")
        self.mode = mode
        self.seed = seed
        self._donor: Optional[torch.Tensor] = None  # swap: the last valid features of the previous batch

    def __call__(self, batch: dict) -> dict:
        if self.mode == "real":
            return batch
        feats, lens = batch["feats"], batch["feat_lens"]  # (B, T, D), (B,)
        if self.mode == "zero":
            return {**batch, "feats": torch.zeros_like(feats)}
        rows = [feats[i, : int(n)] for i, n in enumerate(lens.tolist())]
        if self.mode == "noise":
            new = [self._noise(r, cid) for r, cid in zip(rows, batch["cut_ids"])]
            return {**batch, "feats": _pad(new, feats.shape[-1], feats.dtype)}
        # swap
        if len(rows) >= 2:
            new = [rows[j] for j in derangement(len(rows)).tolist()]
        elif self._donor is not None:
            new = [self._donor]
        else:
            raise ValueError("audio=swap: the first decoding batch holds a single utterance, so there is no other "
                             "utterance to take the audio from; raise decode.max_duration")
        self._donor = rows[-1].clone()
        return {**batch, "feats": _pad(new, feats.shape[-1], feats.dtype),
                "feat_lens": torch.tensor([r.shape[0] for r in new], dtype=lens.dtype)}

    def _noise(self, row: torch.Tensor, cut_id: str) -> torch.Tensor:
        gen = torch.Generator().manual_seed((zlib.crc32(cut_id.encode("utf-8")) + 1_000_003 * self.seed) % (2 ** 63))
        values = row.double()
        mean = values.mean() if values.numel() else torch.tensor(0.0, dtype=torch.float64)
        std = values.std(unbiased=False) if values.numel() > 1 else torch.tensor(0.0, dtype=torch.float64)
        noise = torch.randn(row.shape, generator=gen, dtype=torch.float64)
        if noise.numel() > 1:  # standardised: the noise has exactly the utterance's mean and std
            noise = (noise - noise.mean()) / noise.std(unbiased=False).clamp(min=1e-12)
        return (mean + std * noise).to(row.dtype)
