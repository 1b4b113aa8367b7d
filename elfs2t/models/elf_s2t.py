"""ELF-S2T: Whisper frames -> linear projector -> clean audio prefix of the ELF denoiser (DESIGN §2.5).

The condition of the denoiser is ``[task token | projected audio]`` (task token only when the config
lists tasks); the text that follows is a sequence of noisy text-encoder latents. Training is the ELF
flow-matching objective with audio forcing (a much noisier decoding branch, ``flow.mu_dec``) and
condition dropout for audio classifier-free guidance; decoding samples latents with CFG and turns
them into tokens with one decoding-mode forward.

Only the projector, the task embeddings and the denoiser are trained; the Whisper features are
cached (stage 2) and the text encoder is frozen inside :class:`TextLatentSpace`. The configuration is
:class:`~elfs2t.models.elf_s2t_config.ElfS2TConfig` (re-exported here).
"""
from __future__ import annotations

import logging
from typing import Optional

import torch
from torch import nn

from elfs2t.flow.objective import FlowDraws, draw_flow_noise, flow_loss_from_draws
from elfs2t.flow.sampler import SamplerConfig, build_condition_cache, decoding_forward, generate_ids
from elfs2t.flow.time import sample_logit_normal
from elfs2t.models.augment import mask_features
from elfs2t.models.ctc_align import ctc_align, ctc_align_spans, slot_positions
from elfs2t.models.ctc_aux import CtcReadout, ctc_loss, ctc_readout, ctc_targets, ctc_vocab
from elfs2t.models.denoiser import ElfDenoiser
from elfs2t.models.draft_rescore import best_per_row, ctc_nll, draft_candidates, runner_up, text_nll
from elfs2t.models.elf_s2t_config import ElfS2TConfig
from elfs2t.models.mask_ctc import ctc_greedy, mask_predict, mask_tokens
from elfs2t.models.projector import AudioProjector
from elfs2t.models.shortlist import TokenShortlist
from elfs2t.text.latent import LatentCache, TextLatentSpace

__all__ = ["ElfS2T", "ElfS2TConfig"]  # the config lives in elfs2t.models.elf_s2t_config

