"""ELF samplers (docs/design.md §2.4): Euler ODE / churned SDE over a time grid, CFG, self-cond guidance, decoding.

The path constants ``sigma_n``, ``t_mean``, ``t_std`` (the logit_normal grid) and ``t_clamp`` are the trained
model's (:class:`~elfs2t.flow.objective.FlowConfig`; :class:`SamplerConfig` may override them). Start
``z = sigma_n eps`` at t = 0 and ``c = 0``; for each grid step ``t -> t_next`` (``h = t_next - t``):

* ``ode``: ``x_hat = F(z, t, c)``, ``v = (x_hat - z) / max(1 - t, t_clamp)``, ``z <- z + h v``;
* ``sde`` (churn ``gamma``): ``alpha = clip(1 - gamma h, 0, 1)``, go back to ``t_b = alpha t`` with
  ``z_b = alpha z + (1 - alpha) sigma_n eps``, then the Euler step from ``t_b`` to ``t_next``
  (``h_b = t_next - t_b``). Check: if ``z = t x + (1 - t) sigma_n e1``, then ``z_b`` has signal ``alpha t x =
  t_b x`` and noise coefficients summing to ``alpha (1 - t) + (1 - alpha) = 1 - t_b``, i.e. ``z_b`` is on the
  path at ``t_b`` when the two noises coincide; with independent noises its noise std is
  ``sigma_n sqrt(alpha^2 (1 - t)^2 + (1 - alpha)^2) <= sigma_n (1 - t_b)``, slightly less noisy than the
  marginal at ``t_b`` (ELF's formula, kept as is). ``gamma = 0`` gives ``alpha = 1``: exactly the ODE step;
* the last step (to t = 1) is always an ODE step; when ``1 - t >= t_clamp`` it lands exactly on ``x_hat``;
* after each step ``c <- x_hat`` (the guided one) -- only for a model trained with self-conditioning
  (``flow.self_cond_prob > 0``; one trained without it only ever saw ``c = 0``, so it keeps getting zeros); the self-cond guidance scale ``w`` goes in through the
  guidance tokens and costs no extra forward (``w = 1``: no self-cond guidance);
* classifier-free guidance with scale ``g``: ``v = v_u + g (v_c - v_u)`` and ``x_hat = x_u + g (x_c - x_u)``,
  the unconditional branch having zeros in the condition slots; both branches run in one batched forward.
  ``g = 1`` (or no condition) runs the conditional branch only.

Decoding: one forward in decoding mode at t = 1 (self-cond zeros, guidance 1) on the final ``z``, then argmax; cutting at the first EOS is
``TextLatentSpace.decode``'s job. ``read_level`` lambda < 1 reads ``lambda z + (1 - lambda) sigma_d eps'`` instead
(``sigma_d``: the model's decoding-branch noise scale; ``eps'`` drawn after the sampler's noise): the final latents
nearer the low signal levels the decoding rows were trained at, where the token head weighs them against the audio
instead of taking them as they are (lambda 0: the readout of noise, the flow ignored).

Prefix cache: when the denoiser has ``prefix_attention: self`` (its condition attends only to itself) and
``prefix_cache`` is on, the condition's keys/values at every layer are computed once per batch
(:func:`build_condition_cache`; ``2B`` rows ``[cond | zeros]`` with CFG) and every step -- and the decoding
forward, through :func:`generate_ids` -- runs only the prefix and text positions against them. The
outputs are those of the uncached sampler up to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import nn

from elfs2t.config import config_check
from elfs2t.flow.objective import FlowConfig, velocity
from elfs2t.flow.time import time_grid
from elfs2t.flow.slots import ConditionCache, TextSlots, slot_kwargs, stack_slots

__all__ = ["SamplerConfig", "supports_prefix_cache", "build_condition_cache", "guided_forward", "sample_latents",
           "decoding_forward", "decode_tokens", "generate_ids"]


@dataclass(kw_only=True)
class SamplerConfig:
    """How to integrate the flow: steps, time grid, ODE / SDE, guidance. The noise and time constants of the path
    (``sigma_n``, ``t_mean``, ``t_std``, ``t_clamp``) and whether to feed the self-conditioning input come from the
    trained model's :class:`~elfs2t.flow.objective.FlowConfig`; the four constants can be overridden here (null:
    the model's), which the caller logs."""

    steps: int = 8
    """Number of flow steps N (N network forwards, plus one decoding forward)."""
    method: Literal["ode", "sde"] = "ode"
    """Euler ODE steps, or SDE steps with churn gamma (the last step is always ODE)."""
    gamma: float = 0.0
    """SDE churn: alpha = clip(1 - gamma h, 0, 1) per step of size h."""
    grid: Literal["logit_normal", "uniform"] = "logit_normal"
    """Time grid: N-1 sorted draws of the training time distribution plus 0 and 1, or uniform."""
    guidance: float = 1.0
    """Classifier-free guidance scale g (1: conditional only, no extra forward)."""
    self_cond_scale: float = 1.0
    """Self-conditioning guidance scale w fed to the guidance tokens (1: none)."""
    seed: int = 0
    """Seed of the logit_normal grid, and of the start and churn noise when no generator is given."""
    prefix_cache: bool = True
    """Reuse the condition's keys/values across steps when the denoiser has prefix_attention=self
    (no effect otherwise; same outputs up to float rounding)."""
    t_mean: Optional[float] = None
    """Override of the model's ``flow.t_mean`` for the logit_normal grid (null: the model's)."""
    t_std: Optional[float] = None
    """Override of the model's ``flow.t_std`` for the logit_normal grid (null: the model's)."""
    sigma_n: Optional[float] = None
    """Override of the model's ``flow.sigma_n``: the start z = sigma_n eps and the SDE churn (null: the model's)."""
    t_clamp: Optional[float] = None
    """Override of the model's ``flow.t_clamp``: velocities divide by max(1 - t, t_clamp) (null: the model's)."""

    def validate(self) -> None:
        config_check(self.steps >= 1, "steps", self.steps, "must be >= 1")
        config_check(self.gamma >= 0, "gamma", self.gamma, "must be >= 0")
        config_check(self.t_std is None or self.t_std > 0, "t_std", self.t_std, "must be > 0 (or null)")
        config_check(self.sigma_n is None or self.sigma_n > 0, "sigma_n", self.sigma_n, "must be > 0 (or null)")
        config_check(self.t_clamp is None or 0 < self.t_clamp <= 1, "t_clamp", self.t_clamp, "must be in (0, 1] (or null)")
        config_check(self.self_cond_scale > 0, "self_cond_scale", self.self_cond_scale, "must be > 0")

    def overrides(self) -> dict[str, float]:
        """The path constants this config overrides (key -> value), for the log and the decode tag."""
        return {k: getattr(self, k) for k in PATH_CONSTANTS if getattr(self, k) is not None}

    def constants(self, flow: FlowConfig) -> dict[str, float]:
        """``sigma_n``, ``t_mean``, ``t_std``, ``t_clamp``: the model's ``flow`` values unless overridden here."""
        return {k: getattr(flow, k) if getattr(self, k) is None else getattr(self, k) for k in PATH_CONSTANTS}


