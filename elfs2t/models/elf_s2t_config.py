"""ELF-S2T's configuration (:class:`ElfS2TConfig`): text latent space, denoiser, objective, and the CPU-budget
options beyond the paper (auxiliary CTC and its warm-up, frame masks, draft / mask rows, aligned text positions,
token shortlist). The model is :class:`elfs2t.models.elf_s2t.ElfS2T`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from elfs2t.config import config_check
from elfs2t.flow.objective import FlowConfig
from elfs2t.models.augment import FeatureMaskConfig
from elfs2t.models.denoiser import DenoiserConfig
from elfs2t.text.latent import TextLatentConfig

__all__ = ["ElfS2TConfig"]


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
    decoding branch train in the rest of the run (a resumed run continues from its checkpoint's progress). 0: off."""
    text_positions: Literal["scale", "ctc"] = "scale"
    """Where the text slots sit on the audio's RoPE axis: ``scale`` -- slot i at ``round(i *
    denoiser.text_pos_scale)``; ``ctc`` -- each content slot at its token's CTC-aligned audio slot (the forced
    alignment of the true text in training, the draft's first frame of each token when refining a CTC draft;
    :mod:`elfs2t.models.ctc_align`; needs ctc_weight > 0 and ``denoiser.prefix_attention: self``). Sampling from
    noise keeps ``scale``'s positions."""
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
    draft_rows: Literal["denoise", "decode", "mask"] = "denoise"
    """Which rows take drafts: ``denoise`` (the flow regresses the true latents from a noised draft at
    ``draft_t``), ``decode`` (decoding rows read a near-clean draft -- signal level around ``flow.mu_read`` --
    and the token head is trained with cross-entropy to correct it; also worse at 8 minutes on mini_synth) or
    ``mask`` (*mask rows*, Mask-CTC: decoding rows read the clean latents of the TRUE text with a random share
    of its tokens replaced by the text encoder's mask token, and learn to fill them in from the audio and the
    rest; decode with ``sampler.refine: mask``; :mod:`elfs2t.models.mask_ctc`). ``mask`` needs no CTC draft
    in training."""
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
        config_check(self.text_positions in ("scale", "ctc"), "text_positions", self.text_positions, "must be scale or ctc")
        config_check(self.text_positions == "scale" or (self.ctc_weight > 0 and self.denoiser.prefix_attention == "self"),
                     "text_positions", self.text_positions,
                     "ctc positions need the CTC (ctc_weight > 0) and denoiser.prefix_attention: self")
        config_check(0 <= self.draft_frac <= 1, "draft_frac", self.draft_frac, "must be in [0, 1]")
        config_check(self.draft_frac == 0 or self.ctc_weight > 0 or self.draft_rows == "mask", "draft_frac",
                     self.draft_frac, "draft rows read the CTC draft: set ctc_weight > 0")
        config_check(0 <= self.draft_t < 1, "draft_t", self.draft_t, "must be in [0, 1)")
        config_check(self.draft_rows in ("denoise", "decode", "mask"), "draft_rows", self.draft_rows,
                     "must be denoise, decode or mask")
