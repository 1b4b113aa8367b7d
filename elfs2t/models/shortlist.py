"""Token-head shortlist: the token ids of the training text, fixed before training (ELF-S2T and the text ELF).

On a small domain nothing outside the training text's token ids is ever right (mini_synth: 452 of MiniLM's
30522), so the denoiser's token head is restricted to those columns (:meth:`ElfDenoiser.restrict_head`): the
decoding cross-entropy, the auxiliary CTC and the decoding argmax run over them, and the optimiser never
touches the others. The shortlist is a buffer, so checkpoints carry it; a model loading one takes its size
from the checkpoint (it is the data's, not the config's).
"""
from __future__ import annotations

import logging
from typing import Optional

import torch

__all__ = ["TokenShortlist", "mean_latents", "shortlist_ids"]

log = logging.getLogger(__name__)


def shortlist_ids(text_space, texts: list[str]) -> torch.Tensor:
    """Sorted unique ids of ``text_space.tokenize(texts)`` (content, BOS/EOS) plus the padding id (the CTC blank)."""
    if not texts:
        raise ValueError("token shortlist: no training texts to take it from")
    found: set[int] = {text_space.pad_id, text_space.eos_id}
    if text_space.bos_id is not None:
        found.add(text_space.bos_id)
    for start in range(0, len(texts), 4096):
        found.update(torch.unique(text_space.tokenize(texts[start:start + 4096])).tolist())
    return torch.tensor(sorted(found), dtype=torch.long)


@torch.no_grad()
def mean_latents(text_space, texts: list[str], ids: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The mean latent ``(K, d)`` of each token id of ``ids (K,)`` over its occurrences in ``texts`` (zeros for an id
    that never occurs, e.g. the padding id that serves as the CTC blank)."""
    sums = torch.zeros(ids.numel(), text_space.dim, dtype=torch.float64)
    counts = torch.zeros(ids.numel(), dtype=torch.float64)
    for start in range(0, len(texts), batch):
        tok = text_space.tokenize(texts[start:start + batch])
        x = text_space.encode(tok).double().cpu().reshape(-1, text_space.dim)
        flat = tok.reshape(-1)
        col = torch.searchsorted(ids, flat).clamp_max(ids.numel() - 1)
        hit = ids[col] == flat
        sums.index_add_(0, col[hit], x[hit])
        counts.index_add_(0, col[hit], torch.ones(int(hit.sum()), dtype=torch.float64))
    return (sums / counts.clamp_min(1)[:, None]).float()


class TokenShortlist:
    """Mixin for an ``nn.Module`` with ``self.cfg`` (``token_shortlist``, ``lowercase``), ``self.text_space`` and
    ``self.denoiser``; call :meth:`_init_shortlist` in ``__init__``."""

    def _init_shortlist(self) -> None:
        # Sorted token ids of the head's shortlist (empty: not set yet / full vocabulary).
        self.register_buffer("shortlist", torch.zeros(0, dtype=torch.long))

    def set_token_shortlist(self, texts: list[str]) -> int:
        """Fix the shortlist from the training texts (lower-cased when ``cfg.lowercase``) and restrict the
        denoiser's token head to it; call before the optimiser is built. Returns its size."""
        texts = [t.lower() for t in texts] if self.cfg.lowercase else list(texts)
        ids = shortlist_ids(self.text_space, texts)
        self.shortlist = ids.to(self.shortlist.device)
        self.denoiser.restrict_head(self.shortlist)
        log.info("token-head shortlist: %d of %d token ids (from %d training texts)", ids.numel(),
                 self.text_space.vocab_size, len(texts))
        if self.denoiser.cfg.flow_head == "token_mixture":
            self.denoiser.set_token_means(mean_latents(self.text_space, sorted(set(texts)), ids))
        return ids.numel()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "shortlist"
        if key in state_dict:  # its size is the training data's, not the config's: take the saved one
            self.shortlist = state_dict[key].to(self.shortlist.device, torch.long).clone()
        elif not self.cfg.token_shortlist:  # checkpoints of models from before the shortlist existed
            state_dict[key] = self.shortlist
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def vocab(self) -> Optional[torch.Tensor]:
        """The head's shortlist ``(K,)``, or None (full vocabulary, ``token_shortlist`` off). A restricted head's
        own ``head_ids`` (the same ids) when it has them: ``token_logits`` then takes every column without a
        comparison."""
        if not self.cfg.token_shortlist:
            return None
        if self.shortlist.numel() == 0:
            raise RuntimeError(f"{type(self).__name__}: token_shortlist is on but no shortlist was set "
                               "(set_token_shortlist(training texts) before training; checkpoints carry it)")
        return self.denoiser.head_ids if self.denoiser.head_ids.numel() else self.shortlist