#: The path constants a sampler takes from the model's FlowConfig (SamplerConfig may override them).
PATH_CONSTANTS = ("sigma_n", "t_mean", "t_std", "t_clamp")


def supports_prefix_cache(denoiser: nn.Module) -> bool:
    """True when ``denoiser`` can cache its condition (an ELF denoiser with ``prefix_attention: self``)."""
    cfg = getattr(denoiser, "cfg", None)
    return getattr(cfg, "prefix_attention", "full") == "self" and hasattr(denoiser, "cache_condition")


@torch.no_grad()
def build_condition_cache(
    denoiser: nn.Module,
    cond: torch.Tensor,
    cond_mask: Optional[torch.Tensor] = None,
    *,
    guidance: float = 1.0,
    cache: Optional[ConditionCache] = None,
) -> Optional[ConditionCache]:
    """The condition's per-layer keys/values for the sampler: rows ``[cond | zeros]`` (``2B``) when
    ``guidance != 1`` (the unconditional CFG branch), else ``cond``'s ``B`` rows; ``None`` when the
    denoiser cannot cache (``prefix_attention: full``). ``cache``: ``cond``'s rows already computed (e.g. by the
    CTC draft that placed the text slots), so that only the zero row is run here.

    The zero condition is computed for ONE row and shared: with an all-zero input every slot of every
    row carries the same hidden state at every layer (each slot attends, among identical values, only
    to the condition), so rows differ only in their keys' RoPE positions (the same ``0 .. C-1``) and in
    which slots are real (``cond_mask``, applied when the text attends to them).
    """
    if not supports_prefix_cache(denoiser):
        return None
    if cache is None:
        cache = denoiser.cache_condition(cond, cond_mask)
    elif cache.batch_size != cond.shape[0]:
        raise ValueError(f"sampler: the given condition cache has {cache.batch_size} rows, the condition {cond.shape[0]}")
    if guidance == 1.0:
        return cache
    b, n_cond = cond.shape[:2]
    zero = denoiser.cache_condition(torch.zeros_like(cond[:1]), torch.ones(1, n_cond, dtype=torch.bool, device=cond.device))
    kv = tuple((torch.cat([k, zk.expand(b, -1, -1, -1)]), torch.cat([v, zv.expand(b, -1, -1, -1)]))
               for (k, v), (zk, zv) in zip(cache.kv, zero.kv))
    return ConditionCache(kv=kv, cond_mask=torch.cat([cache.cond_mask, cache.cond_mask], dim=0))


