"""Speed/accuracy plot of a decoding benchmark (PNG, matplotlib's Agg backend, no display needed).

With scores: accuracy (WER or BLEU) against utterances/s (log axis), one line per ELF-S2T model, flow-type
strategy (``flow``, ``refine``) and guidance scale through its step counts, one marker per other system (ELF-S2T's
draft, readout and rescoring squares, AR greedy and beam diamonds, Whisper triangles), and the speed/accuracy
(Pareto) frontier of all of them (:func:`elfs2t.bench.matched.pareto_frontier`) as a dashed black line through
ringed points; the PNG's ``Frontier`` text field names its systems, slowest first. Without ELF-S2T scores
(random-weight models): utterances/s against ELF-S2T steps, other systems as horizontal lines (their scores in the
legend).
"""
from __future__ import annotations

import re
from pathlib import Path

from elfs2t.bench.matched import pareto_frontier

__all__ = ["plot_decode"]

MARKERS = {"elf": "s", "ar": "D", "whisper": "^", "faster-whisper": "v"}
"""Marker of a family's single-point systems."""


def _stepped(r: dict) -> bool:
    """An ELF-S2T row of a strategy with a step count (flow, refine)."""
    return r.get("family") == "elf" and isinstance(r.get("steps"), int)


def _series(rows: list[dict]) -> dict[str, list[dict]]:
    lines: dict[str, list[dict]] = {}
    for r in rows:
        if _stepped(r):
            label = re.sub(r"(flow|refine)\d+", r"\1", r["system"])
            lines.setdefault(label, []).append(r)
    return {k: sorted(v, key=lambda r: r["steps"]) for k, v in lines.items()}


def plot_decode(rows: list[dict], path: str | Path, score_name: str = "score", title: str = "",
                higher_better: bool = False) -> Path:
    """Write the plot to ``path`` and return it (``higher_better``: the score's direction, True for BLEU)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    others = [r for r in rows if r.get("family") is not None and not _stepped(r)]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    series = _series(rows)
    scored = any(r.get("score") is not None for r in rows if r.get("family") == "elf") or (
        not series and any(r.get("score") is not None for r in others))  # e.g. AR and Whisper only
    for label, line in series.items():
        if scored:
            pts = [r for r in line if r.get("score") is not None]
            ax.plot([r["utt_s"] for r in pts], [r["score"] for r in pts], marker="o", label=label)
            for r in pts:
                ax.annotate(str(r["steps"]), (r["utt_s"], r["score"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        else:
            ax.plot([r["steps"] for r in line], [r["utt_s"] for r in line], marker="o", label=label)
    for i, r in enumerate(others):
        color = f"C{(len(series) + i) % 10}"  # after the lines' colours
        if scored and r.get("score") is not None:
            ax.scatter([r["utt_s"]], [r["score"]], marker=MARKERS.get(r["family"], "o"), s=50, color=color,
                       label=r["system"], zorder=3)
        elif not scored:
            score = f" ({score_name} {r['score']:.1f})" if r.get("score") is not None else ""
            ax.axhline(r["utt_s"], linestyle="--", color=color, label=r["system"] + score)
    front = pareto_frontier(rows, higher_better=higher_better) if scored else []
    if front:
        xs, ys = [r["utt_s"] for r in front], [r["score"] for r in front]
        ax.plot(xs, ys, linestyle="--", color="black", linewidth=1, label="speed/accuracy frontier", zorder=4)
        ax.scatter(xs, ys, s=140, facecolors="none", edgecolors="black", linewidths=1, zorder=4)
    if scored:
        ax.set_xscale("log")
        ax.set_xlabel("utterances / s (log)")
        ax.set_ylabel(f"{score_name} ({'higher' if higher_better else 'lower'} is better)")
    else:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("ELF-S2T sampling steps")
        ax.set_ylabel("utterances / s")
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or "decoding speed / accuracy", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Title": title or "decoding speed / accuracy",
                                         "Frontier": "; ".join(r["system"] for r in front)})
    plt.close(fig)
    return path
