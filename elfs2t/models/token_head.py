"""The ELF denoiser's token head, and its restriction to a shortlist of token ids.

``token_logits(hidden) = gelu_tanh(hidden @ proj_kernel + proj_bias) @ unembed_kernel + unembed_bias``: the
released ELF's factored head (``P: H x d``, ``U: d x V``) on the raw residual stream. On a small domain only the
training text's ids are ever right (:mod:`elfs2t.models.shortlist`), so :meth:`TokenHead.restrict_head` keeps
just their columns of ``U``; :attr:`head_ids` records which global ids those are, and checkpoints carry it (a
fresh model loading a restricted checkpoint restricts itself the same way before the weights are copied).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TokenHead"]


class TokenHead:
    """Mixin for an ``nn.Module`` (listed before it): the token head's parameters (:meth:`_init_token_head`, named
    as in the released ELF checkpoints), :meth:`token_logits` and :meth:`restrict_head`."""

    def _init_token_head(self, hidden: int, latent_dim: int, vocab_size: int) -> None:
        """Create ``proj_kernel (H, d)``, ``proj_bias (d,)``, ``unembed_kernel (d, V)``, ``unembed_bias (V,)`` (in
        this order: the released checkpoints' parameter order) and the ``head_ids`` buffer (empty: all V ids)."""
        self.proj_kernel = nn.Parameter(torch.empty(hidden, latent_dim))  # P: H x d
        self.proj_bias = nn.Parameter(torch.empty(latent_dim))
        self.unembed_kernel = nn.Parameter(torch.empty(latent_dim, vocab_size))  # U: d x V
        self.unembed_bias = nn.Parameter(torch.empty(vocab_size))
        # Global token ids of the head's columns after restrict_head (sorted); empty: all V ids, column = id.
        self.register_buffer("head_ids", torch.zeros(0, dtype=torch.long))

    def restrict_head(self, ids: torch.Tensor) -> None:
        """Keep only the token-head columns of the sorted, unique token ids ``ids (K,)`` (a shortlist).

        ``unembed_kernel`` / ``unembed_bias`` become ``(d, K)`` / ``(K,)`` parameters holding those columns, and
        :attr:`head_ids` remembers which global ids they are: the optimiser then updates K columns instead of V
        (MiniLM: 452 of 30522 on mini_synth), and no V-sized gradient is allocated per step. Checkpoints carry
        ``head_ids``; loading one restricts a fresh model the same way. Call before building the optimiser.
        """
        ids = ids.to(self.unembed_bias.device, torch.long)
        if ids.ndim != 1 or ids.numel() == 0 or bool((ids[1:] <= ids[:-1]).any()):
            raise ValueError("ElfDenoiser.restrict_head: ids must be a non-empty sorted 1-D tensor of unique ids")
        cols = self._columns(ids)
        self.unembed_kernel = nn.Parameter(self.unembed_kernel.detach()[:, cols].clone())
        self.unembed_bias = nn.Parameter(self.unembed_bias.detach()[cols].clone())
        self.head_ids = ids.clone()

    def _columns(self, vocab: torch.Tensor) -> torch.Tensor:
        """Head columns of the global token ids ``vocab`` (raises for ids the restricted head does not hold)."""
        if self.head_ids.numel() == 0:
            if vocab.numel() and int(vocab.max()) >= self.unembed_bias.numel():
                raise ValueError(f"ElfDenoiser: token id {int(vocab.max())} >= vocab_size {self.unembed_bias.numel()}")
            return vocab
        head = self.head_ids.to(vocab.device)
        cols = torch.searchsorted(head, vocab).clamp_max(head.numel() - 1)
        if not bool((head[cols] == vocab).all()):
            missing = vocab[head[cols] != vocab][:5].tolist()
            raise ValueError(f"ElfDenoiser: token ids {missing} are not in the restricted token head "
                             f"({head.numel()} ids, restrict_head)")
        return cols

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        ids = state_dict.get(prefix + "head_ids")
        if ids is None and self.head_ids.numel() == 0:  # a full-vocabulary checkpoint (text ELF, older runs)
            state_dict[prefix + "head_ids"] = self.head_ids
        if ids is not None and ids.numel() and not torch.equal(ids.cpu(), self.head_ids.cpu()):
            # a restricted checkpoint: give this model the same K-column head before the weights are copied
            self.unembed_kernel = nn.Parameter(self.unembed_kernel.detach().new_zeros(self.unembed_kernel.shape[0], ids.numel()))
            self.unembed_bias = nn.Parameter(self.unembed_bias.detach().new_zeros(ids.numel()))
            self.head_ids = ids.to(self.unembed_bias.device, torch.long).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def token_logits(self, hidden: torch.Tensor, vocab: torch.Tensor | None = None) -> torch.Tensor:
        """Token head on the residual stream: ``(..., H)`` -> ``(..., V)``, or ``(..., K)`` over the token ids
        ``vocab (K,)`` only (a shortlist: the columns of ``U`` that are not needed are never multiplied).
        A restricted head (:meth:`restrict_head`) needs ``vocab`` (ids it holds); its own ids use every column."""
        h = F.gelu(hidden @ self.proj_kernel.to(hidden.dtype) + self.proj_bias.to(hidden.dtype), approximate="tanh")
        kernel, bias = self.unembed_kernel, self.unembed_bias
        if vocab is None:
            if self.head_ids.numel():
                raise ValueError("ElfDenoiser.token_logits: the head is restricted to a shortlist; pass vocab")
        elif not (vocab is self.head_ids or torch.equal(vocab.to(self.head_ids.device), self.head_ids)):
            cols = self._columns(vocab.to(kernel.device))
            kernel, bias = kernel[:, cols], bias[cols]
        return h @ kernel.to(h.dtype) + bias.to(h.dtype)