def guided_forward(
    denoiser: nn.Module,
    z: torch.Tensor,
    t: torch.Tensor,
    c: torch.Tensor,
    w: torch.Tensor,
    *,
    guidance: float = 1.0,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    cond_cache: Optional[ConditionCache] = None,
    slots: Optional[TextSlots] = None,
    slots_uncond: Optional[TextSlots] = None,
) -> torch.Tensor:
    """CFG-guided ``x_hat (B, L, d)``: ``x_u + g (x_c - x_u)`` from ONE forward over ``2B`` rows.

    Guiding ``x_hat`` is the same as guiding ``v`` (``v`` is affine in ``x_hat`` for fixed ``z, t``).
    With ``g == 1`` or no condition only the conditional branch runs. ``cond_cache`` (from
    :func:`build_condition_cache` with the same ``guidance``: ``2B`` rows with CFG, ``B`` without)
    replaces ``cond`` / ``cond_mask``. ``slots``: the text slots' positions and extra inputs (None: the denoiser's
    own); ``slots_uncond``: those of the unconditional branch, where they differ (e.g. a model that placed the text
    slots of its condition-dropped training rows at its prior positions; :func:`~elfs2t.flow.slots.stack_slots`).
    """
    B = z.shape[0]
    pos = slot_kwargs(slots)
    if cond_cache is not None:
        rows = B if guidance == 1.0 else 2 * B
        if cond_cache.batch_size != rows:
            raise ValueError(f"guided_forward: cond_cache has {cond_cache.batch_size} rows, expected {rows} for "
                             f"{B} rows at guidance {guidance} (build it with build_condition_cache)")
        cond = cond_mask = None
    elif cond is None or guidance == 1.0:
        return denoiser(z, t, self_cond=c, guidance=w, decode=None, cond=cond, cond_mask=cond_mask,
                        text_mask=text_mask, **pos).x_hat
    if guidance == 1.0:  # cached, conditional branch only
        return denoiser(z, t, self_cond=c, guidance=w, decode=None, text_mask=text_mask, cond_cache=cond_cache,
                        **pos).x_hat

    def two(v: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return None if v is None else torch.cat([v, v], dim=0)

    pos2 = slot_kwargs(stack_slots(slots, slots_uncond))
    if cond_cache is not None:
        x2 = denoiser(two(z), two(t), self_cond=two(c), guidance=two(w), decode=None, text_mask=two(text_mask),
                      cond_cache=cond_cache, **pos2).x_hat
    else:
        cond2 = torch.cat([cond, torch.zeros_like(cond)], dim=0)  # (2B, C, H): conditional | unconditional
        x2 = denoiser(two(z), two(t), self_cond=two(c), guidance=two(w), decode=None, cond=cond2,
                      cond_mask=two(cond_mask), text_mask=two(text_mask), **pos2).x_hat
    x_c, x_u = x2[:B], x2[B:]
    return x_u + guidance * (x_c - x_u)


@torch.no_grad()
def sample_latents(
    denoiser: nn.Module,
    cfg: SamplerConfig,
    flow: FlowConfig,
    *,
    batch_size: int,
    length: int,
    latent_dim: int,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    cond_cache: Optional[ConditionCache] = None,
    x_init: Optional[torch.Tensor] = None,
    t_start: float = 0.0,
    slots: Optional[TextSlots] = None,
    slots_uncond: Optional[TextSlots] = None,
) -> torch.Tensor:
    """Run the sampler; returns the final latents ``z (B, L, d)`` to decode.

    ``flow``: the trained model's :class:`~elfs2t.flow.objective.FlowConfig` -- the path constants (unless ``cfg``
    overrides them) and whether the model was trained with self-conditioning (``self_cond_prob > 0``): only then is
    ``c <- x_hat`` fed back after each step; a model trained without it keeps ``c = 0``, what it always saw.

    ``x_init (B, L, d)`` with ``t_start > 0``: a draft start -- ``z = t_start x_init + (1 - t_start) sigma_n eps`` at
    ``t_start``, the grid ``t_i`` mapped to ``t_start + (1 - t_start) t_i``; the self-conditioning input starts at
    zeros as from noise. Noise is drawn on CPU from ``generator`` (default: seeded with ``cfg.seed``), so results
    do not depend on the device. ``cond (B, C, H)`` / ``cond_mask (B, C)``: optional condition tokens. With
    ``cfg.prefix_cache`` and a denoiser that supports it, the condition cache is built here once (or ``cond_cache``
    from :func:`build_condition_cache` is used) and reused at every step. ``slots`` / ``slots_uncond``: see
    :func:`guided_forward`.
    """
    try:
        param = next(denoiser.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    k = cfg.constants(flow)
    sigma_n, t_clamp = k["sigma_n"], k["t_clamp"]
    feed_self_cond = flow.self_cond_prob > 0
    gen = generator if generator is not None else torch.Generator().manual_seed(cfg.seed)
    B, L, d = batch_size, length, latent_dim
    grid = time_grid(cfg.steps, cfg.grid, mean=k["t_mean"], std=k["t_std"], seed=cfg.seed)
    z = (sigma_n * torch.randn((B, L, d), generator=gen)).to(device, dtype)  # (B, L, d)
    if x_init is not None:
        if tuple(x_init.shape) != (B, L, d):
            raise ValueError(f"sampler: draft latents x_init have shape {tuple(x_init.shape)}, expected {(B, L, d)}")
        if not 0.0 <= t_start < 1.0:
            raise ValueError(f"sampler: t_start={t_start} must be in [0, 1)")
        z = t_start * x_init.to(device, dtype) + (1.0 - t_start) * z
        grid = t_start + (1.0 - t_start) * grid
    elif t_start != 0.0:
        raise ValueError(f"sampler: t_start={t_start} needs draft latents x_init")
    grid = grid.tolist()
    c = torch.zeros_like(z)
    w = torch.full((B,), cfg.self_cond_scale, device=device, dtype=dtype)
    if cond_cache is None and cond is not None and cfg.prefix_cache:
        cond_cache = build_condition_cache(denoiser, cond, cond_mask, guidance=cfg.guidance)
    for i in range(cfg.steps):
        t, t_next = grid[i], grid[i + 1]
        last = i == cfg.steps - 1
        if cfg.method == "sde" and not last:
            alpha = min(max(1.0 - cfg.gamma * (t_next - t), 0.0), 1.0)
            noise = torch.randn((B, L, d), generator=gen).to(device, dtype)
            z = alpha * z + (1.0 - alpha) * sigma_n * noise
            t = alpha * t
        t_vec = torch.full((B,), t, device=device, dtype=dtype)
        x_hat = guided_forward(denoiser, z, t_vec, c, w, guidance=cfg.guidance, cond=cond, cond_mask=cond_mask,
                               text_mask=text_mask, cond_cache=cond_cache, slots=slots, slots_uncond=slots_uncond)
        z = z + (t_next - t) * velocity(x_hat, z, t_vec, t_clamp)
        if feed_self_cond:
            c = x_hat
    return z


@torch.no_grad()
def decoding_forward(
    denoiser: nn.Module,
    z: torch.Tensor,
    *,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    cond_cache: Optional[ConditionCache] = None,
    slots: Optional[TextSlots] = None,
):
    """One decoding-mode forward at t = 1 on ``z (B, L, d)`` with the condition (no self-conditioning input,
    guidance 1): the denoiser's output, whose ``hidden`` the token head reads (and ``cond_hidden``, with the
    condition, the CTC readout). ``cond_cache`` (``B`` rows, the conditional ones) replaces ``cond`` /
    ``cond_mask``; ``slots``: the text slots' positions and extra inputs (see :func:`guided_forward`)."""
    B = z.shape[0]
    ones = torch.ones(B, device=z.device, dtype=z.dtype)
    if cond_cache is not None:
        condition = dict(cond_cache=cond_cache)
    else:
        condition = dict(cond=cond, cond_mask=cond_mask)
    condition.update(slot_kwargs(slots))
    return denoiser(z, ones, self_cond=torch.zeros_like(z), guidance=ones,
                    decode=torch.ones(B, dtype=torch.bool, device=z.device), text_mask=text_mask, **condition)


@torch.no_grad()
def decode_tokens(
    denoiser: nn.Module,
    z: torch.Tensor,
    *,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    cond_cache: Optional[ConditionCache] = None,
    vocab: Optional[torch.Tensor] = None,
    slots: Optional[TextSlots] = None,
) -> torch.Tensor:
    """:func:`decoding_forward` on ``z (B, L, d)``, then the token head's argmax ids ``(B, L)``.

    ``vocab (K,)``: the argmax runs over these token ids only (a shortlist), None: the full vocabulary.
    """
    out = decoding_forward(denoiser, z, cond=cond, cond_mask=cond_mask, text_mask=text_mask, cond_cache=cond_cache,
                           slots=slots)
    best = denoiser.token_logits(out.hidden, vocab).argmax(dim=-1)
    return best if vocab is None else vocab[best]


@torch.no_grad()
def generate_ids(
    denoiser: nn.Module,
    cfg: SamplerConfig,
    flow: FlowConfig,
    *,
    batch_size: int,
    length: int,
    latent_dim: int,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    vocab: Optional[torch.Tensor] = None,
    x_init: Optional[torch.Tensor] = None,
    t_start: float = 0.0,
    slots: Optional[TextSlots] = None,
    slots_uncond: Optional[TextSlots] = None,
    read_level: float = 1.0,
    cond_cache: Optional[ConditionCache] = None,
) -> torch.Tensor:
    """:func:`sample_latents` then :func:`decode_tokens`: token ids ``(B, L)`` (not yet cut at EOS).

    With ``cfg.prefix_cache`` and a caching denoiser, one condition cache serves every step and the
    decoding forward (its conditional rows). ``vocab``: see :func:`decode_tokens`; ``flow``, ``x_init``,
    ``t_start``: see :func:`sample_latents`; ``slots`` / ``slots_uncond``: see :func:`guided_forward`
    (the decoding forward is conditional: ``slots``). ``read_level`` lambda in [0, 1]: the decoding forward reads
    ``lambda z + (1 - lambda) flow.sigma_d eps'`` (module docstring; 1: ``z`` itself). ``cond_cache``: the
    conditional rows' cache if the caller has it (:func:`build_condition_cache`'s ``cache``).
    """
    if not 0.0 <= read_level <= 1.0:
        raise ValueError(f"sampler: read_level={read_level} must be in [0, 1]")
    cache = None
    if cond is not None and cfg.prefix_cache:
        cache = build_condition_cache(denoiser, cond, cond_mask, guidance=cfg.guidance, cache=cond_cache)
    z = sample_latents(denoiser, cfg, flow, batch_size=batch_size, length=length, latent_dim=latent_dim, cond=cond,
                       cond_mask=cond_mask, text_mask=text_mask, generator=generator, cond_cache=cache, x_init=x_init,
                       t_start=t_start, slots=slots, slots_uncond=slots_uncond)
    if read_level != 1.0:  # drawn on CPU after the sampler's noise, like it (results do not depend on the device)
        gen = generator if generator is not None else torch.Generator().manual_seed(cfg.seed + 1)
        eps = torch.randn(tuple(z.shape), generator=gen).to(z.device, z.dtype)
        z = read_level * z + (1.0 - read_level) * flow.sigma_d * eps
    if cache is not None:
        return decode_tokens(denoiser, z, text_mask=text_mask, cond_cache=cache.rows(slice(0, batch_size)), vocab=vocab,
                             slots=slots)
    return decode_tokens(denoiser, z, cond=cond, cond_mask=cond_mask, text_mask=text_mask, vocab=vocab, slots=slots)
