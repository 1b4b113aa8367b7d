"""ELF-S2T: Whisper frames -> linear projector -> clean audio prefix of the ELF denoiser (docs/design.md §2.5).

The condition of the denoiser is ``[task token | projected audio]`` (task token only when the config
lists tasks); the text that follows is a sequence of noisy text-encoder latents. Training is the ELF
flow-matching objective with audio forcing (a much noisier decoding branch, ``flow.mu_dec``) and
condition dropout for audio classifier-free guidance; decoding samples latents with CFG and turns
them into tokens with one decoding-mode forward.

Only the projector, the task embeddings and the denoiser are trained; the Whisper features are
cached (stage 2) and the text encoder is frozen inside :class:`TextLatentSpace`. The configuration is
:class:`~elfs2t.s2t.elf_s2t_config.ElfS2TConfig` (re-exported here).
"""
from __future__ import annotations

import logging
from typing import NamedTuple, Optional

import torch
from torch import nn

from elfs2t.flow.objective import draw_flow_noise, flow_loss_from_draws
from elfs2t.flow.sampler import decoding_forward
from elfs2t.s2t.augment import mask_features
from elfs2t.s2t.ctc_align import ctc_align, ctc_align_confident, slot_positions
from elfs2t.s2t.ctc_aux import CtcReadout, ctc_greedy, ctc_loss, ctc_readout, ctc_targets, ctc_vocab
from elfs2t.s2t.ctc_beam import PRUNE, LmFusion, ctc_prefix_beam
from elfs2t.models.denoiser import ElfDenoiser
from elfs2t.s2t.elf_s2t_config import ElfS2TConfig
from elfs2t.models.layout import ConditionCache, TextSlots
from elfs2t.s2t.projector import AudioProjector
from elfs2t.models.shortlist import TokenShortlist
from elfs2t.text.latent import LatentCache, TextLatentSpace
from elfs2t.text.ngram import NgramLM

__all__ = ["ElfS2T", "ElfS2TConfig", "CtcDraft", "AudioReadout"]  # the config lives in elfs2t.s2t.elf_s2t_config

log = logging.getLogger(__name__)


class CtcDraft(NamedTuple):
    """The greedy CTC readout of a batch's audio slots, laid out as the text space lays out ids."""

    ids: torch.Tensor
    """(B, L) token ids (BOS, tokens, EOS tail)."""
    conf: torch.Tensor
    """(B, L) each token's confidence: its highest posterior over its frames; 1 at BOS / EOS / padding."""
    text_pos: torch.Tensor
    """(B, L) the text slots' positions: the tokens' first frames, the tail continuing at the prior spacing."""
    lengths: list[int]
    """Content tokens per row (as many as fit in the text slots)."""
    cond_hidden: torch.Tensor
    """(B, C, H) the condition's outputs (what the CTC read; :meth:`ElfS2T.text_slots` reads them too)."""
    cond_cache: Optional[ConditionCache]
    """The condition's keys / values (``prefix_attention: self``; else None), for the text slots' forwards that
    follow the draft (the flow, the readout): the condition's blocks then run once per batch."""


class AudioReadout(NamedTuple):
    """What one pass of the denoiser over a batch's condition gives (:meth:`ElfS2T.draft_readout`)."""

    ctc: CtcReadout
    """The audio slots read by the token head over the CTC vocabulary."""
    cond_hidden: torch.Tensor
    """(B, C, H) the condition's outputs."""
    cond_cache: Optional[ConditionCache]
    """Their keys / values at every layer (``prefix_attention: self``; None with ``full``, where the condition sees
    the text slots and there is nothing to reuse)."""


