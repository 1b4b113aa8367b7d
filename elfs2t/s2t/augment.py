"""SpecAugment-style masking of cached encoder frames, in training only.

The Whisper frames are cached (stage 2), so augmentation happens on the encoder's outputs, inside the
model's training forward (like dropout): per row, ``time_masks`` spans of up to ``max_time_frac`` of the
row's valid frames and ``feat_masks`` bands of up to ``max_feat_width`` channels are set to zero. Widths
and starts are uniform (the icefall / Lhotse ``SpecAugment`` recipe without time warping, which has no
meaning for encoder outputs)::

    feats = mask_features(feats, feat_lens, FeatureMaskConfig(time_masks=2, feat_masks=2))

Frames past ``feat_lens`` are left as they are (the projector zeroes them anyway). With both counts 0 (the
default) nothing changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from elfs2t.config import config_check

__all__ = ["FeatureMaskConfig", "mask_features"]


@dataclass(kw_only=True)
class FeatureMaskConfig:
    """Time and channel masks drawn per row of a training batch (0 masks: off)."""

    time_masks: int = 0
    """Time spans masked per row."""
    max_time_frac: float = 0.1
    """Largest span, as a fraction of the row's valid frames."""
    feat_masks: int = 0
    """Channel bands masked per row."""
    max_feat_width: int = 32
    """Largest band, in channels."""

    @property
    def active(self) -> bool:
        return self.time_masks > 0 or self.feat_masks > 0

    def validate(self) -> None:
        config_check(self.time_masks >= 0, "time_masks", self.time_masks, "must be >= 0")
        config_check(self.feat_masks >= 0, "feat_masks", self.feat_masks, "must be >= 0")
        config_check(0.0 <= self.max_time_frac <= 1.0, "max_time_frac", self.max_time_frac, "must be in [0, 1]")
        config_check(self.max_feat_width >= 0, "max_feat_width", self.max_feat_width, "must be >= 0")


def _spans(count: int, limit: torch.Tensor, max_width: torch.Tensor, size: int,
           generator: Optional[torch.Generator]) -> torch.Tensor:
    """``(B, size)`` bool: per row ``count`` spans of width uniform in [0, max_width] inside [0, limit)."""
    b = limit.shape[0]
    u = torch.rand((2, b, count), generator=generator)
    width = (u[0] * (max_width[:, None].float() + 1)).floor().clamp_max(limit[:, None].float())
    start = (u[1] * (limit[:, None].float() - width + 1)).floor()
    pos = torch.arange(size, dtype=torch.float32)[None, None, :]
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])  # (B, count, size)
    return inside.any(dim=1)


def mask_features(feats: torch.Tensor, feat_lens: torch.Tensor, cfg: FeatureMaskConfig,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``feats (B, T, D)`` with ``cfg``'s time spans and channel bands zeroed (a new tensor; the input is kept)."""
    if not cfg.active:
        return feats
    b, t, d = feats.shape
    lens = feat_lens.detach().to("cpu", torch.long).clamp(0, t)
    # the masks are drawn small on the CPU -- (B, T) frames and (B, D) channels -- and broadcast on feats' device
    keep_t = torch.ones(b, t, dtype=torch.bool)
    keep_d = torch.ones(b, d, dtype=torch.bool)
    if cfg.time_masks > 0:
        max_w = (lens.float() * cfg.max_time_frac).floor().long()
        keep_t = ~_spans(cfg.time_masks, lens, max_w, t, generator)
    if cfg.feat_masks > 0:
        full = torch.full((b,), d, dtype=torch.long)
        max_w = torch.full((b,), min(cfg.max_feat_width, d), dtype=torch.long)
        keep_d = ~_spans(cfg.feat_masks, full, max_w, d, generator)
    return (feats * keep_t.to(feats.device, feats.dtype)[:, :, None]) * keep_d.to(feats.device, feats.dtype)[:, None, :]
