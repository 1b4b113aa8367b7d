"""Analytical FLOPs of the models' forwards, for model FLOPs utilisation (MFU).

Convention: matrix products only (one multiply-add = 2 FLOPs); norms, activations, RoPE and softmax are
left out (a few percent). Attention is counted dense over every key a kernel computes, masked or not
(SDPA computes the full ``S_q x S_k`` score matrix). For a transformer layer with ``S_q`` queries,
``S_k`` keys, width ``H`` and feed-forward width ``F``::

    layer(S_q, S_k) = S_q (8 H^2 + m H F) + 4 S_q S_k H

``8 H^2``: fused qkv ``2 * 3 H^2`` plus output projection ``2 H^2``; ``4 S_q S_k H``: ``Q K^T`` and ``A V``;
``m = 6`` for SwiGLU (three ``H x F`` matrices: ELF denoiser, Llama), ``m = 4`` for a plain MLP (Whisper).

* ELF denoiser forward over ``B`` rows, prefix ``P`` (12 tokens with guidance), condition ``C``, text ``L``:
  input ``2 L (2 d d + d b + b H)``, blocks ``depth * layer(S_q, S_k)``, flow head ``2 L H d``, the two
  scalar embedders ``2 * 2 (256 H + H^2)``; the decoding forward adds the token head ``2 L (H d + d V)``.
  Uncached: ``S_q = S_k = P + C + L``. Cached (``prefix_attention: self``): ``S_q = P + L``,
  ``S_k = P + C + L`` per step, plus once per batch the cache ``depth * layer(C, C)`` per row (``B`` rows,
  plus one row for the zero condition that all unconditional CFG rows share).
  One ``generate``: ``steps`` forwards over ``B`` rows (``2 B`` with CFG), one decoding forward over ``B``.
  With a token-head shortlist (``elf.token_shortlist``) the head's ``V`` is the shortlist size ``K``.
* ELF-S2T CTC draft (the draft, refine and rescore strategies, the flow's and the readout's CTC-aligned slots): with
  ``prefix_attention: self`` the condition's blocks alone over ``B`` rows (``depth * layer(C, C)`` per row, what
  the cache costs: the draft's pass gives the cache, so the strategies after it build only CFG's zero row), with
  ``full`` one uncached decoding-mode forward (``S_q = S_k = P + C + L``); plus the token head over the ``C_a``
  audio slots, ``2 C_a (H d + d K)`` per row (``K``: the shortlist size, else ``V``); with ``steps >= 1`` the
  frozen text encoder encodes the ``B`` drafts (``L`` tokens each) and the sampling from ``t_start`` costs what it
  costs from noise (``steps`` forwards, decoding forward: ``t_start`` changes the grid, not its length);
  ``steps = 0`` is the draft alone.
* Frozen text encoder over ``L`` tokens: BERT-like ``layers * layer(L, L)`` with ``m = 4`` (plain MLP) and
  the pooler ``2 H^2`` on the first token when the loaded model has one (``AutoModel`` builds it for BERT);
  T5 encoder ``layers * (L (8 H I + m H F) + 4 L^2 I)`` with ``I = heads * d_kv``, ``m = 6`` for the gated
  feed-forward (``is_gated_act``), else 4. Token embeddings and T5's relative position bias are look-ups.
* ELF training step: the trained forward over ``B`` rows counted 3x (forward + backward), the two no-grad
  self-conditioning passes over the self-conditioned rows, the token head over the decoding rows (3x).
* AR (Llama) greedy with KV cache: the prompt ``[audio | task | BOS]`` once (``S_q = S_k = P_a``, logits of
  the last position), then one position per generated token of the batch's longest row (``S_q = 1``,
  ``S_k`` growing; finished rows keep running); LM head ``2 H V`` per logits row; grouped-query k/v
  projections ``2 * 2 H kv_dim``. Beam search of width ``K`` (``ArSpeechLM``'s own): the prompt over the ``B``
  rows once (its cache is then repeated to ``B K`` rows, a copy), then every step one position over all ``B K``
  rows until every row has ``K`` ended hypotheses (finished rows keep running); the top-k over ``K V`` scores is
  not a matmul. The audio projector (``2 T' k D H``) is left out for both. Training: 3x the forward over
  prompt + text with logits on the text positions.
* Whisper encoder over ``T`` output frames: ``conv1 2 (2T)(3 n_mels) d + conv2 2 T (3 d) d`` and
  ``layers * layer(T, T)`` with ``m = 4, F = 4d`` (``T = 1500`` for ``pad30``).
"""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["layer_flops", "token_head_flops", "denoiser_forward_flops", "elf_ctc_draft_flops", "elf_generate_flops",
           "elf_train_flops", "ar_greedy_flops", "ar_search_flops", "ar_train_flops", "whisper_encoder_flops",
           "text_encoder_flops", "peak_flops", "PEAK_TFLOPS"]

#: Dense bf16/fp16 tensor-core peaks in TFLOP/s, matched against the CUDA device name.
PEAK_TFLOPS: dict[str, float] = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
                                 "A10": 125.0, "V100": 125.0, "4090": 165.0}


