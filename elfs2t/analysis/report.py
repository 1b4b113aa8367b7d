"""Write the stage-7 error-analysis report: ``report.md``, ``summary.json``, PNG plots, per-substitution TSVs.

Layout of ``out_dir``::

    report.md                      sections: Sets, then per set (Alignment, Distances, Nearest neighbours,
                                   Plots, Most frequent confusions), then Comparison (two sets or more)
    summary.json                   {"config": ..., "sets": [SetAnalysis.summary() ...]}
    <set>_<space>.png              distance histograms of one set (cosine and L2)
    compare_<space>.png            substitution vs random distances of all sets (two sets or more)
    substitutions_<set>.tsv        utt, ref, hyp, then distance and neighbour rank per space and metric

``<set>`` is the set label with every character outside ``[A-Za-z0-9_.-]`` replaced by ``_``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np

from elfs2t.analysis.distance import METRICS
from elfs2t.analysis.plots import plot_compare, plot_distances
from elfs2t.analysis.substitutions import AnalysisConfig, SetAnalysis

__all__ = ["slug", "write_report"]

SECTIONS = ("## Sets", "### Alignment", "### Distances", "### Nearest neighbours", "### Plots",
            "### Most frequent confusions", "## Comparison")


def slug(label: str) -> str:
    """File-name-safe form of a set label."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)