log = logging.getLogger(__name__)


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
        self._init_shortlist()  # token_shortlist: set_token_shortlist(training texts) before training
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
        x_in, n_draft = self._draft_inputs(x, ids, cond, cond_mask, draws) if self.cfg.draft_frac > 0 else (None, 0)
        if self.cfg.text_positions == "ctc":
            # the condition first (with gradients; exact with prefix_attention: self), its CTC alignment of the
            # true text places the text slots, then the text positions against the condition's keys / values
            keep = (~draws.drop).to(cond.dtype)[:, None, None]
            cond_out, cache = self.denoiser.encode_condition(cond * keep, cond_mask)
            readout = self._ctc_readout(cond_out, cond_mask, targets)  # with gradients: the CTC loss reads it too
            text_pos = self._aligned_positions(readout, targets, ids.shape[1], ~draws.drop)
            loss, stats = flow_loss_from_draws(self.denoiser, x, ids, loss_mask, self.cfg.flow, draws, cond_cache=cache,
                                               text_pos=text_pos, outputs=outputs, vocab=self.vocab, x_in=x_in)
        else:
            loss, stats = flow_loss_from_draws(self.denoiser, x, ids, loss_mask, self.cfg.flow, draws, cond=cond,
                                               cond_mask=cond_mask, outputs=outputs, vocab=self.vocab, x_in=x_in)
            readout = self._ctc_readout(outputs["out"].cond_hidden, cond_mask, targets) if targets else None
        if self.cfg.draft_frac > 0:
            stats["frac_draft"] = n_draft / max(ids.shape[0], 1)
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
        shortlist, or the targets' ids and the blank: :func:`~elfs2t.models.ctc_aux.ctc_vocab`)."""
        audio_hidden, audio_mask = self._audio_slots(cond_hidden, cond_mask)
        vocab = ctc_vocab(self.vocab, targets[0], self.text_space.pad_id)
        return ctc_readout(self.denoiser.token_logits, audio_hidden, audio_mask, vocab)

    @torch.no_grad()
    def _aligned_positions(self, readout: CtcReadout, targets: tuple[torch.Tensor, torch.Tensor], length: int,
                           rows: torch.Tensor) -> torch.Tensor:
        """Text-slot positions ``(B, length)`` at the CTC forced alignment of the true tokens (``readout`` from
        :meth:`_ctc_readout`, ``targets`` from :meth:`_ctc_targets`; ``rows``: the rows whose audio is kept; the
        others, and rows whose text does not fit their frames or holds an id outside the CTC's vocabulary, keep
        ``text_pos_scale``'s)."""
        flat, lens = targets
        local, found = readout.vocab.index(flat)  # the ids' indices in the vocabulary
        rows = rows.cpu()
        per_row = [(row.tolist() if bool(rows[b]) and bool(ok.all()) else [])
                   for b, (row, ok) in enumerate(zip(local.split(lens.tolist()), found.split(lens.tolist())))]
        frames = ctc_align(readout.log_probs.detach(), readout.in_lens, per_row, readout.vocab.blank)
        return slot_positions(frames, length, self.cfg.denoiser.text_pos_scale, self._content_start,
                              self._n_task).to(readout.log_probs.device)

    def _draft_inputs(self, x: torch.Tensor, ids: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor,
                      draws: FlowDraws) -> tuple[Optional[torch.Tensor], int]:
        """Input latents with draft rows: a ``draft_frac`` share of the denoising (or decoding, ``draft_rows``) rows
        whose condition is kept get their own CTC draft's latents, at time ``draft_t`` (denoising) or a signal
        level around ``flow.mu_read`` (decoding) -- or, for ``mask``, the clean latents of their true ids with a
        random share masked; ``draws`` is updated. Returns them (None when no row is picked) and the number of
        draft rows."""
        mode = self.cfg.draft_rows
        cand = ((draws.decode if mode != "denoise" else ~draws.decode) & ~draws.drop).cpu()
        pick = cand & (torch.rand(cand.shape[0]) < self.cfg.draft_frac)
        if not bool(pick.any()):
            return None, 0
        idx = pick.nonzero(as_tuple=True)[0].to(x.device)
        with torch.no_grad():
            if mode == "mask":
                rows = ids[idx]
                masked, _ = mask_tokens(rows, self._content(rows), self.text_space.mask_id)
                x_draft = self._encode_drafts(masked).to(x.device, x.dtype)
            else:
                draft = self.ctc_draft_ids(cond[idx].detach(), cond_mask[idx])
                x_draft = self._encode_drafts(draft).to(x.device, x.dtype)
        if mode == "mask":  # clean: the inference input is the encoder's latents of the masked draft as they are
            draws.lam[idx] = 1.0
        elif mode == "decode":
            f = self.cfg.flow
            lam = sample_logit_normal((len(idx), draws.lam.shape[1]), f.mu_read, f.std_dec)
            draws.lam[idx] = lam.to(draws.lam.device, draws.lam.dtype)
        else:
            draws.t[idx] = self.cfg.draft_t
            draws.self_cond[idx] = False
            draws.w[idx] = 1.0
        x_in = x.clone()
        x_in[idx] = x_draft
        return x_in, len(idx)

    def _content(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` bool: the content positions of ids laid out by the text space (not BOS, EOS or padding)."""
        special = {self.text_space.eos_id, self.text_space.pad_id}
        if self.text_space.bos_id is not None:
            special.add(self.text_space.bos_id)
        content = torch.ones_like(ids, dtype=torch.bool)
        for tok in special:
            content &= ids != tok
        return content

    def _encode_drafts(self, ids: torch.Tensor) -> torch.Tensor:
        """Latents of draft ids, past the latent cache: drafts differ at every step and for every utterance, so
        caching them would only fill memory."""
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
    def generate(self, batch: dict, sampler: SamplerConfig, generator: Optional[torch.Generator] = None) -> list[str]:
        """Sample text latents conditioned on the audio (with CFG) and decode them to strings."""
        self._device()  # the frozen text encoder (drafts) follows the model
        cond, cond_mask = self.condition(batch)
        x_init = None
        if sampler.init == "ctc":
            gen = generator if generator is not None else torch.Generator().manual_seed(sampler.seed)
            if sampler.refine == "rescore" and sampler.steps > 0:
                return self.text_space.decode(self.rescore_draft(cond, cond_mask, sampler, gen))
            draft, conf, text_pos = self.ctc_draft(cond, cond_mask, gen)
            if sampler.steps == 0:  # the draft itself: the CTC branch alone
                return self.text_space.decode(draft)
            if self.cfg.text_positions != "ctc":
                text_pos = None
            if sampler.refine == "mask":
                return self.text_space.decode(self.mask_refine(draft, conf, cond, cond_mask, sampler, text_pos))
            x_init = self._encode_drafts(draft).to(cond.device)
        else:
            draft = text_pos = None
        # one condition cache (prefix_attention: self) serves every sampling step and the decoding forward
        ids = generate_ids(
            self.denoiser,
            sampler,
            batch_size=cond.shape[0],
            length=self.text_space.max_len,
            latent_dim=self.text_space.dim,
            cond=cond,
            cond_mask=cond_mask,
            generator=generator,
            vocab=self.vocab,
            x_init=x_init,
            text_pos=text_pos,
        )
        if draft is not None and sampler.flow_threshold < 1:  # only the unsure draft tokens may change
            unsure = (conf < sampler.flow_threshold) & self._content(draft)
            ids = torch.where(unsure.to(ids.device), ids, draft.to(ids.device))
        return self.text_space.decode(ids)

    @torch.no_grad()
    def mask_refine(self, draft: torch.Tensor, conf: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor,
                    sampler: SamplerConfig, text_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mask-CTC: the draft's content tokens with ``conf < sampler.mask_threshold`` re-predicted by
        ``sampler.steps`` decoding forwards on the text encoder's latents of the partly masked draft (t = 1,
        clean, with the audio; the condition's keys/values computed once). Returns ids ``(B, L)``."""
        masked = (conf < sampler.mask_threshold) & self._content(draft)
        cache = build_condition_cache(self.denoiser, cond, cond_mask)
        condition = dict(cond_cache=cache) if cache is not None else dict(cond=cond, cond_mask=cond_mask)

        def predict(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = self._encode_drafts(ids).to(cond.device, cond.dtype)
            best, prob = self._read_tokens(decoding_forward(self.denoiser, z, text_pos=text_pos, **condition).hidden)
            return best.to(ids.device), prob.to(ids.device)

        return mask_predict(predict, draft, masked, self.text_space.mask_id, sampler.steps)

    def _read_tokens(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The token head's best ids ``(B, N)`` (over the shortlist when set) and their probabilities ``(B, N)``."""
        prob, best = self.denoiser.token_logits(hidden, self.vocab).float().softmax(dim=-1).max(dim=-1)
        return (best if self.vocab is None else self.vocab[best]), prob

    @torch.no_grad()
    def ctc_draft_ids(self, cond: torch.Tensor, cond_mask: torch.Tensor,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Greedy CTC readout of the audio slots, laid out as text ids ``(B, L)`` (a draft for ``init: ctc``)."""
        return self.ctc_draft(cond, cond_mask, generator)[0]

    @torch.no_grad()
    def ctc_draft(self, cond: torch.Tensor, cond_mask: torch.Tensor,
                  generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Greedy CTC readout of the audio slots (:meth:`_draft_readout`): ids ``(B, L)`` laid out as text ids,
        each token's confidence ``(B, L)`` (the highest posterior over its frames; 1 at BOS / EOS / padding), and
        the text slots' positions at the tokens' first frames ``(B, L)`` (:meth:`_lay_out`); argmax per slot,
        repeats merged, blanks (the padding id) dropped."""
        readout = self._draft_readout(cond, cond_mask, generator)
        logp, best = readout.log_probs.max(dim=-1)
        tokens, confs, frames, _ = ctc_greedy(best, logp.exp(), readout.in_lens, readout.vocab.blank)
        ids, text_pos = self._lay_out(readout.vocab.ids, tokens, frames)
        conf = torch.ones(ids.shape, dtype=torch.float32)
        start = self._content_start
        for b, row in enumerate(confs):
            row = row[: ids.shape[1] - start - 1]  # cut like the ids
            conf[b, start: start + len(row)] = torch.tensor(row, dtype=torch.float32)
        return ids, conf, text_pos.to(cond.device)

    def _draft_readout(self, cond: torch.Tensor, cond_mask: torch.Tensor,
                       generator: Optional[torch.Generator] = None) -> CtcReadout:
        """One decoding-mode forward (t = 1) with the text slots at the decoding branch's noise (``sigma_d eps``,
        what the trained CTC saw on its decoding rows); the audio slots' outputs read by the token head over the
        shortlist (or the whole vocabulary), the blank being the padding id."""
        if self.cfg.ctc_weight <= 0:
            raise ValueError("ElfS2T: sampler.init=ctc needs a model trained with the auxiliary CTC (elf.ctc_weight > 0)")
        B, L, d = cond.shape[0], self.text_space.max_len, self.text_space.dim
        noise = torch.randn((B, L, d), generator=generator).to(cond.device, cond.dtype)
        out = decoding_forward(self.denoiser, self.cfg.flow.sigma_d * noise, cond=cond, cond_mask=cond_mask)
        audio_hidden, audio_mask = self._audio_slots(out.cond_hidden, cond_mask)
        ids = self.vocab if self.vocab is not None else torch.arange(self.text_space.vocab_size)
        return ctc_readout(self.denoiser.token_logits, audio_hidden, audio_mask,
                           ctc_vocab(ids, ids[:0], self.text_space.pad_id))  # the vocabulary is given: no targets

    def _lay_out(self, vocab_ids: torch.Tensor, tokens: list[list[int]],
                 frames: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of CTC-vocabulary indices as text ids ``(N, L)`` and the text slots' positions ``(N, L)`` at the
        tokens' frames (:func:`~elfs2t.models.ctc_align.slot_positions`)."""
        vocab_ids = vocab_ids.cpu()
        ids = self.text_space.ids_from_tokens([vocab_ids[row].tolist() if row else [] for row in tokens])
        text_pos = slot_positions(frames, ids.shape[1], self.cfg.denoiser.text_pos_scale, self._content_start,
                                  self._n_task)
        return ids, text_pos

    @torch.no_grad()
    def rescore_draft(self, cond: torch.Tensor, cond_mask: torch.Tensor, sampler: SamplerConfig,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``refine: rescore`` (:mod:`elfs2t.models.draft_rescore`): the ids ``(B, L)`` of each row's best
        candidate among its CTC draft and the draft's one-token variants."""
        ids, score, cands = self._rescored_candidates(cond, cond_mask, sampler, generator)
        return ids[best_per_row(score, cands, cond.shape[0])]

    @torch.no_grad()
    def rescore_nbest(self, batch: dict, sampler: SamplerConfig,
                      generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every candidate of ``refine: rescore`` for the rows of ``batch`` (n-best lists): their ids ``(N, L)``,
        scores ``(N,)`` (CTC + text-slot negative log-likelihoods: lower is better) and rows ``(N,)``. Draws the
        same noise from ``generator`` as :meth:`generate`, whose output is each row's best candidate (the first of
        equals)."""
        self._device()
        cond, cond_mask = self.condition(batch)
        ids, score, cands = self._rescored_candidates(cond, cond_mask, sampler, generator)
        return ids, score, torch.tensor([c.row for c in cands], dtype=torch.long)

    @torch.no_grad()
    def ctc_token_spans(self, batch: dict, tokens: list[list[int]],
                        generator: Optional[torch.Generator] = None) -> list[Optional[list[tuple[int, int, float]]]]:
        """Where the token ids ``tokens[b]`` (a row's content tokens) sit in its audio: the forced CTC alignment of
        the audio slots' readout (the draft's, :meth:`_draft_readout`; needs ``ctc_weight > 0``). Per row, per
        token, ``(first audio slot, last audio slot, highest posterior over them)``; an audio slot covers
        ``stack`` encoder frames. None for a row with no tokens, a token outside the CTC vocabulary, or more
        tokens than its slots can hold. ``generator``: the text slots' noise of the readout (with ``prefix_attention:
        self`` the audio slots do not see it)."""
        self._device()
        cond, cond_mask = self.condition(batch)
        readout = self._draft_readout(cond, cond_mask, generator)
        local_rows: list[list[int]] = []
        for row in tokens:
            local, found = readout.vocab.index(torch.tensor(row, dtype=torch.long))
            local_rows.append(local.tolist() if row and bool(found.all()) else [])
        spans = ctc_align_spans(readout.log_probs, readout.in_lens, local_rows, readout.vocab.blank)
        post = readout.log_probs.detach().float().exp().cpu()  # (B, C, K)
        out: list[Optional[list[tuple[int, int, float]]]] = []
        for b, (row, sp) in enumerate(zip(local_rows, spans)):
            if not row or not sp:
                out.append(None)
                continue
            out.append([(f, l, float(post[b, f:l + 1, k].max())) for k, (f, l) in zip(row, sp)])
        return out

    def _rescored_candidates(self, cond: torch.Tensor, cond_mask: torch.Tensor, sampler: SamplerConfig,
                             generator: Optional[torch.Generator] = None):
        """The candidates of ``refine: rescore``: ids ``(N, L)``, scores ``(N,)`` and the candidates."""
        readout = self._draft_readout(cond, cond_mask, generator)
        top, idx = readout.log_probs.topk(2, dim=-1)
        best, prob, blank = idx[..., 0], top[..., 0].exp(), readout.vocab.blank
        tokens, confs, frames, peaks = ctc_greedy(best, prob, readout.in_lens, blank)
        cands = draft_candidates(tokens, frames, confs, runner_up(idx[..., 1], peaks), sampler.rescore_threshold, blank)
        ids, text_pos = self._lay_out(readout.vocab.ids, [c.tokens for c in cands], [c.frames for c in cands])
        local, _ = readout.vocab.index(ids.flatten())
        score = ctc_nll(readout.log_probs, readout.in_lens, cands, blank) + text_nll(
            self.denoiser, self._encode_drafts(ids), local.view(ids.shape),
            torch.tensor([c.row for c in cands]), cond, cond_mask, vocab_ids=readout.vocab.ids,
            levels=sampler.rescore_levels, draws=sampler.steps, sigma_d=self.cfg.flow.sigma_d,
            text_pos=text_pos if self.cfg.text_positions == "ctc" else None, generator=generator)
        return ids, score, cands
