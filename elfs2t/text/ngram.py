"""A token n-gram language model (interpolated Kneser-Ney), for shallow fusion in CTC prefix beam search.

The tokens are integer ids (the text encoder's, so that one model serves any CTC shortlist); a sentence is padded
with ``order - 1`` sentence starts and ends with an end-of-sentence token. The highest order uses raw counts, the
lower orders Kneser-Ney continuation counts (in how many contexts a suffix was seen), each order interpolated with
the next lower one by absolute discounting, and the unigrams with a uniform distribution over ``vocab_size``
tokens, so that a token the training text never had keeps a small probability: a decoder fused with this model can
still write a word its training text lacks.

The model is a JSON file (:meth:`NgramLM.save`, :meth:`NgramLM.load`), small for the corpora a recipe trains one on.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["BOS", "EOS", "NGRAM_FILE", "NgramLM", "attach_ngram"]

BOS = -1
"""The sentence-start token of the model's contexts (never predicted)."""
EOS = -2
"""The end-of-sentence token (predicted after a sentence's last token)."""
NGRAM_FILE = "ngram.json"
"""An experiment's (or exported model's) n-gram model of its training texts, in its folder."""
_FORMAT = "elfs2t-ngram-v1"


@dataclass
class _Order:
    """One order's counts: ``(context, token) -> count`` and ``context -> (total count, distinct tokens)``."""

    counts: dict[tuple[tuple[int, ...], int], int]
    contexts: dict[tuple[int, ...], tuple[int, int]]


def _contexts(counts: dict[tuple[tuple[int, ...], int], int]) -> dict[tuple[int, ...], tuple[int, int]]:
    out: dict[tuple[int, ...], list[int]] = defaultdict(lambda: [0, 0])
    for (ctx, _), c in counts.items():
        out[ctx][0] += c
        out[ctx][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


class NgramLM:
    """Interpolated Kneser-Ney n-gram model over integer tokens (module docstring)."""

    def __init__(self, order: int, vocab_size: int, discount: float,
                 counts: list[dict[tuple[tuple[int, ...], int], int]]) -> None:
        if order < 1:
            raise ValueError(f"NgramLM: order={order} must be >= 1")
        if not 0 < discount < 1:
            raise ValueError(f"NgramLM: discount={discount} must be in (0, 1)")
        if vocab_size < 1:
            raise ValueError(f"NgramLM: vocab_size={vocab_size} must be >= 1")
        if len(counts) != order:
            raise ValueError(f"NgramLM: {len(counts)} count tables for order {order}")
        self.order, self.vocab_size, self.discount = order, vocab_size, discount
        self._orders = [_Order(c, _contexts(c)) for c in counts]  # index k: context length k
        self.logprob = lru_cache(maxsize=1 << 20)(self._logprob)

    @classmethod
    def train(cls, sentences: Iterable[Sequence[int]], order: int = 3, vocab_size: int | None = None,
              discount: float = 0.75) -> "NgramLM":
        """Counts of ``sentences`` (token ids, no sentence markers). ``vocab_size``: the number of tokens the
        uniform floor spreads over (at least the distinct tokens seen, plus the end of sentence; the default)."""
        if order < 1:
            raise ValueError(f"NgramLM: order={order} must be >= 1")
        raw: dict[tuple[tuple[int, ...], int], int] = defaultdict(int)
        seen: set[int] = set()
        n_sent = 0
        for sent in sentences:
            toks = [int(t) for t in sent]
            if any(t < 0 for t in toks):
                raise ValueError(f"NgramLM.train: token ids must be >= 0 (got {min(toks)})")
            seen.update(toks)
            padded = [BOS] * (order - 1) + toks + [EOS]
            for i in range(order - 1, len(padded)):
                raw[(tuple(padded[i - order + 1:i]), padded[i])] += 1
            n_sent += 1
        if n_sent == 0:
            raise ValueError("NgramLM.train: no sentences")
        needed = len(seen) + 1
        if vocab_size is None:
            vocab_size = needed
        elif vocab_size < needed:
            raise ValueError(f"NgramLM.train: vocab_size={vocab_size} is under the {needed} tokens of the text "
                             "(its distinct tokens and the end of sentence)")
        counts: list[dict] = [dict() for _ in range(order)]
        counts[order - 1] = dict(raw)
        for k in range(order - 2, -1, -1):  # continuation counts: distinct left extensions of each (k+1)-gram
            cont: dict[tuple[tuple[int, ...], int], int] = defaultdict(int)
            for (ctx, tok) in counts[k + 1]:
                cont[(ctx[1:], tok)] += 1
            counts[k] = dict(cont)
        return cls(order, vocab_size, discount, counts)

    def _logprob(self, context: tuple[int, ...], token: int) -> float:
        """``log P(token | context)`` (natural log); ``context`` the preceding tokens (any length, the last
        ``order - 1`` are used; shorter ones are padded with :data:`BOS`)."""
        n = self.order - 1
        ctx = tuple(context[-n:]) if n else ()
        if len(ctx) < n:
            ctx = (BOS,) * (n - len(ctx)) + ctx
        p = 1.0 / self.vocab_size
        for k in range(0, n + 1):  # from the unigrams up, each order interpolated with the one below
            h = ctx[len(ctx) - k:] if k else ()
            order = self._orders[k]
            stats = order.contexts.get(h)
            if stats is None:
                continue  # an unseen context: this order keeps the lower one's estimate
            total, types = stats
            c = order.counts.get((h, token), 0)
            p = max(c - self.discount, 0.0) / total + self.discount * types / total * p
        return math.log(p)

    def sentence_logprob(self, tokens: Sequence[int]) -> float:
        """``log P`` of a whole sentence, its end included."""
        toks = [int(t) for t in tokens]
        return sum(self.logprob(tuple(toks[:i]), t) for i, t in enumerate(toks + [EOS]))

    def save(self, path: str | Path) -> None:
        tables = [[[list(ctx), tok, c] for (ctx, tok), c in sorted(o.counts.items())] for o in self._orders]
        data = {"format": _FORMAT, "order": self.order, "vocab_size": self.vocab_size, "discount": self.discount,
                "counts": tables}
        Path(path).write_text(json.dumps(data, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "NgramLM":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"NgramLM: no n-gram model at {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"NgramLM: {path} is not JSON ({e})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"NgramLM: {path} is not an n-gram model of this version (format {_FORMAT})")
        counts = [{(tuple(ctx), tok): c for ctx, tok, c in table} for table in data["counts"]]
        return cls(data["order"], data["vocab_size"], data["discount"], counts)


def attach_ngram(model, folder: str | Path) -> bool:
    """Give ``model`` the n-gram model in ``folder`` (:data:`NGRAM_FILE`) if the model takes one (an ``ngram``
    attribute: ELF-S2T) and the folder has one; returns whether it did."""
    path = Path(folder) / NGRAM_FILE
    if not hasattr(model, "ngram") or not path.is_file():
        return False
    model.ngram = NgramLM.load(path)
    return True
