"""Collect the ``result.txt`` of every scored set of a recipe into one markdown table (stage 6).

Layout scanned: ``<recipe>/exp/<exp_tag>/decode_<inference_tag>/<set>/result.txt`` (written by
:mod:`elfs2t.score`), with an optional ``timing.json`` beside it (written by the decoder:
``audio_seconds`` and ``decode_seconds``; RTFx = audio_seconds / decode_seconds).

The inference tag is shown as is; sampling steps and guidance scale are read from it when it holds
``steps<N>`` / ``nfe<N>`` and ``g<scale>`` / ``cfg<scale>`` parts (``steps32_g2.0``), and the AR
baseline's ``beam<N>``; ``timing.json`` keys ``steps`` / ``guidance`` / ``beam_size`` win over the tag.
One row per (experiment, inference tag, set); metric columns are those present in any row.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

__all__ = ["ResultRow", "parse_result_file", "collect_results", "format_results_table", "write_results_table"]

METRICS = ("WER", "CER", "BLEU", "BLEU_lc", "chrF", "chrF_lc")
_METRIC_LINE = re.compile(r"^(WER|CER|BLEU|BLEU_lc|chrF|chrF_lc):\s*([-+]?(?:[0-9.]+|inf|nan))", re.MULTILINE)
_INT_LINE = re.compile(r"^(num_utts|missing_hyps):\s*(\d+)", re.MULTILINE)
_TAG_PARTS = {
    "steps": re.compile(r"(?:^|[_-])(?:steps?|nfe)(\d+)(?=$|[_-])"),
    "guidance": re.compile(r"(?:^|[_-])(?:g|cfg|guidance)(\d+(?:\.\d+)?)(?=$|[_-])"),
    "beam_size": re.compile(r"(?:^|[_-])beam(\d+)(?=$|[_-])"),
}


@dataclass
class ResultRow:
    """One scored set of one experiment and inference setting."""

    exp: str
    inference: str
    set_name: str
    metrics: dict[str, float] = field(default_factory=dict)
    num_utts: Optional[int] = None
    missing: Optional[int] = None
    steps: Optional[str] = None
    guidance: Optional[str] = None
    beam_size: Optional[str] = None
    rtfx: Optional[float] = None


def parse_result_file(path: str | Path) -> tuple[dict[str, float], dict[str, int]]:
    """Metric values and counts (``num_utts``, ``missing_hyps``) of one ``result.txt``."""
    text = Path(path).read_text(encoding="utf-8")
    metrics = {m.group(1): float(m.group(2)) for m in _METRIC_LINE.finditer(text)}
    counts = {m.group(1): int(m.group(2)) for m in _INT_LINE.finditer(text)}
    return metrics, counts


def _rtfx(timing_path: Path) -> tuple[Optional[float], dict]:
    if not timing_path.is_file():
        return None, {}
    try:
        timing = json.loads(timing_path.read_text())
        audio, dec = float(timing["audio_seconds"]), float(timing["decode_seconds"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable timing (%s); RTFx left empty", timing_path, exc)
        return None, {}
    return (audio / dec if dec > 0 else None), timing


def collect_results(recipe_dir: str | Path) -> list[ResultRow]:
    """Every ``exp/*/decode_*/*/result.txt`` of a recipe, sorted by experiment, inference tag, set."""
    rows = []
    for result in sorted(Path(recipe_dir).glob("exp/*/decode_*/*/result.txt")):
        set_dir = result.parent
        inference = set_dir.parent.name[len("decode_"):]
        metrics, counts = parse_result_file(result)
        rtfx, timing = _rtfx(set_dir / "timing.json")
        row = ResultRow(
            exp=set_dir.parent.parent.name,
            inference=inference,
            set_name=set_dir.name,
            metrics=metrics,
            num_utts=counts.get("num_utts"),
            missing=counts.get("missing_hyps"),
            rtfx=rtfx,
        )
        for key, pattern in _TAG_PARTS.items():
            m = pattern.search(inference)
            value = timing.get(key, m.group(1) if m else None)
            setattr(row, key, None if value is None else str(value))
        rows.append(row)
    return rows


def format_results_table(rows: list[ResultRow]) -> str:
    """A markdown table of ``rows`` (empty cells where a value is unknown)."""
    metrics = [m for m in METRICS if any(m in r.metrics for r in rows)]
    extras = [k for k in ("steps", "guidance", "beam_size") if any(getattr(r, k) is not None for r in rows)]
    header = ["exp", "inference", *extras, "set", "utts", "missing", *[f"{m} (%)" if m in ("WER", "CER") else m for m in metrics], "RTFx"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        cells = [r.exp, r.inference, *[getattr(r, k) or "" for k in extras], r.set_name]
        cells += ["" if r.num_utts is None else str(r.num_utts), "" if r.missing is None else str(r.missing)]
        cells += [f"{r.metrics[m]:.2f}" if m in r.metrics else "" for m in metrics]
        cells.append("" if r.rtfx is None else f"{r.rtfx:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results_table(recipe_dir: str | Path, out_file: Optional[str | Path] = None) -> Path:
    """Write the results table of ``recipe_dir`` to ``out_file`` (default ``<recipe_dir>/RESULTS.md``)."""
    recipe_dir = Path(recipe_dir)
    out_file = Path(out_file) if out_file is not None else recipe_dir / "RESULTS.md"
    rows = collect_results(recipe_dir)
    if not rows:
        log.warning("%s: no exp/*/decode_*/*/result.txt found", recipe_dir)
    text = f"# Results: {recipe_dir.resolve().name}\n\n"
    text += "WER/CER in % after the scoring normaliser; BLEU/chrF by sacrebleu (cased, and lower-cased `_lc`); "
    text += "RTFx = audio seconds / decoding seconds.\n\n" + format_results_table(rows)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out_file)
    return out_file
