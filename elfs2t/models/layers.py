"""Building blocks of the ELF denoiser: RMSNorm, interleaved RoPE, attention, SwiGLU, embedders.

Module and parameter names follow the released ELF PyTorch code (``blocks.<i>.attn.qkv``,
``blocks.<i>.mlp.w12``, ``final_layer.norm_final`` ...), so that released checkpoints load through an
explicit identity key table (see :mod:`elfs2t.models.elf_checkpoint`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "RMSNorm",
    "rope_tables",
    "apply_rope",
    "KV",
    "sdpa_mask",
    "Attention",
    "SwiGLU",
    "ElfBlock",
    "BottleneckProj",
    "ScalarEmbedder",
    "FlowHead",
    "sinusoidal_embedding",
]


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight``, computed in float32, returned in the input dtype."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., dim)`` -> same shape."""
        dtype = x.dtype
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (self.weight.float() * xf).to(dtype)


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float = 1e4) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary cos/sin tables for integer ``positions (B, S)``; negative positions are left unrotated.

    Frequencies ``theta^(-2i/head_dim)`` for pair ``i``, each repeated for the two members of an
    interleaved pair ``(x[2i], x[2i+1])``. Unrotated positions get ``cos = 1, sin = 0``.
    Returns ``cos, sin`` of shape ``(B, S, head_dim)`` in float32.
    """
    if head_dim % 2:
        raise ValueError(f"rope_tables: head_dim={head_dim} must be even")
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.clamp(min=0).float()[..., None] * freqs  # (B, S, hd/2)
    angles = angles.repeat_interleave(2, dim=-1)  # (B, S, hd): pairs share a frequency
    cos, sin = angles.cos(), angles.sin()
    rotated = (positions >= 0)[..., None]
    cos = torch.where(rotated, cos, torch.ones_like(cos))
    sin = torch.where(rotated, sin, torch.zeros_like(sin))
    return cos, sin


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs: ``(x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin)``.

    ``x (B, heads, S, hd)``, ``cos, sin (B, S, hd)``.
    """
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    rot = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # rotate_half, interleaved
    cos = cos[:, None].to(x.dtype)
    sin = sin[:, None].to(x.dtype)
    return x * cos + rot * sin


KV = tuple[torch.Tensor, torch.Tensor]
"""Keys and values of one attention layer, each ``(B, heads, S, hd)`` (after QK-norm and RoPE)."""


def sdpa_mask(mask: torch.Tensor) -> torch.Tensor:
    """A boolean attention mask for SDPA (True = attend): ``(B, S_k)`` key mask -> ``(B, 1, 1, S_k)``,
    ``(B, S_q, S_k)`` per-query mask -> ``(B, 1, S_q, S_k)``."""
    if mask.dim() == 2:
        return mask[:, None, None, :]
    if mask.dim() == 3:
        return mask[:, None]
    raise ValueError(f"attention mask must be (B, S_k) or (B, S_q, S_k), got {tuple(mask.shape)}")


class Attention(nn.Module):
    """Bidirectional multi-head attention: fused qkv (with bias), per-head QK-RMSNorm, RoPE, SDPA.

    ``extra_kv`` appends keys/values computed elsewhere (a cached condition, see
    :meth:`elfs2t.models.denoiser.ElfDenoiser.cache_condition`) after this sequence's own keys; the
    mask then covers ``S + S_extra`` keys. ``return_kv`` also returns this sequence's own ``(k, v)``.
    """

    def __init__(self, dim: int, heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.q_norm = RMSNorm(self.head_dim, eps)
        self.k_norm = RMSNorm(self.head_dim, eps)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor,
        extra_kv: KV | None = None,
        return_kv: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, KV]:
        """``x (B, S, H)``, rope tables ``(B, S, hd)``, ``mask`` bool (True = attend): ``(B, S_k)`` keys or
        ``(B, S, S_k)`` per query, ``S_k = S (+ S_extra)`` -> ``(B, S, H)`` (and ``(k, v)`` with ``return_kv``)."""
        b, s, h = x.shape
        qkv = self.qkv(x).reshape(b, s, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, S, hd)
        q = apply_rope(self.q_norm(q), cos, sin)
        k = apply_rope(self.k_norm(k), cos, sin)
        own = (k, v)
        if extra_kv is not None:
            k = torch.cat([k, extra_kv[0].to(k.dtype)], dim=2)  # (B, heads, S + S_extra, hd)
            v = torch.cat([v, extra_kv[1].to(v.dtype)], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask(mask))
        out = self.proj(out.transpose(1, 2).reshape(b, s, h))
        return (out, own) if return_kv else out


class SwiGLU(nn.Module):
    """``w3(silu(a) * g)`` with ``[a | g] = w12(x)`` (fused, with bias), inner width ``inner``."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * inner, bias=True)
        self.w3 = nn.Linear(inner, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., H) -> (..., H)``."""
        a, g = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * g)


class ElfBlock(nn.Module):
    """Pre-norm transformer block, residuals without gating: ``x + drop(attn(norm1 x))``, then
    ``x + drop(mlp(norm2 x))`` (residual dropout, active in training only; 0 = ELF's block)."""

    def __init__(self, dim: int, heads: int, ffn_inner: int, eps: float = 1e-6, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = RMSNorm(dim, eps)
        self.attn = Attention(dim, heads, eps)
        self.norm2 = RMSNorm(dim, eps)
        self.mlp = SwiGLU(dim, ffn_inner)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor,
        extra_kv: KV | None = None,
        return_kv: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, KV]:
        """``x (B, S, H)`` -> ``(B, S, H)`` (and the attention's own ``(k, v)`` with ``return_kv``);
        ``mask`` / ``extra_kv`` as in :class:`Attention`."""
        a = self.attn(self.norm1(x), cos, sin, mask, extra_kv=extra_kv, return_kv=return_kv)
        if return_kv:
            a, kv = a
        x = x + self.drop(a)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return (x, kv) if return_kv else x


class BottleneckProj(nn.Module):
    """Text input projection ``d -> bottleneck (no bias) -> H`` (``proj1``, ``proj2``)."""

    def __init__(self, latent_dim: int, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.proj1 = nn.Linear(latent_dim, bottleneck, bias=False)
        self.proj2 = nn.Linear(bottleneck, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., d) -> (..., H)``."""
        return self.proj2(self.proj1(x))


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 1e4) -> torch.Tensor:
    """``t (B,)`` -> ``(B, dim)`` features ``[cos(t f_i) | sin(t f_i)]``, ``f_i = max_period^(-i/(dim/2))``.

    ``t`` is used raw (in [0, 1] for flow times); an odd ``dim`` gets one zero column at the end.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class ScalarEmbedder(nn.Module):
    """Scalar (time t or guidance scale w) -> ``(B, H)``: sinusoidal features, ``Linear -> SiLU -> Linear``."""

    def __init__(self, hidden: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``t (B,)`` -> ``(B, H)``."""
        return self.mlp(sinusoidal_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype))


class FlowHead(nn.Module):
    """``Linear(norm_final(h))``: RMSNorm then ``H -> d``, zero-initialised so that ``x_hat = 0`` at init."""

    def __init__(self, hidden: int, latent_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_final = RMSNorm(hidden, eps)
        self.linear = nn.Linear(hidden, latent_dim, bias=True)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(..., H) -> (..., d)``."""
        return self.linear(self.norm_final(h))