def layer_flops(s_q: float, s_k: float, hidden: int, ffn: int, mlp_mats: int = 3) -> float:
    """One transformer layer: ``s_q (8 H^2 + 2 mlp_mats H F) + 4 s_q s_k H``."""
    return s_q * (8 * hidden**2 + 2 * mlp_mats * hidden * ffn) + 4 * s_q * s_k * hidden


def token_head_flops(cfg, slots: int, vocab: Optional[int] = None) -> float:
    """The ELF token head over ``slots`` positions of one row: ``2 slots (H d + d K)`` (``cfg``: a
    DenoiserConfig; ``vocab``: the shortlist size ``K``, None: the full ``V = cfg.vocab_size``)."""
    k = cfg.vocab_size if vocab is None else vocab
    return 2 * slots * (cfg.hidden * cfg.latent_dim + cfg.latent_dim * k)


def denoiser_forward_flops(cfg, rows: int, l_text: int, n_cond: int, *, n_prefix: Optional[int] = None,
                           cached: bool = False, token_head: bool = False, vocab: Optional[int] = None) -> float:
    """One ELF denoiser forward over ``rows`` rows (``cfg``: a DenoiserConfig); ``token_head``: plus the
    token head over the ``L`` text slots (over ``vocab`` ids, the shortlist size; None: ``V``)."""
    h, d, depth = cfg.hidden, cfg.latent_dim, cfg.depth
    p = n_prefix if n_prefix is not None else cfg.num_time_tokens + cfg.num_guidance_tokens + cfg.num_mode_tokens
    per_row = 2 * l_text * (2 * d * d + d * cfg.bottleneck + cfg.bottleneck * h)  # input projections
    s_q = p + l_text if cached else p + n_cond + l_text
    per_row += depth * layer_flops(s_q, p + n_cond + l_text, h, cfg.ffn_width)
    per_row += 2 * l_text * h * d + 4 * (cfg.freq_dim * h + h * h)  # flow head, scalar embedders
    if token_head:
        per_row += token_head_flops(cfg, l_text, vocab)
    return rows * per_row


def elf_ctc_draft_flops(cfg, batch: int, l_text: int, n_cond: int, n_audio: int, vocab: Optional[int] = None) -> float:
    """ELF-S2T's greedy CTC draft (``ElfS2T.draft``) of ``batch`` rows: the condition's blocks alone over its
    ``n_cond`` slots (``prefix_attention: self``), or one decoding-mode forward over ``P + C + L`` positions
    (``full``), plus the token head over the ``n_audio`` audio slots of each row (``n_cond`` minus the task token),
    over ``vocab`` ids (None: ``V``)."""
    if cfg.prefix_attention == "self":
        forward = batch * cfg.depth * layer_flops(n_cond, n_cond, cfg.hidden, cfg.ffn_width)
    else:
        forward = denoiser_forward_flops(cfg, batch, l_text, n_cond)
    return forward + batch * token_head_flops(cfg, n_audio, vocab)


def elf_generate_flops(cfg, batch: int, l_text: int, n_cond: int, steps: int, guidance: float, cached: bool, *,
                       vocab: Optional[int] = None, draft_audio: Optional[int] = None,
                       text_encoder: float = 0.0) -> float:
    """One ELF-S2T ``generate`` call of a flow-type strategy: sampling steps (CFG doubles the rows), cache, decoding
    forward (its token head over ``vocab`` ids, the shortlist size; None: ``V``); ``steps = 0``: the decoding
    forward alone (the ``readout`` strategy).

    ``draft_audio`` (the audio slots per row): a CTC draft comes first (:func:`elf_ctc_draft_flops`: the ``refine``
    strategy's start, the layout of ``slots: ctc``), and ``text_encoder`` (the FLOPs of encoding the ``batch`` drafts,
    :func:`text_encoder_flops`; 0: left out) after it; a cached generation then reuses the draft's pass over the
    condition. The ``draft`` strategy alone is :func:`elf_ctc_draft_flops`.
    """
    total = text_encoder
    if draft_audio is not None:
        total += elf_ctc_draft_flops(cfg, batch, l_text, n_cond, draft_audio, vocab)
    rows = batch * (2 if guidance != 1.0 else 1)
    total += steps * denoiser_forward_flops(cfg, rows, l_text, n_cond, cached=cached)
    total += denoiser_forward_flops(cfg, batch, l_text, n_cond, cached=cached, token_head=True, vocab=vocab)
    if cached:  # the condition's rows (unless the draft's pass gave them), one shared row for CFG's zero condition
        cache_rows = (0 if draft_audio is not None else batch) + (1 if guidance != 1.0 else 0)
        total += cache_rows * cfg.depth * layer_flops(n_cond, n_cond, cfg.hidden, cfg.ffn_width)
    return total


def elf_train_flops(cfg, batch: int, l_text: int, n_cond: int, frac_self_cond: float, frac_decode: float) -> float:
    """One ELF-S2T training step (see the module docstring)."""
    fwd = denoiser_forward_flops(cfg, batch, l_text, n_cond)
    head = batch * frac_decode * 2 * l_text * (cfg.hidden * cfg.latent_dim + cfg.latent_dim * cfg.vocab_size)
    return 3 * (fwd + head) + 2 * frac_self_cond * fwd


