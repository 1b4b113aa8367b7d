"""ELF-S2T: Whisper frames -> linear projector -> clean audio prefix of the ELF denoiser (DESIGN §2.5).

The condition of the denoiser is ``[task token | projected audio]`` (task token only when the config
lists tasks); the text that follows is a sequence of noisy text-encoder latents. Training is the ELF
flow-matching objective with audio forcing (a much noisier decoding branch, ``flow.mu_dec``) and
condition dropout for audio classifier-free guidance; decoding samples latents with CFG and turns
them into tokens with one decoding-mode forward.

Only the projector, the task embeddings and the denoiser are trained; the Whisper features are
cached (stage 2) and the text encoder is frozen inside :class:`TextLatentSpace`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
from torch import nn

from elfs2t.config import config_check
from elfs2t.flow.objective import FlowConfig, FlowDraws, draw_flow_noise, flow_loss_from_draws
from elfs2t.flow.sampler import SamplerConfig, generate_ids
from elfs2t.flow.time import sample_logit_normal
from elfs2t.models.augment import FeatureMaskConfig, mask_features
from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser
from elfs2t.models.projector import AudioProjector
from elfs2t.models.ctc_aux import ctc_targets, restricted_ctc_loss
from elfs2t.models.shortlist import TokenShortlist
from elfs2t.text.latent import LatentCache, TextLatentConfig, TextLatentSpace

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class ElfS2TConfig:
    """ELF-S2T model: text latent space, denoiser, projector, objective."""

    text: TextLatentConfig = field(default_factory=TextLatentConfig)
    """Frozen text encoder that defines the latent space (and the text length L)."""
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    """Denoiser size; latent_dim and vocab_size are overwritten from the text latent space."""
    flow: FlowConfig = field(default_factory=FlowConfig)
    """Flow-matching objective, incl. audio forcing (mu_dec) and condition dropout (p_drop)."""
    augment: FeatureMaskConfig = field(default_factory=FeatureMaskConfig)
    """Time / channel masks on the cached encoder frames of training batches (elfs2t.models.augment; off by
    default)."""
    feat_dim: int = 1280
    """Width of the cached encoder frames (Whisper tiny 384, base 512, large-v3 1280)."""
    stack: int = 1
    """Frames stacked before the projector (k): the audio prefix has ceil(T / k) tokens."""
    tasks: list[str] = field(default_factory=list)
    """Task tokens (e.g. ["asr", "st:en"]); empty: no task token."""
    lowercase: bool = False
    """Lower-case the target text before encoding (LibriSpeech transcripts are upper-case)."""
    ctc_weight: float = 0.0
    """Weight of the auxiliary CTC loss on the audio slots' outputs (elfs2t.models.ctc_aux; 0: off, the paper)."""
    ctc_warmup: float = 0.0
    """Share of the run (the trainer's progress: steps or wall time against the budget) trained on the CTC
    alone (beyond the paper; needs ctc_weight > 0 and ``denoiser.prefix_attention: self``): the audio slots
    run through the denoiser without the text slots, so a step costs the condition's positions only and
    all of it goes to the audio-to-token alignment, the part that decides the CTC draft. The flow and the
    decoding branch train in the rest of the run (a resumed time-budgeted run measures its progress against its
    own budget, so its warm-up runs again). 0: off."""
    cache_latents: bool = True
    """Keep the frozen text encoder's latents of seen targets in memory (LatentCache) instead of re-encoding."""
    draft_frac: float = 0.0
    """Share of the denoising rows trained as *draft rows* (needs ctc_weight > 0; beyond the paper): their noisy
    input is built from the row's own CTC draft (greedy readout of the audio slots, no gradient, encoded by the
    frozen text encoder) at time ``draft_t``, their targets stay the true text -- the flow learns to refine what
    ``sampler.init: ctc`` hands it, errors included. 0: off (on mini_synth it made the refined output worse at
    an 8-minute budget: docs/elf_s2t_learning.md)."""
    draft_t: float = 0.8
    """Time of the draft rows (use the same ``sampler.t_start`` when decoding)."""
    draft_rows: Literal["denoise", "decode"] = "denoise"
    """Which rows take drafts: ``denoise`` (the flow regresses the true latents from a noised draft at
    ``draft_t``) or ``decode`` (decoding rows read a near-clean draft -- signal level around ``flow.mu_read`` --
    and the token head is trained with cross-entropy to correct it, Mask-CTC-like; also worse at 8 minutes on
    mini_synth)."""
    token_shortlist: bool = False
    """Token head over a shortlist: the token ids of the training targets (plus the specials), fixed before
    training (:meth:`ElfS2T.set_token_shortlist`, saved with the weights; :mod:`elfs2t.models.shortlist`). The
    decoding cross-entropy, the CTC and the decoding argmax then run over those ids only, and the head keeps
    only their columns: on a small domain (mini_synth: 452 of MiniLM's 30522) the head's cost all but
    vanishes. False: the full vocabulary (the paper)."""

    def validate(self) -> None:
        config_check(self.feat_dim > 0, "feat_dim", self.feat_dim, "must be positive")
        config_check(self.stack >= 1, "stack", self.stack, "must be >= 1")
        config_check(len(set(self.tasks)) == len(self.tasks), "tasks", self.tasks, "must be unique")
        config_check(self.ctc_weight >= 0, "ctc_weight", self.ctc_weight, "must be >= 0")
        config_check(0 <= self.ctc_warmup <= 1, "ctc_warmup", self.ctc_warmup, "must be in [0, 1]")
        config_check(self.ctc_warmup == 0 or self.ctc_weight > 0, "ctc_warmup", self.ctc_warmup,
                     "a CTC warm-up needs the CTC loss: set ctc_weight > 0")
        config_check(self.ctc_warmup == 0 or self.denoiser.prefix_attention == "self", "ctc_warmup",
                     self.ctc_warmup, "runs the audio slots alone: set denoiser.prefix_attention: self")
        config_check(0 <= self.draft_frac <= 1, "draft_frac", self.draft_frac, "must be in [0, 1]")
        config_check(self.draft_frac == 0 or self.ctc_weight > 0, "draft_frac", self.draft_frac,
                     "draft rows read the CTC draft: set ctc_weight > 0")
        config_check(0 <= self.draft_t < 1, "draft_t", self.draft_t, "must be in [0, 1)")
        config_check(self.draft_rows in ("denoise", "decode"), "draft_rows", self.draft_rows, "must be denoise or decode")


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
        return self.text_space.max_len - 1 - (0 if self.text_space.bos_id is None else 1)

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
        with torch.no_grad():
            x = self.text_space.encode(ids).to(device)  # (B, L, d)
        cond, cond_mask = self.condition(batch)
        loss_mask = torch.ones_like(ids, dtype=torch.bool)  # the EOS tail is learned too
        outputs: dict = {}
        draws = draw_flow_noise(x, self.cfg.flow)
        x_in, n_draft = self._draft_inputs(x, cond, cond_mask, draws) if self.cfg.draft_frac > 0 else (None, 0)
        loss, stats = flow_loss_from_draws(self.denoiser, x, ids, loss_mask, self.cfg.flow, draws, cond=cond,
                                           cond_mask=cond_mask, outputs=outputs, vocab=self.vocab, x_in=x_in)
        if self.cfg.draft_frac > 0:
            stats["frac_draft"] = n_draft / max(ids.shape[0], 1)
        if self.cfg.ctc_weight > 0:
            ctc = self._ctc(outputs["out"].cond_hidden, cond_mask, ids, batch["text"], ~outputs["draws"].drop)
            loss = loss + self.cfg.ctc_weight * ctc
            stats["ctc"] = float(ctc.detach())
            stats["loss"] = float(loss.detach())
        stats["num_samples"] = float(ids.shape[0])
        return loss, stats

    def _draft_inputs(self, x: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor,
                      draws: FlowDraws) -> tuple[Optional[torch.Tensor], int]:
        """Input latents with draft rows: a ``draft_frac`` share of the denoising (or decoding, ``draft_rows``) rows
        whose condition is kept get their own CTC draft's latents, at time ``draft_t`` (denoising) or a signal
        level around ``flow.mu_read`` (decoding); ``draws`` is updated. Returns them (None when no row is picked) and
        the number of draft rows."""
        on_decode = self.cfg.draft_rows == "decode"
        cand = ((draws.decode if on_decode else ~draws.decode) & ~draws.drop).cpu()
        pick = cand & (torch.rand(cand.shape[0]) < self.cfg.draft_frac)
        if not bool(pick.any()):
            return None, 0
        idx = pick.nonzero(as_tuple=True)[0].to(x.device)
        with torch.no_grad():
            draft = self.ctc_draft_ids(cond[idx].detach(), cond_mask[idx])
            x_draft = self._encode_drafts(draft).to(x.device, x.dtype)
        if on_decode:
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

    def _encode_drafts(self, ids: torch.Tensor) -> torch.Tensor:
        """Latents of draft ids, past the latent cache: drafts differ at every step and for every utterance, so
        caching them would only fill memory."""
        space = self.text_space.space if isinstance(self.text_space, LatentCache) else self.text_space
        return space.encode(ids)

    def _audio_slots(self, cond_hidden: torch.Tensor, cond_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The audio part ``(B, C', H)``, ``(B, C')`` of the condition's outputs and mask (the task token dropped)."""
        n_task = 0 if self.task_embed is None else 1
        return cond_hidden[:, n_task:], cond_mask[:, n_task:]

    def _ctc(self, cond_hidden: torch.Tensor, cond_mask: torch.Tensor, ids: torch.Tensor, texts: list[str],
             rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Auxiliary CTC per target token on the condition's outputs (``rows``: those with the audio kept)."""
        audio_hidden, audio_mask = self._audio_slots(cond_hidden, cond_mask)
        offset = 0 if self.text_space.bos_id is None else 1
        targets, lens = ctc_targets(ids.cpu(), self.text_space.num_tokens(self._text(texts)), offset)
        nll, n_tok = restricted_ctc_loss(self.denoiser.token_logits, audio_hidden, audio_mask, targets, lens,
                                         self.text_space.pad_id, rows=rows, vocab=self.vocab)
        return nll / max(n_tok, 1)

    def _ctc_warmup_loss(self, batch: dict, ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """CTC warm-up step: the audio slots alone through the denoiser, the CTC loss on every row."""
        cond, cond_mask = self.condition(batch)
        ctc = self._ctc(self.denoiser.condition_hidden(cond, cond_mask), cond_mask, ids, batch["text"])
        return ctc, {"ctc": float(ctc.detach()), "ctc_warmup": 1.0, "num_samples": float(ids.shape[0])}

    @torch.no_grad()
    def generate(self, batch: dict, sampler: SamplerConfig, generator: Optional[torch.Generator] = None) -> list[str]:
        """Sample text latents conditioned on the audio (with CFG) and decode them to strings."""
        self._device()  # the frozen text encoder (drafts) follows the model
        cond, cond_mask = self.condition(batch)
        x_init = None
        if sampler.init == "ctc":
            gen = generator if generator is not None else torch.Generator().manual_seed(sampler.seed)
            draft = self.ctc_draft_ids(cond, cond_mask, gen)
            if sampler.steps == 0:  # the draft itself: the CTC branch alone
                return self.text_space.decode(draft)
            x_init = self._encode_drafts(draft).to(cond.device)
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
        )
        return self.text_space.decode(ids)

    @torch.no_grad()
    def ctc_draft_ids(self, cond: torch.Tensor, cond_mask: torch.Tensor,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Greedy CTC readout of the audio slots, laid out as text ids ``(B, L)`` (a draft for ``init: ctc``).

        One decoding-mode forward (t = 1) with the text slots at the decoding branch's noise (``sigma_d eps``,
        what the trained CTC saw on its decoding rows); the audio slots' outputs go through the token head
        (over the shortlist when set), argmax per slot, repeats merged, blanks (the padding id) dropped.
        """
        if self.cfg.ctc_weight <= 0:
            raise ValueError("ElfS2T: sampler.init=ctc needs a model trained with the auxiliary CTC (elf.ctc_weight > 0)")
        B, L, d = cond.shape[0], self.text_space.max_len, self.text_space.dim
        noise = torch.randn((B, L, d), generator=generator).to(cond.device, cond.dtype)
        ones = torch.ones(B, device=cond.device, dtype=cond.dtype)
        out = self.denoiser(self.cfg.flow.sigma_d * noise, ones, self_cond=torch.zeros_like(noise), guidance=ones,
                            decode=torch.ones(B, dtype=torch.bool, device=cond.device), cond=cond, cond_mask=cond_mask)
        audio_hidden, audio_mask = self._audio_slots(out.cond_hidden, cond_mask)
        vocab = self.vocab
        best = self.denoiser.token_logits(audio_hidden, vocab).argmax(dim=-1)  # (B, C')
        best = (best if vocab is None else vocab[best]).cpu()
        lens = audio_mask.sum(dim=1).tolist()
        blank, rows = self.text_space.pad_id, []
        for b in range(B):
            seq = best[b, : int(lens[b])]
            keep = torch.ones_like(seq, dtype=torch.bool)
            keep[1:] = seq[1:] != seq[:-1]
            rows.append([t for t in seq[keep].tolist() if t != blank])
        return self.text_space.ids_from_tokens(rows)
