"""Learning curves from training logs: validation metrics against optimiser steps and wall time.

The trainer writes ``exp/<tag>/train.log`` (elfs2t.train.trainer) with a ``training starts at step N`` line
each time ``fit`` begins (a resume starts a new segment) and one ``step S validation: key=value ...`` line
per validation. :func:`read_curve` turns that into :class:`CurvePoint` rows; wall time is counted from the
first start and summed over segments (the pause between a stop and its resume is left out), so it
includes validation time, as a user's budget would.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = ["CurvePoint", "read_curve", "curves_table"]

_TS = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
_START = re.compile(_TS + r".*training starts at step (\d+)")
_VALID = re.compile(_TS + r".*step (\d+) validation: (.*)$")
_ANY = re.compile(_TS)
_KV = re.compile(r"(\w+)=([-+0-9.eE]+|nan|inf)")


@dataclass(frozen=True)
class CurvePoint:
    """One validation of a training run."""

    step: int
    minutes: float
    """Training wall time (all segments) up to this validation."""
    metrics: dict[str, float]


def _time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def read_curve(log_path: str | Path) -> list[CurvePoint]:
    """Validation points of ``train.log`` in order; raises ValueError (naming the file) without a start line."""
    path = Path(log_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training log (train an experiment first)")
    points: list[CurvePoint] = []
    seg_start = None
    done = 0.0  # seconds of the finished segments
    last = None  # time of the last line of the current segment
    for line in path.read_text(errors="replace").splitlines():
        if m := _START.match(line):
            if seg_start is not None and last is not None:
                done += (last - seg_start).total_seconds()
            seg_start = last = _time(m.group(1))
            continue
        if (m := _ANY.match(line)) and seg_start is not None:
            last = _time(m.group(1))
        if (m := _VALID.match(line)) and seg_start is not None:
            minutes = (done + (_time(m.group(1)) - seg_start).total_seconds()) / 60.0
            metrics = {k: float(v) for k, v in _KV.findall(m.group(3))}
            points.append(CurvePoint(step=int(m.group(2)), minutes=minutes, metrics=metrics))
    if seg_start is None:
        raise ValueError(f"{path}: no 'training starts at step' line (a log of an older trainer?)")
    return points


def curves_table(curves: dict[str, list[CurvePoint]], metric: str, scale: float = 100.0) -> str:
    """Markdown table: one row per run and validation (run, step, minutes, metric x scale)."""
    lines = [f"| run | step | minutes | {metric} |", "|---|---|---|---|"]
    for name, points in curves.items():
        for p in points:
            value = p.metrics.get(metric)
            shown = "" if value is None else f"{value * scale:.1f}"
            lines.append(f"| {name} | {p.step} | {p.minutes:.1f} | {shown} |")
    return "\n".join(lines) + "\n"