def _f(x: float, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _distance_table(a: SetAnalysis, summary: dict) -> list[str]:
    k_max = max(a.k)
    head = "| space | metric | substitutions median (n) | random pairs median | 1st nearest median |"
    head += f" {k_max}th nearest median | substitutions: percentile among random pairs |" if k_max > 1 else \
        " substitutions: percentile among random pairs |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for space, per_metric in summary["distances"].items():
        for metric, d in per_metric.items():
            row = f"| {space} | {metric} | {_f(d['substitution']['median'])} ({d['substitution']['n']}) | " \
                  f"{_f(d['random']['median'])} | {_f(d['nn1']['median'])} |"
            if k_max > 1:
                row += f" {_f(d.get(f'nn{k_max}', {}).get('median', math.nan))} |"
            row += f" {_f(d['sub_random_percentile'], 1)} |"
            lines.append(row)
    return lines


def _knn_table(a: SetAnalysis, summary: dict) -> list[str]:
    head = "| space | metric | " + " | ".join(f"k={k}" for k in a.k) + " |"
    lines = [head, "|" + "---|" * (len(a.k) + 2)]
    for space, per_metric in summary["distances"].items():
        for metric, d in per_metric.items():
            lines.append(f"| {space} | {metric} | " + " | ".join(_f(d["knn_share"][str(k)], 1) for k in a.k) + " |")
    lines.append("| chance | | " + " | ".join(_f(summary["knn_chance"][str(k)], 1) for k in a.k) + " |")
    return lines


def _confusion_table(a: SetAnalysis, top: int) -> list[str]:
    spaces = list(a.stats)
    head = "| # | reference | hypothesis | count | " + " | ".join(f"{s} cos (neighbour #)" for s in spaces) + " |"
    lines = [head, "|" + "---|" * (4 + len(spaces))]
    index: dict[tuple[str, str], list[int]] = {}
    for i, (_, r, h) in enumerate(a.subs):
        index.setdefault((r, h), []).append(i)
    for n, (r, h, count) in enumerate(a.confusions(top), start=1):
        cells = []
        for s in spaces:
            st = a.stats[s]["cosine"]
            rows = index[(r, h)]
            dist = np.nanmedian(st.sub[rows]) if np.isfinite(st.sub[rows]).any() else math.nan
            ranks = st.sub_rank[rows]
            rank = f"{int(np.median(ranks[ranks >= 0])) + 1}" if (ranks >= 0).any() else "—"
            cells.append(f"{_f(dist)} ({rank})")
        lines.append(f"| {n} | {r} | {h} | {count} | " + " | ".join(cells) + " |")
    return lines


def _tsv(a: SetAnalysis) -> str:
    cols = [(s, m) for s in a.stats for m in METRICS]
    head = "utt\tref\thyp\t" + "\t".join(f"{s}_{m}\t{s}_{m}_rank" for s, m in cols)
    lines = [head]
    for i, (utt, r, h) in enumerate(a.subs):
        vals = "\t".join(f"{_f(float(a.stats[s][m].sub[i]), 5)}\t{int(a.stats[s][m].sub_rank[i])}" for s, m in cols)
        lines.append(f"{utt}\t{r}\t{h}\t{vals}")
    return "\n".join(lines) + "\n"


def write_report(analyses: list[SetAnalysis], out_dir: Path, cfg: AnalysisConfig, command: str = "") -> Path:
    """Write report.md, summary.json, plots and TSVs for ``analyses`` into ``out_dir``; returns report.md's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [a.summary() for a in analyses]
    _write(out_dir / "summary.json", json.dumps({"config": dataclasses.asdict(cfg), "sets": summaries}, indent=1,
                                                ensure_ascii=False, default=float) + "\n")
    md = ["# Error analysis: how close are substituted words in the model's spaces?", ""]
    if command:
        md += [f"Command: `{command}`", ""]
    md += [
        "Hypotheses are aligned to references word by word (Levenshtein, normaliser "
        f"`{cfg.normalizer}`). For each substitution the distance between the reference and the hypothesis word is "
        "measured in the text-encoder latent space (`latent_ctx`: each word inside its own sentence, mean of its "
        "token latents; `latent_word`: the word encoded alone) and in the model's token embedding (`token_emb`), "
        "and compared with random pairs of reference words and with each reference word's nearest vocabulary "
        "words. If errors are close-distance confusions, substitution distances sit near the nearest-neighbour "
        "distances, far below the random pairs, and many substitutions are among the k nearest words.", "",
        "## Sets", "",
        "| set | model | decode dir | utts | ref words | WER % | S | D | I | vocabulary words |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in analyses:
        c = a.counts
        md.append(f"| {a.label} | {a.info.get('model', '')} | {a.info.get('decode_dir', '')} | {c['utts']} | "
                  f"{c['ref_words']} | {a.wer:.2f} | {c['S']} | {c['D']} | {c['I']} | {a.vocab_size} |")
    for a, s in zip(analyses, summaries):
        name = slug(a.label)
        md += ["", f"## {a.label}", "", "### Alignment", ""]
        c = a.counts
        md.append(f"{c['utts']} utterances, {c['ref_words']} reference words: {c['C']} correct, {c['S']} substitutions, "
                  f"{c['D']} deletions, {c['I']} insertions (WER {a.wer:.2f} %); "
                  f"{a.info.get('missing_hyps', 0)} missing hypotheses scored as empty. Vocabulary: {a.vocab_size} words "
                  f"from {a.vocab_sentences} sentences; {a.oov_hyp} substituted hypothesis words are outside it.")
        md += ["", "Spaces:"] + [f"* `{sp}`: {src}" for sp, src in a.spaces.items()]
        md += ["", "### Distances", "", "Medians; the last column is the mean percentile of a substitution's distance "
               "among the random-pair distances (50: no closer than chance).", ""] + _distance_table(a, s)
        md += ["", "### Nearest neighbours", "", "Share (%) of substitutions whose hypothesis word is among the k "
               "nearest vocabulary words of the reference word (chance: k / (V - 1)).", ""] + _knn_table(a, s)
        md += ["", "### Plots", ""]
        for space in a.stats:
            png = plot_distances(a, space, out_dir / f"{name}_{space}.png", bins=cfg.bins)
            md.append(f"![{a.label} {space}]({png.name})")
        md += ["", "### Most frequent confusions", "", "Cosine distance (median over the occurrences) and the "
               "hypothesis word's neighbour number among the reference word's nearest words (1 = nearest).", ""]
        md += _confusion_table(a, cfg.top_confusions) if a.subs else ["No substitutions."]
        _write(out_dir / f"substitutions_{name}.tsv", _tsv(a))
    if len(analyses) > 1:
        md += ["", "## Comparison", "", "Cosine distances; `sub/random`: median substitution distance over median "
               "random-pair distance (lower: closer confusions).", ""]
        spaces = [sp for sp in analyses[0].stats if all(sp in a.stats for a in analyses)]
        k_ref = sorted(analyses[0].k)
        head = "| set | WER % | substitutions | " + " | ".join(
            f"{sp} sub/random | {sp} k-NN share k={k_ref[-1]}" for sp in spaces) + " |"
        md += [head, "|" + "---|" * (3 + 2 * len(spaces))]
        for a, s in zip(analyses, summaries):
            cells = []
            for sp in spaces:
                d = s["distances"][sp]["cosine"]
                ratio = d["substitution"]["median"] / d["random"]["median"] if d["random"]["median"] else math.nan
                cells += [_f(ratio), _f(d["knn_share"].get(str(k_ref[-1]), math.nan), 1)]
            md.append(f"| {a.label} | {a.wer:.2f} | {a.counts['S']} | " + " | ".join(cells) + " |")
        md.append("")
        for sp in spaces:
            png = plot_compare(analyses, sp, out_dir / f"compare_{sp}.png", bins=cfg.bins)
            md.append(f"![compare {sp}]({png.name})")
    _write(out_dir / "report.md", "\n".join(md) + "\n")
    return out_dir / "report.md"