class ElfS2T(TokenShortlist, nn.Module):
    """``forward(batch) -> (loss, stats)`` for training; :meth:`generate` for decoding."""

    def __init__(self, cfg: ElfS2TConfig, text_space: Optional[TextLatentSpace] = None) -> None:
        super().__init__()
        self.cfg = cfg
        # The frozen text space is not a submodule: its weights are not ours to train or save.
        if text_space is None:
            text_space = TextLatentSpace(cfg.text)
            if cfg.cache_latents:
                text_space = LatentCache(text_space)
        self.text_space = text_space
        cfg.denoiser.latent_dim = self.text_space.dim
        cfg.denoiser.vocab_size = self.text_space.vocab_size
        self.denoiser = ElfDenoiser(cfg.denoiser)
        hidden = cfg.denoiser.hidden
        self.projector = AudioProjector(cfg.feat_dim, hidden, stack=cfg.stack)
        self.task_index = {name: i for i, name in enumerate(cfg.tasks)}
        self.task_embed = nn.Embedding(len(cfg.tasks), hidden) if cfg.tasks else None
        if self.task_embed is not None:
            nn.init.normal_(self.task_embed.weight, std=0.02)
        self.slot_proj = None  # elf.slot_audio: the aligned audio slot's output added to each content slot's input
        if cfg.slot_audio:
            self.slot_proj = nn.Linear(hidden, hidden)
            nn.init.eye_(self.slot_proj.weight)
            nn.init.zeros_(self.slot_proj.bias)
        self._init_shortlist()  # token_shortlist: set_token_shortlist(training texts) before training
        self.ngram: Optional[NgramLM] = None
        """The experiment's token n-gram model of its training texts (``ngram.json``, attached by the loaders),
        which ``decode.draft.lm_weight`` fuses into the draft's prefix beam search; not a weight."""
        self.ctc_only = False  # set per step by begin_step (ctc_warmup)

    # ------------------------------------------------------------------------------------------
    @property
    def max_text_tokens(self) -> int:
        """Content tokens that fit in the L text slots (the rest of L is EOS, and CLS for BERT-like)."""
        return self.text_space.max_len - 1 - self._content_start

    def count_tokens(self, text: str) -> int:
        """Content tokens of a target text (to filter texts that would be cut)."""
        return self.text_space.num_tokens(self._text([text]))[0]

    def _device(self) -> torch.device:
        device = next(self.parameters()).device
        if self.text_space.device != device:  # the frozen encoder follows the model (not a submodule)
            self.text_space.encoder.to(device)
        return device

    def _text(self, texts: list[str]) -> list[str]:
        return [t.lower() for t in texts] if self.cfg.lowercase else list(texts)

    def condition(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``[task | audio]`` condition tokens ``(B, C, H)`` and their mask ``(B, C)``."""
        device = next(self.parameters()).device
        feats = batch["feats"].to(device)
        lens = batch["feat_lens"].to(device)
        if self.training:
            feats = mask_features(feats, lens, self.cfg.augment)
        prefix, mask = self.projector(feats, lens)  # (B, T', H), (B, T')
        if self.task_embed is None:
            return prefix, mask
        try:
            idx = torch.tensor([self.task_index[t] for t in batch["task"]], device=device)
        except KeyError as exc:
            raise KeyError(f"task {exc} is not among the model's tasks {self.cfg.tasks}") from exc
        task = self.task_embed(idx)[:, None, :]  # (B, 1, H)
        ones = torch.ones(mask.shape[0], 1, dtype=torch.bool, device=device)
        return torch.cat([task, prefix], dim=1), torch.cat([ones, mask], dim=1)

    def begin_step(self, step: int, progress: float) -> None:
        """Called by the trainer before each optimiser step: the CTC warm-up runs while ``progress <
        ctc_warmup``."""
        self.ctc_only = progress < self.cfg.ctc_warmup

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        device = self._device()
        ids = self.text_space.tokenize(self._text(batch["text"])).to(device)  # (B, L)
        if self.training and self.ctc_only:
            return self._ctc_warmup_loss(batch, ids)
        # the CTC targets, once per step: the CTC loss and the alignment of the text slots both read them
        targets = self._ctc_targets(ids, batch["text"]) if self.cfg.ctc_weight > 0 else None
        with torch.no_grad():
            x = self.text_space.encode(ids).to(device)  # (B, L, d)
        cond, cond_mask = self.condition(batch)
        loss_mask = torch.ones_like(ids, dtype=torch.bool)  # the EOS tail is learned too
        outputs: dict = {}
        draws = draw_flow_noise(x, self.cfg.flow)
        if self.cfg.text_positions == "ctc":
            # the condition first (with gradients; exact with prefix_attention: self), its CTC alignment of the
            # true text places the text slots, then the text positions against the condition's keys / values
            keep = (~draws.drop).to(cond.dtype)[:, None, None]
            cond_out, cache = self.denoiser.encode_condition(cond * keep, cond_mask)
            readout = self._ctc_readout(cond_out, cond_mask, targets)  # with gradients: the CTC loss reads it too
            text_pos, lengths = self._aligned_positions(readout, targets, ids.shape[1], ~draws.drop)
            slots = self.text_slots(cond_out, text_pos, lengths)
            loss, stats = flow_loss_from_draws(self.denoiser, x, ids, loss_mask, self.cfg.flow, draws, cond_cache=cache,
                                               slots=slots, outputs=outputs, vocab=self.vocab)
        else:
            loss, stats = flow_loss_from_draws(self.denoiser, x, ids, loss_mask, self.cfg.flow, draws, cond=cond,
                                               cond_mask=cond_mask, outputs=outputs, vocab=self.vocab)
            readout = self._ctc_readout(outputs["out"].cond_hidden, cond_mask, targets) if targets else None
        if self.cfg.ctc_weight > 0:
            ctc = self._ctc(readout, targets, ~draws.drop)
            loss = loss + self.cfg.ctc_weight * ctc
            stats["ctc"] = float(ctc.detach())
            stats["loss"] = float(loss.detach())
        stats["num_samples"] = float(ids.shape[0])
        return loss, stats

    @property
    def _n_task(self) -> int:
        """Condition slots before the audio (the task token)."""
        return 0 if self.task_embed is None else 1

    @property
    def _content_start(self) -> int:
        """Index of the first content token in ids laid out by the text space (after a BOS / CLS)."""
        return 0 if self.text_space.bos_id is None else 1

    def _ctc_targets(self, ids: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows' content token ids, concatenated, and their lengths (:func:`ctc_targets`)."""
        return ctc_targets(ids.cpu(), self.text_space.num_tokens(self._text(texts)), self._content_start)

    def _ctc_readout(self, cond_hidden: torch.Tensor, cond_mask: torch.Tensor,
                     targets: tuple[torch.Tensor, torch.Tensor]) -> CtcReadout:
        """The audio slots of the condition's outputs read by the token head over the CTC vocabulary (the
        shortlist, or the targets' ids and the blank: :func:`~elfs2t.s2t.ctc_aux.ctc_vocab`)."""
        audio_hidden, audio_mask = self._audio_slots(cond_hidden, cond_mask)
        vocab = ctc_vocab(self.vocab, targets[0], self.text_space.pad_id)
        return ctc_readout(self.denoiser.token_logits, audio_hidden, audio_mask, vocab)

    @torch.no_grad()
    def _aligned_positions(self, readout: CtcReadout, targets: tuple[torch.Tensor, torch.Tensor], length: int,
                           rows: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """Text-slot positions ``(B, length)`` at the CTC forced alignment of the true tokens (``readout`` from
        :meth:`_ctc_readout`, ``targets`` from :meth:`_ctc_targets`; ``rows``: the rows whose audio is kept; the
        others, and rows whose text does not fit their frames or holds an id outside the CTC's vocabulary, keep
        ``text_pos_scale``'s), and the number of aligned content slots per row (0 for those)."""
        flat, lens = targets
        local, found = readout.vocab.index(flat)  # the ids' indices in the vocabulary
        rows = rows.cpu()
        per_row = [(row.tolist() if bool(rows[b]) and bool(ok.all()) else [])
                   for b, (row, ok) in enumerate(zip(local.split(lens.tolist()), found.split(lens.tolist())))]
        frames = ctc_align(readout.log_probs.detach(), readout.in_lens, per_row, readout.vocab.blank)
        room = length - self._content_start - 1
        return (slot_positions(frames, length, self.cfg.denoiser.text_pos_scale, self._content_start,
                               self._n_task).to(readout.log_probs.device), [min(len(f), room) for f in frames])

    def text_slots(self, cond_hidden: torch.Tensor, text_pos: torch.Tensor, lengths: list[int]) -> TextSlots:
        """The text slots of aligned rows: at ``text_pos (B, L)`` (content slots at their tokens' audio slots), and
        with ``elf.slot_audio`` each of the first ``lengths[b]`` content slots given the condition's output at its
        audio slot (``cond_hidden (B, C, H)``, the states the CTC reads) through ``slot_proj``."""
        if not self.cfg.slot_audio:
            return TextSlots(pos=text_pos)
        B, L = text_pos.shape
        start = self._content_start
        aligned = torch.zeros(B, L, dtype=torch.bool)
        for b, n in enumerate(lengths):
            aligned[b, start:start + n] = True
        aligned = aligned.to(cond_hidden.device)
        idx = torch.where(aligned, text_pos, torch.zeros_like(text_pos)).clamp(0, cond_hidden.shape[1] - 1)
        picked = cond_hidden.gather(1, idx[..., None].expand(-1, -1, cond_hidden.shape[-1]))  # (B, L, H)
        return TextSlots(pos=text_pos, extra=self.slot_proj(picked) * aligned[..., None].to(picked.dtype))

    def content_mask(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` bool: the content positions of ids laid out by the text space (not BOS, EOS or padding)."""
        content = torch.ones_like(ids, dtype=torch.bool)
        for tok in self.text_space.special_ids:
            content &= ids != tok
        return content

    def encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Latents ``(N, L, d)`` of ids laid out by the text space (e.g. drafts), past the latent cache: drafts differ
        for every utterance, so caching them would only fill memory."""
        space = self.text_space.space if isinstance(self.text_space, LatentCache) else self.text_space
        return space.encode(ids)

    def _audio_slots(self, cond_hidden: torch.Tensor, cond_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The audio part ``(B, C', H)``, ``(B, C')`` of the condition's outputs and mask (the task token dropped)."""
        return cond_hidden[:, self._n_task:], cond_mask[:, self._n_task:]

    @staticmethod
    def _ctc(readout: CtcReadout, targets: tuple[torch.Tensor, torch.Tensor],
             rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Auxiliary CTC per target token of a :meth:`_ctc_readout` (``targets`` from :meth:`_ctc_targets`;
        ``rows``: those with the audio kept)."""
        nll, n_tok = ctc_loss(readout, *targets, rows=rows)
        return nll / max(n_tok, 1)

    def _ctc_warmup_loss(self, batch: dict, ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """CTC warm-up step: the audio slots alone through the denoiser, the CTC loss on every row."""
        cond, cond_mask = self.condition(batch)
        targets = self._ctc_targets(ids, batch["text"])
        ctc = self._ctc(self._ctc_readout(self.denoiser.condition_hidden(cond, cond_mask), cond_mask, targets), targets)
        return ctc, {"ctc": float(ctc.detach()), "ctc_warmup": 1.0, "num_samples": float(ids.shape[0])}

    @torch.no_grad()
    def generate(self, batch: dict, decoding, generator: Optional[torch.Generator] = None) -> list[str]:
        """Decode a batch with a decoding strategy (:mod:`elfs2t.s2t.decoding`; ``build_decoding(cfg.decode, cfg.elf)``);
        ``generator``: the sampling noise (None: one seeded with 0)."""
        self._device()  # the frozen text encoder (drafts) follows the model
        cond, cond_mask = self.condition(batch)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        return self.text_space.decode(decoding(self, cond, cond_mask, gen))

    @torch.no_grad()
    def draft(self, cond: torch.Tensor, cond_mask: torch.Tensor, generator: Optional[torch.Generator] = None,
              beam: int = 0, prune: float = PRUNE, lm: Optional[LmFusion] = None) -> CtcDraft:
        """The CTC readout of the audio slots (:meth:`draft_readout`) as a :class:`CtcDraft`: greedy (``beam`` 0:
        argmax per slot, repeats merged, blanks -- the padding id -- dropped), or the best labelling of a prefix
        beam search of ``beam`` prefixes (:func:`~elfs2t.s2t.ctc_beam.ctc_prefix_beam`), each token at its first
        frame on the Viterbi path of that labelling, its confidence its highest posterior over its frames there
        (:func:`~elfs2t.s2t.ctc_align.ctc_align_confident`), as greedy CTC's over its run. ``lm``: a language model
        fused into the search (its ids are the text encoder's: the CTC vocabulary is mapped onto them here)."""
        if lm is not None and beam == 0:
            raise ValueError("ElfS2T.draft: a language model is fused into the prefix beam search (beam >= 1), "
                             "not into greedy CTC")
        audio = self.draft_readout(cond, cond_mask, generator)
        readout = audio.ctc
        if beam == 0:
            logp, best = readout.log_probs.max(dim=-1)
            tokens, confs, frames, _ = ctc_greedy(best, logp.exp(), readout.in_lens, readout.vocab.blank)
        else:
            blank = readout.vocab.blank
            fusion = lm.over(readout.vocab.ids.tolist()) if lm is not None else None
            tokens, _ = ctc_prefix_beam(readout.log_probs, readout.in_lens, blank, beam, prune, lm=fusion)
            spans = ctc_align_confident(readout.log_probs, readout.in_lens, tokens, blank)  # as training aligns
            frames = [[f for f, _, _ in row] for row in spans]
            confs = [[c for _, _, c in row] for row in spans]
        ids, text_pos = self.lay_out(readout.vocab.ids, tokens, frames)
        conf = torch.ones(ids.shape, dtype=torch.float32)
        start, room = self._content_start, ids.shape[1] - self._content_start - 1
        for b, row in enumerate(confs):
            row = row[:room]  # cut like the ids
            conf[b, start: start + len(row)] = torch.tensor(row, dtype=torch.float32)
        return CtcDraft(ids, conf, text_pos.to(cond.device), [min(len(t), room) for t in tokens], audio.cond_hidden,
                        audio.cond_cache)

    def draft_slots(self, draft: CtcDraft) -> TextSlots:
        """The text slots at a draft's layout (:meth:`text_slots`)."""
        return self.text_slots(draft.cond_hidden, draft.text_pos, draft.lengths)

    def draft_readout(self, cond: torch.Tensor, cond_mask: torch.Tensor,
                      generator: Optional[torch.Generator] = None) -> AudioReadout:
        """One decoding-mode forward (t = 1) with the text slots at the decoding branch's noise (``sigma_d eps``,
        what the trained CTC saw on its decoding rows); the audio slots' outputs read by the token head over the
        shortlist (or the whole vocabulary), the blank being the padding id. With ``prefix_attention: self`` the
        audio slots never see the text slots, so the forward runs over the condition alone
        (:meth:`ElfDenoiser.encode_condition`: the same outputs, without the text slots' cost, and the condition's
        keys / values for the forwards that follow); the noise is drawn all the same, so that ``generator`` moves
        on as with the full forward."""
        if self.cfg.ctc_weight <= 0:
            raise ValueError("ElfS2T: a CTC draft needs a model trained with the auxiliary CTC (elf.ctc_weight > 0)")
        B, L, d = cond.shape[0], self.text_space.max_len, self.text_space.dim
        noise = torch.randn((B, L, d), generator=generator)
        cache = None
        if self.denoiser.cfg.prefix_attention == "self":
            cond_hidden, cache = self.denoiser.encode_condition(cond, cond_mask)
        else:
            noise = noise.to(cond.device, cond.dtype)
            cond_hidden = decoding_forward(self.denoiser, self.cfg.flow.sigma_d * noise, cond=cond,
                                           cond_mask=cond_mask).cond_hidden
        audio_hidden, audio_mask = self._audio_slots(cond_hidden, cond_mask)
        ids = self.vocab if self.vocab is not None else torch.arange(self.text_space.vocab_size)
        readout = ctc_readout(self.denoiser.token_logits, audio_hidden, audio_mask,
                              ctc_vocab(ids, ids[:0], self.text_space.pad_id))  # the vocabulary is given: no targets
        return AudioReadout(readout, cond_hidden, cache)

    def lay_out(self, vocab_ids: torch.Tensor, tokens: list[list[int]],
                frames: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of CTC-vocabulary indices as text ids ``(N, L)`` and the text slots' positions ``(N, L)`` at the
        tokens' frames (:func:`~elfs2t.s2t.ctc_align.slot_positions`)."""
        vocab_ids = vocab_ids.cpu()
        ids = self.text_space.ids_from_tokens([vocab_ids[row].tolist() if row else [] for row in tokens])
        text_pos = slot_positions(frames, ids.shape[1], self.cfg.denoiser.text_pos_scale, self._content_start,
                                  self._n_task)
        return ids, text_pos

    def prior_positions(self, batch_size: int) -> torch.Tensor:
        """The text slots' positions ``(B, L)`` without an alignment: those of the training rows whose audio was
        dropped (:meth:`_aligned_positions`), so the unconditional branch of CFG sees what it was trained with."""
        return slot_positions([[] for _ in range(batch_size)], self.text_space.max_len,
                              self.cfg.denoiser.text_pos_scale, self._content_start, self._n_task)

    def keep_content(self, ids: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """Ids ``(B, L)`` re-laid out with only the first ``lengths[b]`` content slots of each row, the special ids
        among them (EOS, padding, BOS) dropped: the text's length is given, a slot read as EOS is one token less,
        not the end of the text."""
        space, start = self.text_space, self._content_start
        special = space.special_ids
        rows = ids.cpu().tolist()
        return space.ids_from_tokens([[i for i in row[start:start + n] if i not in special]
                                      for row, n in zip(rows, lengths)]).to(ids.device)
