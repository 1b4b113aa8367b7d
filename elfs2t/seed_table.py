"""One recipe run with several training seeds: every system's score per set, the mean and each seed's value.

A *run* is a recipe folder with its own ``exp/`` (stage 6 scored it): the recipe itself and, for another seed, a
copy of it sharing ``data/`` and ``dump/`` whose stage 4 ran with ``--train-opts "... train.seed=N"``. The rows
are those of :func:`elfs2t.results.collect_results` keyed by (experiment, decoding); a system only some runs have
(Whisper zero-shot, decoded once) shows the runs it has. One table per metric (WER sets, BLEU sets), a column per
set (dev sets last): ``mean (run 1, run 2, ...)``, ``-`` where a run lacks it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Optional

from elfs2t.results import ResultRow, collect_results, row_kinds, row_order

__all__ = ["SeedRow", "collect_seed_rows", "format_seed_table"]

_PRIMARY = ("WER", "BLEU", "CER")
"""The metric a set is compared by: the first of these its results have."""


@dataclass
class SeedRow:
    """One system (experiment + decoding) across the runs."""

    first: ResultRow
    """Its row in the first run that has it (model, reader, settings)."""
    scores: dict[str, list[Optional[float]]] = field(default_factory=dict)
    """Set name -> the set's primary metric in each run (None where the run lacks it)."""
    rtfx: dict[str, list[Optional[float]]] = field(default_factory=dict)

    def mean(self, set_name: str) -> Optional[float]:
        values = [v for v in self.scores.get(set_name, []) if v is not None]
        return mean(values) if values else None


def collect_seed_rows(run_dirs: list[str | Path]) -> tuple[list[SeedRow], dict[str, str]]:
    """The systems of all runs in table order, and each set's primary metric (set name -> ``WER`` / ``BLEU``)."""
    rows: dict[tuple[str, str], SeedRow] = {}
    metric_of: dict[str, str] = {}
    for i, run in enumerate(run_dirs):
        run = Path(run)
        if not (run / "exp").is_dir():
            raise FileNotFoundError(f"{run}: no exp/ folder (a run is a recipe folder whose stages 4-6 ran)")
        for r in collect_results(run):
            metric = metric_of.setdefault(r.set_name, next((m for m in _PRIMARY if m in r.metrics), ""))
            row = rows.setdefault((r.exp, r.inference), SeedRow(first=r))
            for d, value in ((row.scores, r.metrics.get(metric)), (row.rtfx, r.rtfx)):
                d.setdefault(r.set_name, [None] * len(run_dirs))[i] = value
    kinds = list(row_kinds())
    order = sorted(rows.values(), key=lambda s: row_order(s.first, kinds)[1:])
    return order, {s: m for s, m in metric_of.items() if m}


def _cell(values: list[Optional[float]], digits: int = 2) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return ""
    each = ", ".join("-" if v is None else f"{v:.{digits}f}" for v in values)
    return f"{mean(present):.{digits}f}" + (f" ({each})" if len(values) > 1 else "")


def format_seed_table(run_dirs: list[str | Path], labels: Optional[list[str]] = None) -> str:
    """Markdown: the runs named, then one table per metric with a row per system and a column per set."""
    labels = labels or [str(r) for r in run_dirs]
    if len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} runs")
    rows, metric_of = collect_seed_rows(run_dirs)
    kinds = row_kinds()
    out = ["Runs (each cell: the mean, then each run's value in this order): "
           + "; ".join(f"{i + 1}. {label}" for i, label in enumerate(labels)), ""]
    for metric in dict.fromkeys(metric_of.values()):
        # the evaluation sets first, the validation sets (dev) last
        sets = sorted((s for s, m in metric_of.items() if m == metric), key=lambda s: ("dev" in s.split("_"), s))
        unit = " (%)" if metric in ("WER", "CER") else ""
        header = ["model", "exp", "decoding", "tokens from", *[f"{s} {metric}{unit}" for s in sets], f"RTFx {sets[0]}"]
        lines = [f"### {metric}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for row in rows:
            if not any(row.scores.get(s) for s in sets):
                continue
            r = row.first
            title = kinds[r.model].title if r.model in kinds else (r.model or "")
            cells = [title, r.exp, r.inference, r.reader or "", *[_cell(row.scores.get(s, [])) for s in sets],
                     _cell(row.rtfx.get(sets[0], []), 0)]
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)
