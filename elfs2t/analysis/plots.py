"""PNG plots of the analysis (matplotlib, Agg backend: no display needed).

* :func:`plot_distances`: one set, one space; for cosine and L2, the density histograms of substitution
  distances against the random-pair and nearest-neighbour baselines.
* :func:`plot_compare`: several sets (e.g. ASR and S2TT), one space; substitution (solid) and random-pair
  (dashed) distances of each set.
* :func:`plot_sweep`: audio-reliance diagnostics, score against the CFG scale per audio condition.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from elfs2t.analysis.distance import METRICS  # noqa: E402

if TYPE_CHECKING:
    from elfs2t.analysis.substitutions import SetAnalysis

__all__ = ["plot_distances", "plot_compare", "plot_sweep"]


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[np.isfinite(x)]


def _edges(arrays: list[np.ndarray], bins: int) -> np.ndarray:
    data = np.concatenate([a for a in arrays if a.size] or [np.zeros(1)])
    lo, hi = float(data.min()), float(data.max())
    if hi <= lo:
        hi = lo + 1e-6
    return np.linspace(lo, hi, bins + 1)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _density_panel(ax, curves: list[tuple[np.ndarray, str, dict]], bins: int, metric: str, title: str) -> None:
    """One panel: step density histograms of ``curves`` (data, legend label, line style) on shared bin
    edges (empty data drawn as nothing), x axis ``<metric> distance``, ``title`` and a legend."""
    edges = _edges([data for data, _, _ in curves], bins)
    for data, label, style in curves:
        if data.size:
            ax.hist(data, bins=edges, density=True, histtype="step", label=label, **style)
    ax.set_xlabel(f"{metric} distance")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def plot_distances(analysis: "SetAnalysis", space: str, path: Path, bins: int = 40) -> Path:
    """Histograms (density) of substitution, random-pair, 1-NN and k-NN distances for ``space``."""
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5.5 * len(METRICS), 3.8))
    k_max = max(analysis.k)
    for ax, metric in zip(np.atleast_1d(axes), METRICS):
        st = analysis.stats[space][metric]
        series = [("substitutions", _finite(st.sub), "C3", 2.0), ("random pairs", _finite(st.random), "C7", 1.2),
                  ("1st nearest word", _finite(st.nn[:, 0]) if st.nn.size else np.zeros(0), "C0", 1.2)]
        if k_max > 1 and st.nn.shape[1] >= k_max:
            series.append((f"{k_max}th nearest word", _finite(st.nn[:, k_max - 1]), "C2", 1.2))
        curves = [(data, f"{name} (n={data.size})", dict(color=color, linewidth=width))
                  for name, data, color, width in series]
        _density_panel(ax, curves, bins, metric, f"{analysis.label}: {space}, {metric}")
    fig.tight_layout()
    return _save(fig, path)


def plot_compare(analyses: list["SetAnalysis"], space: str, path: Path, bins: int = 40) -> Path:
    """Substitution (solid) and random-pair (dashed) distance densities of several sets in ``space``."""
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5.5 * len(METRICS), 3.8))
    for ax, metric in zip(np.atleast_1d(axes), METRICS):
        arrays = [(a, _finite(a.stats[space][metric].sub), _finite(a.stats[space][metric].random)) for a in analyses
                  if space in a.stats]
        curves = []
        for i, (a, sub, rnd) in enumerate(arrays):
            curves += [(sub, f"{a.label}: substitutions (n={sub.size})", dict(color=f"C{i}", linewidth=2.0)),
                       (rnd, f"{a.label}: random pairs", dict(color=f"C{i}", linestyle="--", linewidth=1.0))]
        _density_panel(ax, curves, bins, metric, f"{space}, {metric}")
    fig.tight_layout()
    return _save(fig, path)


def plot_sweep(rows: list[dict], metric: str, path: Path, title: str = "") -> Path:
    """``rows`` of ``{"audio", "guidance", "score"}``: score against g, one line per audio condition.

    With a single guidance value (e.g. the AR baseline, which has no CFG) the conditions are bars.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    modes = list(dict.fromkeys(r["audio"] for r in rows))
    scales = sorted({r["guidance"] for r in rows if r["guidance"] is not None})
    if len(scales) > 1:
        for i, mode in enumerate(modes):
            pts = sorted((r["guidance"], r["score"]) for r in rows if r["audio"] == mode)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=f"C{i}", label=f"audio: {mode}")
        ax.set_xlabel("CFG scale g")
        ax.set_xticks(scales)
        ax.legend(fontsize=8)
    else:
        vals = [next(r["score"] for r in rows if r["audio"] == m) for m in modes]
        ax.bar(modes, vals, color=[f"C{i}" for i in range(len(modes))])
        ax.set_xlabel("audio condition")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