def _llama(lm_cfg) -> tuple[int, int, int, int, int]:
    heads = lm_cfg.num_attention_heads
    kv = getattr(lm_cfg, "num_key_value_heads", None) or heads
    return lm_cfg.hidden_size, lm_cfg.intermediate_size, lm_cfg.num_hidden_layers, lm_cfg.vocab_size, kv * (lm_cfg.hidden_size // heads)


def _ar_layer(s_q: float, s_k: float, h: int, f: int, kv_dim: int) -> float:
    # q and o: 2 * 2 H^2; k and v: 2 * 2 H kv_dim (grouped-query attention); SwiGLU 6 H F
    return s_q * (4 * h * h + 4 * h * kv_dim + 6 * h * f) + 4 * s_q * s_k * h


def ar_greedy_flops(lm_cfg, batch: int, prompt_len: int, steps: int) -> float:
    """Greedy decoding with KV cache of a batch whose longest row emits ``steps`` tokens (EOS included):
    the prompt once, then ``steps - 1`` one-position forwards over all rows (finished rows keep running)."""
    return ar_search_flops(lm_cfg, batch, prompt_len, steps, beams=1)


def ar_search_flops(lm_cfg, batch: int, prompt_len: int, steps: int, beams: int = 1) -> float:
    """Greedy (``beams = 1``) or beam-search decoding with KV cache that ran ``steps`` LM forwards: the prompt
    over ``batch`` rows, then ``steps - 1`` one-position forwards over ``batch * beams`` rows."""
    if beams < 1 or steps < 1:
        raise ValueError(f"ar_search_flops: beams={beams} and steps={steps} must be >= 1")
    h, f, layers, vocab, kv_dim = _llama(lm_cfg)
    total = batch * (layers * _ar_layer(prompt_len, prompt_len, h, f, kv_dim) + 2 * h * vocab)
    for i in range(1, steps):
        total += batch * beams * (layers * _ar_layer(1, prompt_len + i, h, f, kv_dim) + 2 * h * vocab)
    return total


def ar_train_flops(lm_cfg, batch: int, prompt_len: int, text_len: int) -> float:
    """One AR training step: 3x the forward over prompt + text, logits on the text positions (+ EOS)."""
    h, f, layers, vocab, kv_dim = _llama(lm_cfg)
    s = prompt_len + text_len
    return 3 * batch * (layers * _ar_layer(s, s, h, f, kv_dim) + 2 * h * vocab * (text_len + 1))


def whisper_encoder_flops(wcfg, batch: int, frames: int) -> float:
    """Whisper encoder over ``frames`` output frames per row (``wcfg``: a transformers WhisperConfig)."""
    d, n_mels = wcfg.d_model, wcfg.num_mel_bins
    conv = 2 * (2 * frames) * (3 * n_mels) * d + 2 * frames * (3 * d) * d
    return batch * (conv + wcfg.encoder_layers * layer_flops(frames, frames, d, wcfg.encoder_ffn_dim, mlp_mats=2))


def text_encoder_flops(hf_cfg, batch: int, length: int, pooler: bool = False) -> float:
    """The frozen text encoder over ``batch`` rows of ``length`` tokens (``hf_cfg``: its transformers config).

    T5 / mT5 / UMT5 (``model_type``): ``num_layers * (L (8 H I + m H F) + 4 L^2 I)``, ``I = num_heads * d_kv``,
    ``m = 6`` with a gated feed-forward, else 4. Otherwise BERT-like (``hidden_size``, ``intermediate_size``,
    ``num_hidden_layers``): ``layers * layer(L, L)`` with a plain MLP, plus ``2 H^2`` per row for the pooler
    (``pooler``: the loaded model has one, e.g. ``BertModel`` from ``AutoModel``).
    """
    if getattr(hf_cfg, "model_type", "") in ("t5", "mt5", "umt5"):
        h, ffn, inner = hf_cfg.d_model, hf_cfg.d_ff, hf_cfg.num_heads * hf_cfg.d_kv
        mats = 3 if getattr(hf_cfg, "is_gated_act", False) else 2
        per_layer = length * (8 * h * inner + 2 * mats * h * ffn) + 4 * length * length * inner
        return batch * hf_cfg.num_layers * per_layer
    h = hf_cfg.hidden_size
    per_row = hf_cfg.num_hidden_layers * layer_flops(length, length, h, hf_cfg.intermediate_size, mlp_mats=2)
    return batch * (per_row + (2 * h * h if pooler else 0))


def peak_flops(device: str | torch.device, dtype: str, override_tflops: float = 0.0) -> Optional[float]:
    """Peak FLOP/s for MFU: ``override_tflops`` when given, else the table for bf16/fp16 on a known GPU, else None."""
    if override_tflops > 0:
        return override_tflops * 1e12
    device = torch.device(device)
    if device.type != "cuda" or dtype not in ("bf16", "fp16"):
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None
