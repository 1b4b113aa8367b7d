"""ELF-S2T's configuration (:class:`ElfS2TConfig`): text latent space, denoiser, objective, and the CPU-budget
options beyond the paper (auxiliary CTC and its warm-up, frame masks, aligned text positions, token shortlist). The model is :class:`elfs2t.s2t.elf_s2t.ElfS2T`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from elfs2t.config import ANY, config_check
from elfs2t.flow.objective import FlowConfig
from elfs2t.s2t.augment import FeatureMaskConfig
from elfs2t.models.denoiser import DenoiserConfig
from elfs2t.text.latent import TextLatentConfig

__all__ = ["ElfS2TConfig"]


@dataclass(kw_only=True)
class ElfS2TConfig:
    """ELF-S2T model: text latent space, denoiser, projector, objective."""

    RETIRED: ClassVar[dict] = {
        "draft_frac": (0.0, "draft rows, measured worse on mini_synth; removed in the decoding redesign"),
        "draft_t": (ANY, "the time of the removed draft rows"),
        "draft_rows": (ANY, "the kind of the removed draft rows (denoise, decode, mask)"),
        "slot_audio_init": ("identity", "a zero-initialised slot_proj was measured worse for the flow from noise"),
    }

    text: TextLatentConfig = field(default_factory=TextLatentConfig)
    """Frozen text encoder that defines the latent space (and the text length L)."""
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    """Denoiser size; latent_dim and vocab_size are overwritten from the text latent space."""
    flow: FlowConfig = field(default_factory=FlowConfig)
    """Flow-matching objective, incl. audio forcing (mu_dec) and condition dropout (p_drop)."""
    augment: FeatureMaskConfig = field(default_factory=FeatureMaskConfig)
    """Time / channel masks on the cached encoder frames of training batches (elfs2t.s2t.augment; off by
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
    """Weight of the auxiliary CTC loss on the audio slots' outputs (elfs2t.s2t.ctc_aux; 0: off, the paper)."""
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
    :mod:`elfs2t.s2t.ctc_align`; needs ctc_weight > 0 and ``denoiser.prefix_attention: self``). The rows whose
    audio is dropped (CFG) keep ``scale``'s positions; decoding from noise takes the CTC alignment of the audio
    (:mod:`elfs2t.s2t.decoding.layout`)."""
    slot_audio: bool = False
    """With ``text_positions: ctc``: each aligned content slot's input also gets the condition's output at its
    token's audio slot (the state the CTC reads), through a learned linear map (``slot_proj``), so that the text slots
    start from the audio evidence of their own token instead of having to find it by attention. ``slot_proj`` starts
    as the identity: the aligned state lives in the residual space the token head reads, so the text slots start out
    reading what the CTC reads. Rows without an alignment (dropped audio, CFG's unconditional branch) get nothing."""
    cache_latents: bool = True
    """Keep the frozen text encoder's latents of seen targets in memory (LatentCache) instead of re-encoding."""
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
        config_check(not self.slot_audio or self.text_positions == "ctc", "slot_audio", self.slot_audio,
                     "needs text_positions: ctc (the aligned audio slot of each text slot)")
