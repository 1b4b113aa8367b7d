"""Latent-space error analysis of one decoded set: are substitutions close-distance confusions? (docs/design.md §2.6)

For every substitution ``ref word -> hyp word`` of the word alignment (:mod:`elfs2t.analysis.align`), and in
every space of :mod:`elfs2t.analysis.spaces`, under cosine and L2 distance:

* the distance between the reference word and the hypothesis word (``latent_ctx``: each inside its own
  sentence; the other spaces: the word vectors);
* baselines: the distance between *random pairs* of reference word occurrences with different words (from
  different utterances), and
  the distance from each reference word occurrence to its 1st .. k-th *nearest neighbour* among the other
  words of the vocabulary;
* the *k-NN share*: the share of substitutions whose hypothesis word is among the ``k`` nearest
  vocabulary words of the reference word (chance level ``k / (V - 1)``). A hypothesis word outside the
  vocabulary counts as a miss (and is counted in ``oov_hyp``).

The vocabulary is the set of words of the references plus an optional text (the training text, one
sentence per line), normalised like the references. In ``latent_ctx`` a vocabulary word is represented by
all its occurrences in those sentences and its distance to a query is that of its closest occurrence outside
the query's own sentence (whose words share its context); in the context-free spaces by its one word vector.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from elfs2t.analysis.align import UttAlignment
from elfs2t.analysis.distance import METRICS, nearest, pair_distance, percentile_of, random_pairs, summarize
from elfs2t.analysis.spaces import WordSpaces
from elfs2t.config import config_check
from elfs2t.text.normalize import NORMALIZERS, get_normalizer

__all__ = ["AnalysisConfig", "SpaceStats", "SetAnalysis", "analyze_set"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class AnalysisConfig:
    """Settings of the stage-7 error analysis."""

    k: list[int] = field(default_factory=lambda: [1, 5, 10])
    """Neighbourhood sizes for the k-NN share of substitutions."""
    num_random_pairs: int = 5000
    """Random pairs of reference word occurrences (different words, different utterances) for the baseline."""
    max_vocab_sentences: int = 1000
    """Sentences of the extra vocabulary text used at most (the references are always used); sentences with
    words not seen yet are taken first, so the vocabulary covers the whole text while the budget allows."""
    max_nn_queries: int = 20000
    """Reference word occurrences whose nearest neighbours are measured at most (a random subset beyond)."""
    normalizer: str = "default"
    """Text normaliser applied before the alignment (the scoring normaliser, elfs2t.text.normalize)."""
    top_confusions: int = 20
    """Most frequent confusions listed in the report."""
    bins: int = 40
    """Histogram bins of the distance plots."""
    seed: int = 0
    """Seed of the random pairs and of the neighbour-query subset."""

    def validate(self) -> None:
        config_check(len(self.k) > 0 and all(k >= 1 for k in self.k), "k", self.k, "must be a non-empty list of ints >= 1")
        config_check(self.normalizer in NORMALIZERS, "normalizer", self.normalizer, f"must be one of {sorted(NORMALIZERS)}")
        for key in ("num_random_pairs", "max_vocab_sentences", "max_nn_queries", "top_confusions", "bins"):
            config_check(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")


@dataclass
class SpaceStats:
    """Distances in one space under one metric."""

    sub: np.ndarray
    """(S,) reference-to-hypothesis distance per substitution (NaN: a word without tokens)."""
    sub_rank: np.ndarray
    """(S,) other vocabulary words strictly closer to the reference word than the hypothesis word (-1: not found)."""
    random: np.ndarray
    """(R,) distances of random pairs of reference word occurrences."""
    nn: np.ndarray
    """(Q, k_max) distance of reference word occurrences to their 1st .. k_max-th nearest other word."""

    def knn_share(self, k: int) -> float:
        """Share (%) of substitutions whose hypothesis word is among the k nearest words of the reference word."""
        if self.sub_rank.size == 0:
            return float("nan")
        return float(100.0 * ((self.sub_rank >= 0) & (self.sub_rank < k)).mean())


@dataclass
class SetAnalysis:
    """Everything the report says about one decoded set."""

    label: str
    counts: dict[str, int]
    subs: list[tuple[str, str, str]]
    """(utt_id, reference word, hypothesis word) per substitution."""
    vocab_size: int
    vocab_sentences: int
    k: list[int]
    spaces: dict[str, str]
    """Space name -> the model part its vectors come from."""
    stats: dict[str, dict[str, SpaceStats]]
    """space -> metric -> distances."""
    oov_hyp: int
    info: dict[str, str] = field(default_factory=dict)

    @property
    def wer(self) -> float:
        c = self.counts
        return 100.0 * (c["S"] + c["D"] + c["I"]) / max(c["ref_words"], 1)

    def confusions(self, top: int) -> list[tuple[str, str, int]]:
        """The ``top`` most frequent ``(ref, hyp, count)`` substitutions (ties by first occurrence)."""
        return [(r, h, n) for (r, h), n in Counter((r, h) for _, r, h in self.subs).most_common(top)]

    def summary(self) -> dict:
        """JSON-able numbers: counts, and per space and metric the distance summaries and k-NN shares."""
        chance = {k: float(100.0 * min(k, self.vocab_size - 1) / max(self.vocab_size - 1, 1)) for k in self.k}
        spaces = {}
        for space, per_metric in self.stats.items():
            spaces[space] = {}
            for metric, st in per_metric.items():
                spaces[space][metric] = {
                    "substitution": summarize(st.sub),
                    "random": summarize(st.random),
                    **{f"nn{j}": summarize(st.nn[:, j - 1]) for j in sorted({1, max(self.k)}) if st.nn.shape[1] >= j},
                    "sub_random_percentile": percentile_of(st.sub, st.random),
                    "knn_share": {str(k): st.knn_share(k) for k in self.k},
                }
        return {"label": self.label, **self.info, "counts": self.counts, "wer": self.wer, "vocab_size": self.vocab_size,
                "vocab_sentences": self.vocab_sentences, "oov_hyp": self.oov_hyp, "k": self.k,
                "knn_chance": {str(k): v for k, v in chance.items()}, "spaces": self.spaces, "distances": spaces}


def _vocabulary(refs: list[list[str]], extra: list[str], cfg: AnalysisConfig) -> list[tuple[str, ...]]:
    """The references, then up to ``max_vocab_sentences`` of ``extra``: first those that bring new words (so every
    word of ``extra`` is in the vocabulary as long as the budget allows), then the others in order."""
    norm = get_normalizer(cfg.normalizer)
    seen: dict[tuple[str, ...], None] = {tuple(r): None for r in refs if r}
    words = {w for r in seen for w in r}
    lines = list(dict.fromkeys(tuple(norm(line).split()) for line in extra))
    lines = [s for s in lines if s and s not in seen]
    chosen: list[tuple[str, ...]] = []
    for sent in lines:  # coverage first
        if len(chosen) >= cfg.max_vocab_sentences:
            break
        if not words.issuperset(sent):
            chosen.append(sent)
            words.update(sent)
    taken = set(chosen)
    for sent in lines:
        if len(chosen) >= cfg.max_vocab_sentences:
            break
        if sent not in taken:
            chosen.append(sent)
    uncovered = {w for s in lines for w in s} - words
    if uncovered:
        log.warning("vocabulary: %d words of the extra text left out (max_vocab_sentences=%d), e.g. %s",
                    len(uncovered), cfg.max_vocab_sentences, sorted(uncovered)[:5])
    return list(seen) + chosen


def _finite(x: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(x).all(-1)


def analyze_set(
    alignments: list[UttAlignment],
    spaces: WordSpaces,
    cfg: AnalysisConfig,
    *,
    label: str,
    vocab_text: list[str] = (),
    progress: bool = False,
) -> SetAnalysis:
    """Measure substitution, random-pair and nearest-neighbour distances of one aligned set in every space."""
    cfg.validate()
    gen = torch.Generator().manual_seed(cfg.seed)
    k_max = max(cfg.k)
    counts = {"utts": len(alignments), "ref_words": sum(len(a.ref_words) for a in alignments),
              **{op: sum(a.count(op) for a in alignments) for op in "CSDI"}}
    vocab_sents = _vocabulary([a.ref_words for a in alignments], list(vocab_text), cfg)
    types = sorted({w for s in vocab_sents for w in s})
    type_id = {w: i for i, w in enumerate(types)}
    sent_index = {s: i for i, s in enumerate(vocab_sents)}
    # reference word occurrences (flattened) and substitutions
    occ = [(u, j) for u, a in enumerate(alignments) for j in range(len(a.ref_words))]
    occ_words = [alignments[u].ref_words[j] for u, j in occ]
    occ_of = {pos: i for i, pos in enumerate(occ)}
    occ_type = torch.tensor([type_id[w] for w in occ_words], dtype=torch.long)
    subs, sub_occ, sub_hyp = [], [], []
    for u, a in enumerate(alignments):
        for ri, hi in a.substitutions():
            subs.append((a.utt_id, a.ref_words[ri], a.hyp_words[hi]))
            sub_occ.append(occ_of[(u, ri)])
            sub_hyp.append((u, hi))
    sub_occ_t = torch.tensor(sub_occ, dtype=torch.long)
    hyp_type = torch.tensor([type_id.get(h, -1) for _, _, h in subs], dtype=torch.long)
    pair_a, pair_b = random_pairs(occ_words, cfg.num_random_pairs, gen, groups=[u for u, _ in occ])
    queries = torch.arange(len(occ))
    if len(occ) > cfg.max_nn_queries:
        queries = torch.randperm(len(occ), generator=gen)[: cfg.max_nn_queries].sort().values
    log.info("%s: %d utts, %d reference words, %d substitutions, vocabulary %d words from %d sentences",
             label, counts["utts"], counts["ref_words"], len(subs), len(types), len(vocab_sents))

    # vectors per space: reference occurrences (N, d), hypothesis side of substitutions (S, d), vocabulary keys
    vectors: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    groups: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # latent_ctx: sentence of each query / key
    ctx = spaces.latent.sentences([list(s) for s in vocab_sents], progress=progress)
    keys = torch.cat(ctx) if ctx else torch.zeros(0, spaces.latent.dim)
    key_type = torch.tensor([type_id[w] for s in vocab_sents for w in s], dtype=torch.long)
    ref_rows = [ctx[sent_index[tuple(a.ref_words)]] if a.ref_words else None for a in alignments]
    ref_vec = torch.stack([ref_rows[u][j] for u, j in occ]) if occ else torch.zeros(0, spaces.latent.dim)
    hyp_utts = sorted({u for u, _ in sub_hyp})
    hyp_ctx = dict(zip(hyp_utts, spaces.latent.sentences([alignments[u].hyp_words for u in hyp_utts], progress=progress)))
    hyp_vec = torch.stack([hyp_ctx[u][j] for u, j in sub_hyp]) if subs else torch.zeros(0, spaces.latent.dim)
    vectors["latent_ctx"] = (ref_vec, hyp_vec, keys, key_type)
    key_sent = torch.tensor([i for i, s in enumerate(vocab_sents) for _ in s], dtype=torch.long)
    occ_sent = torch.tensor([sent_index[tuple(alignments[u].ref_words)] for u, _ in occ], dtype=torch.long)
    groups["latent_ctx"] = (occ_sent, key_sent)
    oov_words = sorted({h for _, _, h in subs if h not in type_id})
    table_words = types + oov_words
    table_id = {w: i for i, w in enumerate(table_words)}
    occ_rows = torch.tensor([table_id[w] for w in occ_words], dtype=torch.long)
    hyp_rows = torch.tensor([table_id[h] for _, _, h in subs], dtype=torch.long)
    for name, source in (("latent_word", spaces.latent), ("token_emb", spaces.token)):
        if source is None:
            continue
        table = source.words(table_words, progress=progress)  # (V + oov, d)
        vectors[name] = (table[occ_rows], table[hyp_rows], table[: len(types)], torch.arange(len(types)))

    stats: dict[str, dict[str, SpaceStats]] = {}
    for name in spaces.names:
        ref_v, hyp_v, keys_v, key_t = vectors[name]
        good_keys = _finite(keys_v)
        keys_v, key_t = keys_v[good_keys], key_t[good_keys]
        q_grp, k_grp = groups.get(name, (None, None))
        k_grp = None if k_grp is None else k_grp[good_keys]
        grp = (lambda idx: None) if q_grp is None else (lambda idx: q_grp[idx])  # noqa: E731
        q_ok = queries[_finite(ref_v[queries])] if len(queries) else queries
        s_ok = torch.nonzero(_finite(ref_v[sub_occ_t]) & _finite(hyp_v)).flatten() if subs else \
            torch.zeros(0, dtype=torch.long)
        stats[name] = {}
        for metric in METRICS:
            sub_d = torch.full((len(subs),), float("nan"), dtype=torch.float64)
            sub_rank = torch.full((len(subs),), -1, dtype=torch.long)
            if len(s_ok):
                sub_d[s_ok] = pair_distance(ref_v[sub_occ_t[s_ok]], hyp_v[s_ok], metric)
                _, sub_rank[s_ok] = nearest(ref_v[sub_occ_t[s_ok]], keys_v, key_t, len(types), metric,
                                            exclude=occ_type[sub_occ_t[s_ok]], k_max=1, targets=hyp_type[s_ok],
                                            q_group=grp(sub_occ_t[s_ok]), key_group=k_grp)
            rnd = pair_distance(ref_v[pair_a], ref_v[pair_b], metric) if len(pair_a) else torch.zeros(0)
            nn = torch.full((len(q_ok), k_max), float("nan"), dtype=torch.float64)
            if len(q_ok):
                nn, _ = nearest(ref_v[q_ok], keys_v, key_t, len(types), metric, exclude=occ_type[q_ok], k_max=k_max,
                                q_group=grp(q_ok), key_group=k_grp)
            stats[name][metric] = SpaceStats(sub=sub_d.numpy(), sub_rank=sub_rank.numpy(), random=rnd.numpy(),
                                             nn=nn.numpy())
    return SetAnalysis(label=label, counts=counts, subs=subs, vocab_size=len(types), vocab_sentences=len(vocab_sents),
                       k=list(cfg.k), spaces={n: spaces.describe()[n] for n in spaces.names}, stats=stats,
                       oov_hyp=sum(1 for _, _, h in subs if h not in type_id))
