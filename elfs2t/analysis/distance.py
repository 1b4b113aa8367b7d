"""Distances between word vectors: pairwise, to the nearest words of a vocabulary, random baselines.

Metrics (:data:`METRICS`): ``cosine`` distance ``1 - a.b / (|a| |b|)`` and Euclidean ``l2`` ``|a - b|``.

The vocabulary is given as *keys*: vectors with the index of the word type each belongs to. A word type may
have one key (context-free spaces: the word's vector) or many (in-context latents: one per occurrence in
the vocabulary text); the distance from a query to a type is the distance to its *closest* key (keys of
the query's own sentence left out, so that context shared with the query does not count). Nearest
neighbours of a query are types ranked by that distance, the query's own type excluded::

    dists, ranks = nearest(q, keys, key_type, num_types, "cosine", exclude=own, k_max=10, targets=hyp)
    # dists (Q, 10): distance to the 1st..10th nearest other type; ranks (Q,): how many other types are
    # strictly closer than the target type (0 = the target is the nearest), -1 when the target has no key
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["METRICS", "pair_distance", "distance_matrix", "type_distances", "nearest", "random_pairs", "summarize",
           "percentile_of"]

METRICS = ("cosine", "l2")
_MAX_CELLS = 20_000_000  # query chunk x keys per distance matrix


def _check(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; choose one of {METRICS}")


def pair_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """Row-wise distance between ``a (N, d)`` and ``b (N, d)`` -> ``(N,)``."""
    _check(metric)
    a, b = a.double(), b.double()
    if metric == "cosine":
        return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-12)
    return (a - b).norm(dim=-1)


def distance_matrix(q: torch.Tensor, k: torch.Tensor, metric: str) -> torch.Tensor:
    """All distances between ``q (Q, d)`` and ``k (K, d)`` -> ``(Q, K)``."""
    _check(metric)
    q, k = q.double(), k.double()
    if metric == "cosine":
        return 1.0 - F.normalize(q, dim=-1, eps=1e-12) @ F.normalize(k, dim=-1, eps=1e-12).T
    return torch.cdist(q, k)


def type_distances(q: torch.Tensor, keys: torch.Tensor, key_type: torch.Tensor, num_types: int, metric: str,
                   q_group: Optional[torch.Tensor] = None, key_group: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(Q, num_types)``: distance from each query to the closest key of each type (inf: a type without keys).

    With ``q_group (Q,)`` and ``key_group (K,)`` (e.g. sentence indices), keys of a query's own group are ignored.
    """
    d = distance_matrix(q, keys, metric)  # (Q, K)
    if q_group is not None and key_group is not None:
        d = d.masked_fill(q_group[:, None] == key_group[None, :], math.inf)
    out = torch.full((q.shape[0], num_types), math.inf, dtype=d.dtype)
    return out.scatter_reduce_(1, key_type.long()[None, :].expand_as(d), d, reduce="amin", include_self=True)


def nearest(
    q: torch.Tensor,
    keys: torch.Tensor,
    key_type: torch.Tensor,
    num_types: int,
    metric: str,
    *,
    exclude: torch.Tensor,
    k_max: int,
    targets: Optional[torch.Tensor] = None,
    q_group: Optional[torch.Tensor] = None,
    key_group: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest other types of each query: ``(Q, k_max)`` distances (inf-padded) and the rank of ``targets`` (``(Q,)``).

    ``exclude`` (Q,) is each query's own type (-1: none); ``targets`` (Q,) a type whose rank is wanted (-1: none).
    The rank counts the other types strictly closer than the target; it is -1 when there is no target or it
    has no key. ``q_group`` / ``key_group``: see :func:`type_distances`.
    """
    n = q.shape[0]
    dists = torch.full((n, k_max), math.inf, dtype=torch.float64)
    ranks = torch.full((n,), -1, dtype=torch.long)
    step = max(1, _MAX_CELLS // max(1, keys.shape[0]))
    for s in range(0, n, step):
        group = None if q_group is None else q_group[s: s + step]
        d = type_distances(q[s: s + step], keys, key_type, num_types, metric, group, key_group)  # (c, V)
        rows = torch.arange(d.shape[0])
        own = exclude[s: s + step].long()
        has_own = own >= 0
        d[rows[has_own], own[has_own]] = math.inf
        kk = min(k_max, num_types)
        if kk:
            dists[s: s + d.shape[0], :kk] = d.topk(kk, dim=1, largest=False).values
        if targets is not None:
            tgt = targets[s: s + step].long()
            ok = (tgt >= 0) & (tgt != own)
            tgt_d = d[rows, tgt.clamp(min=0)]
            ok &= torch.isfinite(tgt_d)
            r = (d < tgt_d[:, None]).sum(1)
            ranks[s: s + d.shape[0]] = torch.where(ok, r, torch.full_like(r, -1))
    return dists, ranks


def random_pairs(words: list[str], n: int, generator: torch.Generator,
                 groups: Optional[list[int]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` random index pairs ``(a, b)`` into ``words`` with ``words[a] != words[b]`` (uniform over occurrences);
    with ``groups`` (e.g. the sentence of each word), only pairs from different groups."""
    m = len(words)
    if m < 2 or len(set(words)) < 2:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    word_id = {w: i for i, w in enumerate(sorted(set(words)))}
    ids = torch.tensor([word_id[w] for w in words])
    grp = torch.tensor(groups) if groups is not None else None
    a_all, b_all = [], []
    got = 0
    for _ in range(100):  # rejection sampling; a few rounds suffice unless one word dominates
        a = torch.randint(m, (2 * n,), generator=generator)
        b = torch.randint(m, (2 * n,), generator=generator)
        keep = ids[a] != ids[b]
        if grp is not None:
            keep &= grp[a] != grp[b]
        a_all.append(a[keep])
        b_all.append(b[keep])
        got += int(keep.sum())
        if got >= n:
            break
    return torch.cat(a_all)[:n], torch.cat(b_all)[:n]


def summarize(x: np.ndarray | torch.Tensor) -> dict[str, float]:
    """Count, mean, median, 10th and 90th percentile of the finite values (NaN when there are none)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0, "mean": math.nan, "median": math.nan, "p10": math.nan, "p90": math.nan}
    return {"n": int(x.size), "mean": float(x.mean()), "median": float(np.median(x)),
            "p10": float(np.percentile(x, 10)), "p90": float(np.percentile(x, 90))}


def percentile_of(values: np.ndarray, reference: np.ndarray) -> float:
    """Mean over finite ``values`` of the share (in %) of finite ``reference`` values strictly below each one."""
    v = np.asarray(values, dtype=np.float64)
    r = np.sort(np.asarray(reference, dtype=np.float64))
    v, r = v[np.isfinite(v)], r[np.isfinite(r)]
    if v.size == 0 or r.size == 0:
        return math.nan
    return float(100.0 * np.searchsorted(r, v, side="left").mean() / r.size)
