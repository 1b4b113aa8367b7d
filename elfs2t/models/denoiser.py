"""The ELF denoiser F (docs/design.md §2.2): a bidirectional transformer over prefix, condition and text latents.

Sequence layout of one forward, with ``P`` prefix tokens, ``C`` condition slots and ``L`` text slots::

    [ 4 time tokens | 4 guidance tokens | 4 mode tokens | condition (C) | text (L) ]
    positions (RoPE): prefix unrotated; condition then text numbered 0, 1, 2, ... per row,
    skipping padded condition slots, so row b's text starts at position cond_len[b]
    (or, with ``text_pos_scale > 0``, text slot i at round(i * scale) on the condition's axis).

* Text input per position: ``text_proj(self_cond_proj([z | c]))``: ``2d -> d`` linear, then
  ``d -> bottleneck (no bias) -> H``. ``c`` is the self-conditioning estimate (zeros when unused).
* Time tokens: the 4 learned tokens ``t_emb_tokens (1, 4, H)`` plus the same embedding
  ``t_embedder(t) (B, H)`` added to each of them (as in the released ELF code). Guidance tokens: the
  same with ``self_cond_cfg_embedder(w)``; ``guidance=None`` leaves these 4 tokens out of the sequence
  (exactly what the released code does without a scale). Mode tokens ``mode_tokens (1, 4, H)`` are
  multiplied per row by 0 (denoising) or 1 (decoding) and always stay in the sequence.
* Attention is bidirectional with a key-padding mask: padded condition and text slots are never
  attended to (their own outputs are computed but meaningless).
* ``prefix_attention`` (a design option beyond the paper; default ``full``): with ``self``, the condition
  slots attend **only to the condition** (real slots, plus each slot to itself so that a row without
  any real slot stays finite), not to the time / guidance / mode tokens nor to the text; the prefix tokens
  and the text attend to everything, as in ``full``. The condition's hidden states, keys and values
  at every layer then depend on the condition alone -- not on ``z``, ``t``, the self-conditioning, ``w``
  or the mode -- so :meth:`ElfDenoiser.cache_condition` computes them once per utterance (and per CFG
  branch: the unconditional branch's zero condition has keys and values of its own), and
  ``forward(..., cond_cache=cache)`` runs only the ``P + L`` prefix and text positions against the cached
  keys. The choice to keep the time / mode tokens out of the condition's view is what makes the
  cache exact: they change at every step (and between denoising and decoding). Training uses the
  same mask through the ordinary uncached forward; the checkpoint format does not change.
  Per-step cost: ``full`` runs ``P + C + L`` queries per layer, ``self`` with a cache ``P + L``.
* Flow head: ``final_layer`` = RMSNorm -> Linear(H -> d), zero-initialised -> ``x_hat``.
* Token head (:class:`~elfs2t.models.token_head.TokenHead`, :meth:`ElfDenoiser.token_logits`) reads the raw
  residual stream ``hidden`` (the last block's output at text positions, before the final norm):
  ``gelu_tanh(hidden @ proj_kernel + proj_bias) @ unembed_kernel + unembed_bias``.

Parameter names are those of the released ELF PyTorch checkpoints; see
:mod:`elfs2t.models.elf_checkpoint`.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal, NamedTuple

import torch
from torch import nn

from elfs2t.config import config_check
from elfs2t.models.layers import BottleneckProj, ElfBlock, FlowHead, ScalarEmbedder, rope_tables
from elfs2t.models.layout import PREFIX_ATTENTION, ConditionCache, attention_mask, sequence_positions
from elfs2t.models.token_head import TokenHead

__all__ = ["DenoiserConfig", "DenoiserOutput", "ConditionCache", "ElfDenoiser", "ELF_SIZES", "PREFIX_ATTENTION",
           "attention_mask", "sequence_positions"]


#: Published sizes (depth, hidden, heads); docs/design.md §2.2.
ELF_SIZES: dict[str, tuple[int, int, int]] = {
    "ELF-B": (12, 768, 12),
    "ELF-M": (24, 1056, 16),
    "ELF-L": (32, 1280, 16),
}


@dataclasses.dataclass(kw_only=True)
class DenoiserConfig:
    """Architecture of the ELF denoiser (defaults: ELF-B over t5-small latents)."""

    RETIRED: ClassVar[dict] = {
        "flow_head": ("linear", "token_mixture was measured worse for the flow from noise on mini_synth"),
    }

    latent_dim: int = 512
    """d: width of the text latents (the text encoder's hidden size)."""
    vocab_size: int = 32100
    """V: number of token ids the token head predicts."""
    hidden: int = 768
    """H: transformer width."""
    depth: int = 12
    """Number of transformer blocks."""
    heads: int = 12
    """Attention heads; H must be divisible by it and the head width must be even (RoPE pairs)."""
    bottleneck: int = 128
    """Width of the text input bottleneck d -> bottleneck -> H."""
    num_time_tokens: int = 4
    """Learned time prefix tokens."""
    num_guidance_tokens: int = 4
    """Learned self-conditioning-guidance prefix tokens."""
    num_mode_tokens: int = 4
    """Learned mode prefix tokens (x0 in denoising rows, x1 in decoding rows)."""
    rope_theta: float = 1e4
    """RoPE base."""
    freq_dim: int = 256
    """Sinusoidal features of the time / guidance embedders ([cos, sin] order)."""
    ffn_inner: int | None = None
    """SwiGLU inner width; null = int(8 H / 3) (ELF: 2048 for H 768)."""
    norm_eps: float = 1e-6
    """Epsilon of every RMSNorm."""
    dropout: float = 0.0
    """Residual dropout in every block, training only (0: none, as ELF)."""
    prefix_attention: Literal["full", "self"] = "full"
    """What the condition slots attend to: ``full`` everything (ELF); ``self`` the condition only, so that
    its keys/values are computed once per utterance and cached across sampling steps (module docstring)."""
    text_pos_scale: float = 0.0
    """RoPE positions of the text slots. 0: numbered after the condition (ELF's layout: slot i at
    cond_len + i). > 0: slot i at round(i * text_pos_scale), on the condition's own axis (condition slot
    a at a): an alignment prior for speech, where token i is spoken near prefix frame i * (prefix frames
    per token). With it the text-to-text distances are scaled too, so pre-train the text ELF with it."""

    def validate(self) -> None:
        """Check sizes; raises ConfigError naming the key."""
        for key in ("latent_dim", "vocab_size", "hidden", "depth", "heads", "bottleneck", "freq_dim"):
            value = getattr(self, key)
            config_check(value > 0, key, value, "must be positive")
        for key in ("num_time_tokens", "num_guidance_tokens", "num_mode_tokens"):
            value = getattr(self, key)
            config_check(value >= 0, key, value, "must be >= 0")
        config_check(self.num_time_tokens > 0, "num_time_tokens", self.num_time_tokens, "must be positive")
        config_check(self.hidden % self.heads == 0, "hidden", self.hidden, f"must be divisible by heads={self.heads}")
        config_check((self.hidden // self.heads) % 2 == 0, "heads", self.heads,
                     f"head width hidden/heads={self.hidden / self.heads} must be even (RoPE rotates pairs)")
        config_check(self.ffn_inner is None or self.ffn_inner > 0, "ffn_inner", self.ffn_inner, "must be positive or null")
        config_check(self.rope_theta > 0, "rope_theta", self.rope_theta, "must be positive")
        config_check(self.norm_eps > 0, "norm_eps", self.norm_eps, "must be positive")
        config_check(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        config_check(self.prefix_attention in PREFIX_ATTENTION, "prefix_attention", self.prefix_attention,
                     f"must be one of {list(PREFIX_ATTENTION)}")
        config_check(self.text_pos_scale >= 0, "text_pos_scale", self.text_pos_scale, "must be >= 0 (0: ELF layout)")

    @property
    def ffn_width(self) -> int:
        """SwiGLU inner width actually used."""
        return self.ffn_inner if self.ffn_inner is not None else 8 * self.hidden // 3

    @classmethod
    def from_size(cls, size: str, **kwargs) -> "DenoiserConfig":
        """A published size (``ELF-B``, ``ELF-M``, ``ELF-L``) with other fields from ``kwargs``."""
        if size not in ELF_SIZES:
            raise ValueError(f"unknown ELF size {size!r}; known: {sorted(ELF_SIZES)}")
        depth, hidden, heads = ELF_SIZES[size]
        return cls(depth=depth, hidden=hidden, heads=heads, **kwargs)


class DenoiserOutput(NamedTuple):
    """Output of :class:`ElfDenoiser`."""

    x_hat: torch.Tensor
    """(B, L, d) predicted clean latents."""
    hidden: torch.Tensor
    """(B, L, H) residual stream at text positions (input of the token head)."""
    cond_hidden: torch.Tensor | None = None
    """(B, C, H) residual stream at the condition slots (full forwards with a condition; else None)."""


class ElfDenoiser(TokenHead, nn.Module):
    """ELF denoiser; interface in docs/contracts.md, layout in the module docstring."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d, h = cfg.latent_dim, cfg.hidden
        self.self_cond_proj = nn.Linear(2 * d, d)
        self.text_proj = BottleneckProj(d, h, cfg.bottleneck)
        self.t_embedder = ScalarEmbedder(h, cfg.freq_dim)
        self.t_emb_tokens = nn.Parameter(torch.empty(1, cfg.num_time_tokens, h))
        self.self_cond_cfg_embedder = ScalarEmbedder(h, cfg.freq_dim)
        self.self_cond_cfg_tokens = nn.Parameter(torch.empty(1, cfg.num_guidance_tokens, h))
        self.mode_tokens = nn.Parameter(torch.empty(1, cfg.num_mode_tokens, h))
        self.blocks = nn.ModuleList(
            [ElfBlock(h, cfg.heads, cfg.ffn_width, cfg.norm_eps, cfg.dropout) for _ in range(cfg.depth)]
        )
        self._init_token_head(h, d, cfg.vocab_size)  # proj_* and unembed_* (the released order)
        self.final_layer = FlowHead(h, d, cfg.norm_eps)
        self.reset_parameters()

    # ------------------------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """ELF's initialisation: xavier-uniform linears (zero bias), N(0, 0.02) prefix tokens,
        xavier token head, zero flow head."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for tokens in (self.t_emb_tokens, self.self_cond_cfg_tokens, self.mode_tokens):
            nn.init.normal_(tokens, mean=0.0, std=0.02)
        for embedder in (self.t_embedder, self.self_cond_cfg_embedder):
            nn.init.normal_(embedder.mlp[0].weight, std=0.02)
            nn.init.normal_(embedder.mlp[2].weight, std=0.02)
        nn.init.xavier_uniform_(self.proj_kernel)
        nn.init.zeros_(self.proj_bias)
        nn.init.xavier_uniform_(self.unembed_kernel)
        nn.init.zeros_(self.unembed_bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def num_prefix_tokens(self) -> int:
        """Prefix tokens in a forward with guidance given (time + guidance + mode)."""
        c = self.cfg
        return c.num_time_tokens + c.num_guidance_tokens + c.num_mode_tokens

    # ------------------------------------------------------------------------------------------
    def embed_text(self, z: torch.Tensor, self_cond: torch.Tensor | None = None) -> torch.Tensor:
        """Text input projection: ``z, c (B, L, d)`` -> ``(B, L, H)`` (``c`` = zeros when None)."""
        z = z.to(self.self_cond_proj.weight.dtype)
        c = torch.zeros_like(z) if self_cond is None else self_cond.to(z.dtype)
        return self.text_proj(self.self_cond_proj(torch.cat([z, c], dim=-1)))

    def embed_condition_latents(self, x_src: torch.Tensor) -> torch.Tensor:
        """Clean source-text latents as condition tokens: ``(B, C, d)`` -> ``(B, C, H)``.

        Same input projection as the text slots, with the self-conditioning channels zero
        (text-conditional ELF, e.g. translation from a source text).
        """
        return self.embed_text(x_src, None)

    def _prefix(self, t: torch.Tensor, guidance: torch.Tensor | None, decode: torch.Tensor) -> torch.Tensor:
        """``(B, P, H)``: time tokens, guidance tokens (if given), mode tokens scaled by ``decode``."""
        b = t.shape[0]
        parts = [self.t_emb_tokens.expand(b, -1, -1) + self.t_embedder(t)[:, None, :]]
        if guidance is not None and self.cfg.num_guidance_tokens > 0:
            parts.append(self.self_cond_cfg_tokens.expand(b, -1, -1) + self.self_cond_cfg_embedder(guidance)[:, None, :])
        if self.cfg.num_mode_tokens > 0:
            gate = decode.to(self.mode_tokens.dtype)[:, None, None]  # (B, 1, 1): 0 denoise, 1 decode
            parts.append(self.mode_tokens.expand(b, -1, -1) * gate)
        return torch.cat(parts, dim=1)

    def _cond_inputs(self, cond: torch.Tensor, cond_mask: torch.Tensor | None, b: int, dtype: torch.dtype):
        """Validated ``cond (B, C, H)`` with padded slots zeroed, and its mask ``(B, C)``."""
        if cond.dim() != 3 or cond.shape[0] != b or cond.shape[2] != self.cfg.hidden:
            raise ValueError(f"ElfDenoiser: cond has shape {tuple(cond.shape)}, expected ({b}, C, {self.cfg.hidden})")
        n_cond = cond.shape[1]
        cond_mask = torch.ones(b, n_cond, dtype=torch.bool, device=cond.device) if cond_mask is None else cond_mask.to(cond.device).bool()
        self._check("cond_mask", cond_mask, (b, n_cond))
        return cond.to(dtype) * cond_mask[..., None], cond_mask  # padded slots carry zeros

    def cache_condition(self, cond: torch.Tensor, cond_mask: torch.Tensor | None = None) -> ConditionCache:
        """Keys and values of the condition ``(B, C, H)`` at every layer (``prefix_attention: self`` only).

        Runs the blocks over the condition alone (it attends only to itself); the result can replace
        ``cond`` / ``cond_mask`` in :meth:`forward` (``cond_cache=``) at every sampling step and in the
        decoding forward. For CFG, pass the conditional and the zeroed condition rows together.
        """
        return self.encode_condition(cond, cond_mask, "cache_condition")[1]

    def condition_hidden(self, cond: torch.Tensor, cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The condition's outputs ``(B, C, H)`` without the text (``prefix_attention: self`` only): exactly the
        ``cond_hidden`` of a full :meth:`forward`, at the cost of the ``C`` condition positions alone."""
        return self.encode_condition(cond, cond_mask, "condition_hidden")[0]

    def encode_condition(self, cond: torch.Tensor, cond_mask: torch.Tensor | None = None,
                         caller: str = "encode_condition") -> tuple[torch.Tensor, ConditionCache]:
        """The blocks over the condition alone (``prefix_attention: self`` only): its outputs ``(B, C, H)`` and its
        per-layer keys / values as a :class:`ConditionCache`. Gradients flow when called with them on: a
        training forward can run the condition first, use its outputs (e.g. to align the text to the audio),
        then the text slots with ``cond_cache=`` -- the same losses and gradients as one full forward."""
        if self.cfg.prefix_attention != "self":
            raise ValueError(f"ElfDenoiser.{caller} needs prefix_attention='self' (with 'full' the condition "
                             "attends to the noisy text and the time tokens, so its states change at every step)")
        dtype = self.self_cond_proj.weight.dtype
        x, cond_mask = self._cond_inputs(cond, cond_mask, cond.shape[0], dtype)  # (B, C, H)
        positions = sequence_positions(0, cond_mask, 0)  # (B, C)
        cos, sin = rope_tables(positions, self.cfg.hidden // self.cfg.heads, self.cfg.rope_theta)
        mask = attention_mask(0, cond_mask, cond_mask[:, :0], "self")  # (B, C, C)
        kv = []
        for block in self.blocks:
            x, layer_kv = block(x, cos, sin, mask, return_kv=True)
            kv.append(layer_kv)
        return x, ConditionCache(kv=tuple(kv), cond_mask=cond_mask)


    def _check(self, name: str, x: torch.Tensor | None, shape: tuple) -> None:
        if x is not None and tuple(x.shape) != shape:
            raise ValueError(f"ElfDenoiser: {name} has shape {tuple(x.shape)}, expected {shape}")

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        *,
        self_cond: torch.Tensor | None = None,
        guidance: torch.Tensor | None = None,
        decode: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        cond_cache: ConditionCache | None = None,
        text_pos: torch.Tensor | None = None,
        text_extra: torch.Tensor | None = None,
    ) -> DenoiserOutput:
        """One denoiser pass.

        z (B, L, d) noisy latents; t (B,) or scalar times in [0, 1]; self_cond (B, L, d) or None;
        guidance (B,) or scalar w, or None (guidance tokens left out); decode (B,) bool or None (all
        denoising); cond (B, C, H) clean condition tokens or None; cond_mask (B, C) bool (True = real,
        None = all real); text_mask (B, L) bool or None (all real); cond_cache: the condition as
        :meth:`cache_condition` returned it, instead of cond / cond_mask (``prefix_attention: self``);
        text_pos (B, L) long or None: RoPE positions of the text slots on the condition's axis (instead of
        ``text_pos_scale``'s, e.g. the tokens' CTC-aligned slots); text_extra (B, L, H) or None: added to the text
        slots' input embeddings (e.g. ELF-S2T's aligned audio, ``elf.slot_audio``). Returns x_hat (B, L, d) and
        hidden (B, L, H).
        """
        cfg = self.cfg
        if z.dim() != 3 or z.shape[-1] != cfg.latent_dim:
            raise ValueError(f"ElfDenoiser: z has shape {tuple(z.shape)}, expected (B, L, {cfg.latent_dim})")
        b, l_text, _ = z.shape
        dev = z.device
        t = torch.as_tensor(t, device=dev, dtype=torch.float32)
        t = t.expand(b) if t.dim() == 0 else t
        self._check("t", t, (b,))
        if guidance is not None:
            guidance = torch.as_tensor(guidance, device=dev, dtype=torch.float32)
            guidance = guidance.expand(b) if guidance.dim() == 0 else guidance
            self._check("guidance", guidance, (b,))
        decode = torch.zeros(b, dtype=torch.bool, device=dev) if decode is None else decode.to(dev).bool()
        self._check("decode", decode, (b,))
        self._check("self_cond", self_cond, tuple(z.shape))
        text_mask = torch.ones(b, l_text, dtype=torch.bool, device=dev) if text_mask is None else text_mask.to(dev).bool()
        self._check("text_mask", text_mask, (b, l_text))

        x_text = self.embed_text(z, self_cond)  # (B, L, H)
        if text_extra is not None:
            self._check("text_extra", text_extra, tuple(x_text.shape))
            x_text = x_text + text_extra.to(x_text.dtype)
        prefix = self._prefix(t, guidance, decode).to(x_text.dtype)  # (B, P, H)
        n_prefix = prefix.shape[1]
        head_dim = cfg.hidden // cfg.heads
        if cond_cache is not None:
            if cond is not None or cond_mask is not None:
                raise ValueError("ElfDenoiser: give either cond / cond_mask or cond_cache, not both")
            if cfg.prefix_attention != "self":
                raise ValueError("ElfDenoiser: cond_cache needs prefix_attention='self'")
            if cond_cache.batch_size != b or len(cond_cache.kv) != cfg.depth:
                raise ValueError(f"ElfDenoiser: cond_cache has {cond_cache.batch_size} rows and {len(cond_cache.kv)} "
                                 f"layers, expected {b} and {cfg.depth}")
            # Only prefix and text run; the condition's keys/values come from the cache (after them).
            c_mask = cond_cache.cond_mask.to(dev)
            x = torch.cat([prefix, x_text], dim=1)  # (B, P + L, H)
            pos = sequence_positions(n_prefix, c_mask, l_text, cfg.text_pos_scale, text_pos)
            positions = torch.cat([pos[:, :n_prefix], pos[:, n_prefix + c_mask.shape[1]:]], dim=1)  # (B, P + L)
            keys = torch.cat([torch.ones(b, n_prefix, dtype=torch.bool, device=dev), text_mask, c_mask], dim=1)
            cos, sin = rope_tables(positions, head_dim, cfg.rope_theta)
            for block, kv in zip(self.blocks, cond_cache.kv):
                x = block(x, cos, sin, keys, extra_kv=kv)
            hidden = x[:, n_prefix:]  # (B, L, H)
            return DenoiserOutput(x_hat=self.final_layer(hidden), hidden=hidden)

        if cond is not None:
            cond, cond_mask = self._cond_inputs(cond, cond_mask, b, x_text.dtype)
            x = torch.cat([prefix, cond, x_text], dim=1)  # (B, P + C + L, H)
        else:
            if cond_mask is not None:
                raise ValueError("ElfDenoiser: cond_mask given without cond")
            cond_mask = torch.ones(b, 0, dtype=torch.bool, device=dev)
            x = torch.cat([prefix, x_text], dim=1)  # (B, P + L, H)
        n_cond = cond_mask.shape[1]
        mask = attention_mask(n_prefix, cond_mask, text_mask, cfg.prefix_attention)  # (B, S) or (B, S, S)
        positions = sequence_positions(n_prefix, cond_mask, l_text, cfg.text_pos_scale, text_pos)
        cos, sin = rope_tables(positions, head_dim, cfg.rope_theta)

        for block in self.blocks:
            x = block(x, cos, sin, mask)
        hidden = x[:, n_prefix + n_cond:]  # (B, L, H) raw residual stream
        cond_hidden = x[:, n_prefix:n_prefix + n_cond] if cond is not None else None
        return DenoiserOutput(x_hat=self.final_layer(hidden), hidden=hidden, cond_hidden=cond_hidden)
