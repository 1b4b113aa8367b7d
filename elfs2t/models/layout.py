"""Sequence layout of the ELF denoiser: RoPE positions, attention masks, and the condition cache.

The denoiser runs over ``[prefix (P) | condition (C) | text (L)]``. This module is the one place that
builds its masks and positions (:func:`attention_mask`, :func:`sequence_positions`) and holds
:class:`ConditionCache`, the per-layer keys/values of a condition that attends only to itself
(``DenoiserConfig.prefix_attention: self``; see :mod:`elfs2t.models.denoiser`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from elfs2t.models.layers import KV

__all__ = ["PREFIX_ATTENTION", "ConditionCache", "TextSlots", "attention_mask", "sequence_positions", "slot_kwargs",
           "stack_slots"]

#: Values of ``DenoiserConfig.prefix_attention``.
PREFIX_ATTENTION = ("full", "self")


class ConditionCache(NamedTuple):
    """Per-layer keys and values of the condition slots (``prefix_attention: self``), reusable at every step."""

    kv: tuple[KV, ...]
    """One ``(k, v)`` per block, each ``(B, heads, C, hd)`` (after QK-norm and RoPE)."""
    cond_mask: torch.Tensor
    """(B, C) bool, True = real condition slot."""

    @property
    def batch_size(self) -> int:
        """Rows B."""
        return self.cond_mask.shape[0]

    def rows(self, index: torch.Tensor | slice) -> "ConditionCache":
        """The cache of some rows (e.g. the conditional half of a CFG cache)."""
        return ConditionCache(kv=tuple((k[index], v[index]) for k, v in self.kv), cond_mask=self.cond_mask[index])


class TextSlots(NamedTuple):
    """Where the text slots of a batch sit and what is added to their inputs (ELF-S2T's aligned slots); the
    samplers and the objective hand it to the denoiser as keywords (:meth:`kwargs`), only what is set, so a
    denoiser without these inputs (docs/contracts.md) keeps working."""

    pos: torch.Tensor | None = None
    """(B, L) RoPE positions of the text slots (None: the denoiser's own)."""
    extra: torch.Tensor | None = None
    """(B, L, H) added to the text slots' input embeddings (None: nothing)."""

    def kwargs(self) -> dict:
        """The denoiser keywords ``text_pos`` / ``text_extra`` that are set."""
        out = {}
        if self.pos is not None:
            out["text_pos"] = self.pos
        if self.extra is not None:
            out["text_extra"] = self.extra
        return out

    def rows(self, index: torch.Tensor | slice) -> "TextSlots":
        """The slots of some rows."""
        return TextSlots(*(None if v is None else v[index] for v in self))

    def __bool__(self) -> bool:  # an empty TextSlots changes nothing
        return self.pos is not None or self.extra is not None


def slot_kwargs(slots: TextSlots | None) -> dict:
    """``slots.kwargs()``, or nothing for None."""
    return {} if slots is None else slots.kwargs()


def stack_slots(cond: TextSlots | None, uncond: TextSlots | None) -> TextSlots | None:
    """The slots of ``[conditional rows | unconditional rows]`` (CFG's ``2B`` rows), each half from its own
    TextSlots: an unconditional half without positions takes the conditional ones, a half without an extra input
    gets zeros."""
    cond, uncond = cond or TextSlots(), uncond or TextSlots()
    if cond.pos is None and uncond.pos is not None:
        raise ValueError("the unconditional branch has text positions but the conditional one has none")
    pos = None if cond.pos is None else torch.cat([cond.pos, (uncond.pos if uncond.pos is not None else cond.pos)
                                                   .to(cond.pos.device)])
    extra = None
    if cond.extra is not None or uncond.extra is not None:
        c = cond.extra if cond.extra is not None else torch.zeros_like(uncond.extra)
        u = uncond.extra if uncond.extra is not None else torch.zeros_like(c)
        extra = torch.cat([c, u.to(c.device)])
    out = TextSlots(pos, extra)
    return out if out else None


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
