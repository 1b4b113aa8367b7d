"""Audio projector: cached encoder frames -> audio prefix tokens in a model's hidden width.

Shared by ELF-S2T (the denoiser's clean condition) and the AR baseline (the LM's input prefix).
Optional frame stacking by ``k`` shortens the prefix: frames ``k*j .. k*j + k - 1`` are concatenated
into one vector of width ``k * D`` (the tail is zero-padded to a multiple of ``k``), then one
``Linear(k * D -> H)`` maps it to the hidden width::

    prefix, mask = projector(feats, feat_lens)
    feats (B, T, D), feat_lens (B,)  ->  prefix (B, T', H), mask (B, T') bool,  T' = ceil(T / k)

Row ``b`` has ``ceil(feat_lens[b] / k)`` valid prefix tokens (``mask`` True); padded positions of
``prefix`` are exactly zero. Input frames beyond ``feat_lens[b]`` are zeroed before stacking, so
whatever padding value the batch carries never leaks into a row's last stacked token.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["AudioProjector", "lengths_to_mask"]


def lengths_to_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True at valid positions."""
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


class AudioProjector(nn.Module):
    """Frame stacking by ``stack`` (k) and one linear layer ``k * in_dim -> out_dim``."""

    def __init__(self, in_dim: int, out_dim: int, stack: int = 1) -> None:
        super().__init__()
        if in_dim <= 0 or out_dim <= 0:
            raise ValueError(f"AudioProjector: in_dim={in_dim} and out_dim={out_dim} must be positive")
        if stack < 1:
            raise ValueError(f"AudioProjector: stack={stack} must be >= 1")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.stack = stack
        self.linear = nn.Linear(in_dim * stack, out_dim)

    def out_lengths(self, feat_lens: torch.Tensor) -> torch.Tensor:
        """Prefix lengths ``ceil(feat_lens / k)``."""
        return torch.div(feat_lens + self.stack - 1, self.stack, rounding_mode="floor")

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``feats (B, T, D)``, ``feat_lens (B,)`` -> ``prefix (B, T', H)``, ``mask (B, T')``."""
        if feats.dim() != 3 or feats.shape[-1] != self.in_dim:
            raise ValueError(f"AudioProjector: expected feats (B, T, {self.in_dim}), got {tuple(feats.shape)}")
        b, t, d = feats.shape
        feat_lens = feat_lens.to(device=feats.device, dtype=torch.long)
        if feat_lens.shape != (b,) or bool((feat_lens > t).any()) or bool((feat_lens < 0).any()):
            raise ValueError(f"AudioProjector: feat_lens {feat_lens.tolist()} do not fit feats of length {t}")
        k = self.stack
        feats = feats.to(self.linear.weight.dtype)
        feats = feats * lengths_to_mask(feat_lens, t)[:, :, None]  # zero the padding
        t_out = (t + k - 1) // k
        if t_out * k != t:
            feats = torch.nn.functional.pad(feats, (0, 0, 0, t_out * k - t))  # (B, T' k, D)
        stacked = feats.reshape(b, t_out, k * d)  # (B, T', k D): k consecutive frames side by side
        mask = lengths_to_mask(self.out_lengths(feat_lens), t_out)  # (B, T')
        prefix = self.linear(stacked) * mask[:, :, None]  # (B, T', H), zero at padded positions
        return prefix, mask
