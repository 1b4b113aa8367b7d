"""Text-only ELF (docs/design.md §2.1–2.4): a frozen text latent space + the ELF denoiser, trained on text alone.

This is the stage-3 backbone of the offline recipes: pre-trained on the corpus text
(:mod:`elfs2t.pretrain.text`), then used to initialise ELF-S2T's denoiser. Two modes:

* unconditional (``conditional: false``): ``batch = {"text": list[str]}``; the model learns the text
  distribution and :meth:`TextElf.generate` samples ``n`` new texts;
* conditional (``conditional: true``): ``batch = {"text": [...], "source_text": [...]}``; the source is
  encoded by the same frozen encoder and enters as clean condition tokens through the denoiser's input
  projection (:meth:`ElfDenoiser.embed_condition_latents`), the ELF translation setup; the condition
  covers the source tokens up to and including its first EOS.

Targets are EOS-padded to the fixed length L, and the loss covers the EOS tail, so the model learns
where a text ends.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from elfs2t.flow.objective import FlowConfig, flow_matching_loss
from elfs2t.flow.sampler import SamplerConfig, generate_ids
from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser
from elfs2t.models.shortlist import TokenShortlist
from elfs2t.tensor_lru import TensorLRU
from elfs2t.text.latent import TextLatentConfig, TextLatentSpace

log = logging.getLogger(__name__)

__all__ = ["TextElfConfig", "TextElf", "source_mask"]


@dataclass(kw_only=True)
class TextElfConfig:
    """Text-only ELF: latent space, denoiser, objective."""

    text: TextLatentConfig = field(default_factory=TextLatentConfig)
    """Frozen text encoder that defines the latent space (and the text length L)."""
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    """Denoiser size; latent_dim and vocab_size are overwritten from the text latent space."""
    flow: FlowConfig = field(default_factory=FlowConfig)
    """Flow-matching objective (FlowConfig defaults: the conditional ELF values; ELF unconditional uses
    sigma_d 5.0, set flow.sigma_d for an unconditional model)."""
    conditional: bool = False
    """Train on (source_text -> text) pairs with the source as clean condition tokens."""
    lowercase: bool = False
    """Lower-case texts before encoding."""
    cache_latents: bool = True
    """Keep each distinct text's ids and latents (CPU, fp32) after its first encoding: the encoder is frozen,
    so this only saves time; turn off when the corpus' latents do not fit in memory."""
    token_shortlist: bool = False
    """Token head over the corpus' token ids only (:mod:`elfs2t.models.shortlist`, fixed by :func:`pretrain_text`
    before training): on a small corpus the full-vocabulary head is most of a step. ELF-S2T initialised from
    such a checkpoint inherits the restricted head, so its own shortlist must be a subset (the same text)."""


