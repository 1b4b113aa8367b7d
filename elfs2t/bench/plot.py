"""Speed/accuracy plot of a decoding benchmark (PNG, matplotlib's Agg backend, no display needed).

With scores: accuracy (WER or BLEU) against utterances/s (log axis), one line per ELF-S2T model, flow-type
strategy (``flow``, ``refine``) and guidance scale through its step counts, one marker per other system (ELF-S2T's
draft, readout and rescoring included). Without ELF-S2T scores (random-weight models): utterances/s against ELF-S2T
steps, other systems as horizontal lines (their scores in the legend).
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["plot_decode"]


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


def plot_decode(rows: list[dict], path: str | Path, score_name: str = "score", title: str = "") -> Path:
    """Write the plot to ``path`` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    others = [r for r in rows if r.get("family") is not None and not _stepped(r)]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    scored = any(r.get("score") is not None for r in rows if r.get("family") == "elf")
    for label, series in _series(rows).items():
        if scored:
            pts = [r for r in series if r.get("score") is not None]
            ax.plot([r["utt_s"] for r in pts], [r["score"] for r in pts], marker="o", label=label)
            for r in pts:
                ax.annotate(str(r["steps"]), (r["utt_s"], r["score"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        else:
            ax.plot([r["steps"] for r in series], [r["utt_s"] for r in series], marker="o", label=label)
    for i, r in enumerate(others):
        color = f"C{(i + 5) % 10}"
        if scored and r.get("score") is not None:
            ax.scatter([r["utt_s"]], [r["score"]], marker="s", s=50, color=color, label=r["system"], zorder=3)
        elif not scored:
            score = f" ({score_name} {r['score']:.1f})" if r.get("score") is not None else ""
            ax.axhline(r["utt_s"], linestyle="--", color=color, label=r["system"] + score)
    if scored:
        ax.set_xscale("log")
        ax.set_xlabel("utterances / s (log)")
        ax.set_ylabel(score_name)
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
