"""Sequence layout of the ELF denoiser: RoPE positions, attention masks, and the condition cache.

The denoiser runs over ``[prefix (P) | condition (C) | text (L)]``. This module is the one place that
builds its masks and positions (:func:`attention_mask`, :func:`sequence_positions`); it re-exports the containers
the flow code hands to the denoiser (:mod:`elfs2t.flow.slots`: :class:`ConditionCache`, :class:`TextSlots`).
"""
from __future__ import annotations

import torch

from elfs2t.flow.slots import ConditionCache, TextSlots, slot_kwargs, stack_slots

__all__ = ["PREFIX_ATTENTION", "ConditionCache", "TextSlots", "attention_mask", "sequence_positions", "slot_kwargs",
           "stack_slots"]

#: Values of ``DenoiserConfig.prefix_attention``.
PREFIX_ATTENTION = ("full", "self")


def sequence_positions(n_prefix: int, cond_mask: torch.Tensor, l_text: int, text_pos_scale: float = 0.0,
                       text_pos: torch.Tensor | None = None) -> torch.Tensor:
    """RoPE positions ``(B, P + C + L)``: prefix -1 (unrotated); real condition slots 0..n-1 (padded
    slots -1); text from the row's condition length on, or with ``text_pos_scale > 0`` text slot ``i`` at
    ``round(i * text_pos_scale)`` on the condition's axis (``DenoiserConfig.text_pos_scale``), or at the
    given ``text_pos (B, L)`` (e.g. each token's CTC-aligned condition slot)."""
    b, dev = cond_mask.shape[0], cond_mask.device
    cond_pos = torch.cumsum(cond_mask.long(), dim=1) - 1
    cond_pos = torch.where(cond_mask, cond_pos, torch.full_like(cond_pos, -1))
    if text_pos is not None:
        if tuple(text_pos.shape) != (b, l_text):
            raise ValueError(f"text_pos has shape {tuple(text_pos.shape)}, expected {(b, l_text)}")
        text_pos = text_pos.to(dev, torch.long)
    elif text_pos_scale > 0:  # on the condition's axis: slot i near condition frame i * scale
        text_pos = (torch.arange(l_text, device=dev, dtype=torch.float32) * text_pos_scale).round().long()
        text_pos = text_pos[None, :].expand(b, -1)
    else:
        cond_len = cond_mask.long().sum(dim=1, keepdim=True)  # (B, 1)
        text_pos = cond_len + torch.arange(l_text, device=dev)[None, :]
    return torch.cat([torch.full((b, n_prefix), -1, dtype=torch.long, device=dev), cond_pos, text_pos], dim=1)


def attention_mask(n_prefix: int, cond_mask: torch.Tensor, text_mask: torch.Tensor, prefix_attention: str = "full") -> torch.Tensor:
    """The one place that builds the denoiser's attention masks (True = may attend).

    ``full``: a key mask ``(B, S)`` over ``[prefix | condition | text]`` (padded slots hidden).
    ``self``: a per-query mask ``(B, S, S)``: like ``full`` for prefix and text queries; condition
    queries see only the real condition slots and themselves (see :mod:`elfs2t.models.denoiser`).
    """
    b, n_cond = cond_mask.shape
    dev = cond_mask.device
    keys = torch.cat([torch.ones(b, n_prefix, dtype=torch.bool, device=dev), cond_mask, text_mask], dim=1)  # (B, S)
    if prefix_attention == "full" or n_cond == 0:
        return keys
    s = keys.shape[1]
    mask = keys[:, None, :].expand(b, s, s).clone()  # (B, S_q, S_k)
    c0, c1 = n_prefix, n_prefix + n_cond
    mask[:, c0:c1, :] = False
    eye = torch.eye(n_cond, dtype=torch.bool, device=dev)[None]
    mask[:, c0:c1, c0:c1] = cond_mask[:, None, :] | eye  # (B, C, C)
    return mask