def source_mask(ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """``(B, C)`` bool: positions up to and including the first EOS of each row (all, if none)."""
    is_eos = ids == eos_id
    before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # EOS count strictly before each position
    return before == 0


class TextElf(TokenShortlist, nn.Module):
    """``forward(batch) -> (loss, stats)`` for the trainer; :meth:`generate` to sample texts."""

    def __init__(self, cfg: TextElfConfig, text_space: Optional[TextLatentSpace] = None) -> None:
        super().__init__()
        self.cfg = cfg
        # The frozen text space is not a submodule: its weights are not ours to train or save.
        self.text_space = text_space if text_space is not None else TextLatentSpace(cfg.text)
        cfg.denoiser.latent_dim = self.text_space.dim
        cfg.denoiser.vocab_size = self.text_space.vocab_size
        self.denoiser = ElfDenoiser(cfg.denoiser)
        self._init_shortlist()
        self._cache = TensorLRU()  # text -> (ids (L,), latents (L, d)), bounded by bytes (default 1 GiB)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _texts(self, texts: list[str]) -> list[str]:
        return [t.lower() for t in texts] if self.cfg.lowercase else list(texts)

    @torch.no_grad()
    def _latents(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``(B, L)`` and clean latents ``(B, L, d)`` on the model's device."""
        texts = self._texts(texts)
        if not self.cfg.cache_latents:
            ids = self.text_space.tokenize(texts)
            x = self.text_space.encode(ids)
            return ids.to(self.device), x.to(self.device, torch.float32)
        found = {t: self._cache.get(t) for t in texts}  # views of the cache's rows, valid until the next put
        missing = [t for t, entry in found.items() if entry is None]
        if missing:
            ids_new, x_new = self.text_space.encode_texts(missing)
            x_new = x_new.float().cpu()
            for text, i, x in zip(missing, ids_new, x_new):
                found[text] = (i, x)
        ids = torch.stack([found[t][0] for t in texts])  # copies, made before the puts below reuse rows
        x = torch.stack([found[t][1] for t in texts])
        for text in missing:
            self._cache.put(text, found[text])
        return ids.to(self.device), x.to(self.device)

    def condition(self, source_texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Source texts as clean condition tokens ``(B, C, H)`` and their mask ``(B, C)``."""
        src_ids, x_src = self._latents(source_texts)
        return self.denoiser.embed_condition_latents(x_src), source_mask(src_ids, self.text_space.eos_id)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        texts = batch["text"]
        cond = cond_mask = None
        if self.cfg.conditional:
            if "source_text" not in batch:
                raise KeyError("TextElf(conditional=true) needs batch['source_text'] (a tab-separated corpus)")
            if len(batch["source_text"]) != len(texts):
                raise ValueError(f"batch has {len(texts)} texts but {len(batch['source_text'])} source texts")
            cond, cond_mask = self.condition(batch["source_text"])
        ids, x = self._latents(texts)
        loss_mask = torch.ones_like(ids, dtype=torch.bool)  # the EOS tail is learned too
        loss, stats = flow_matching_loss(self.denoiser, x, ids, loss_mask, self.cfg.flow, cond=cond,
                                         cond_mask=cond_mask, vocab=self.vocab)
        stats["num_samples"] = float(ids.shape[0])
        return loss, stats

    @torch.no_grad()
    def generate(
        self,
        n_or_sources: int | list[str],
        sampler: SamplerConfig,
        *,
        batch_size: int = 64,
        generator: Optional[torch.Generator] = None,
    ) -> list[str]:
        """Sample texts: ``n`` unconditional samples, or one per source text (conditional model).

        Runs in batches of ``batch_size``; with no generator, one seeded with ``sampler.seed`` is used
        for the whole call, so the same call gives the same texts.
        """
        if isinstance(n_or_sources, int):
            if self.cfg.conditional:
                raise ValueError("a conditional TextElf generates from source texts, not from a count")
            total, sources = n_or_sources, None
        else:
            if not self.cfg.conditional:
                raise ValueError("an unconditional TextElf generates from a count, not from source texts")
            total, sources = len(n_or_sources), list(n_or_sources)
        gen = generator if generator is not None else torch.Generator().manual_seed(sampler.seed)
        was_training = self.training
        self.eval()
        out: list[str] = []
        try:
            for start in range(0, total, batch_size):
                b = min(batch_size, total - start)
                cond = cond_mask = None
                if sources is not None:
                    cond, cond_mask = self.condition(sources[start:start + b])
                ids = generate_ids(self.denoiser, sampler, self.cfg.flow, batch_size=b, length=self.text_space.max_len,
                                   latent_dim=self.text_space.dim, cond=cond, cond_mask=cond_mask, generator=gen,
                                   vocab=self.vocab)
                out.extend(self.text_space.decode(ids.cpu()))
        finally:
            self.train(was_training)
        return out


# ---------------------------------------------------------------------------------------------
# Stage 3: pre-training on a text corpus
# ---------------------------------------------------------------------------------------------
