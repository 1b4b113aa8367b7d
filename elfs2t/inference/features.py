"""Features computed in-process, exactly as stage 2 caches them, for cuts with audio.

:class:`AudioFeatureDataset` turns a sampler batch of cuts into the batch dict of
:class:`~elfs2t.data.dataset.S2TDataset` (docs/contracts.md) without a stage-2 folder: each cut's audio is read as
stage 2 reads it (:func:`~elfs2t.features.cache.load_cut_audio`: 16 kHz mono through Lhotse), encoded by the
frozen Whisper encoder in chunks of ``batch_size`` utterances sorted by duration (stage 2's batching), rounded to
float16 (stage 2's storage) and back to float32 (what the dataset reads). The same audio therefore gives the same
features, and the same model the same text, as stages 2 and 5.
"""
from __future__ import annotations

import numpy as np
import torch
from lhotse import CutSet

from elfs2t.features.cache import load_cut_audio
from elfs2t.inference.audio import InputError

__all__ = ["AudioFeatureDataset"]


class AudioFeatureDataset:
    """``dataset[cuts] -> batch`` with the encoder's features; ``text`` is empty (there is no target)."""

    def __init__(self, encoder, task: str, batch_size: int = 8, sources: dict[str, str] | None = None) -> None:
        self.encoder = encoder
        self.task = task
        self.batch_size = batch_size
        self.sources = sources or {}

    def __getitem__(self, cuts: CutSet) -> dict:
        cuts = cuts.sort_by_duration(ascending=False)
        audio = []
        for cut in cuts:
            try:
                audio.append(load_cut_audio(cut))
            except Exception as exc:
                where = self.sources.get(cut.id, cut.id)
                raise InputError(f"{where}: cannot read audio ({type(exc).__name__}: {exc})") from exc
        feats: list[torch.Tensor] = []
        for start in range(0, len(audio), self.batch_size):
            for f in self.encoder(audio[start:start + self.batch_size]):
                stored = f.float().cpu().numpy().astype(np.float16)  # (T, D) as stage 2 stores it
                feats.append(torch.from_numpy(stored).float())
        lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        padded = torch.zeros(len(feats), int(lens.max()), feats[0].shape[1])
        for i, f in enumerate(feats):
            padded[i, : f.shape[0]] = f
        return {
            "cut_ids": [c.id for c in cuts],
            "feats": padded,
            "feat_lens": lens,
            "text": [""] * len(feats),
            "task": [self.task] * len(feats),
            "duration": torch.tensor([c.duration for c in cuts]),
        }
