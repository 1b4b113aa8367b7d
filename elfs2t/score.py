"""Scoring (stage 6): WER / CER with jiwer, BLEU / chrF with sacrebleu, per-set reports.

Inputs are Kaldi text files (``<utt-id> <text>``, :mod:`elfs2t.textfile`): the hypotheses written by
the decoder and the references (the decoder's ``ref`` file, any text file, or a cuts manifest read
with a target, see :func:`load_refs`). The references define the set:

* a reference id without a hypothesis is **scored as an empty hypothesis** (all deletions, no n-gram
  matches) and reported in ``result.txt`` (count and examples) - never silently dropped;
* a hypothesis id without a reference is reported and not scored.

Metrics (``ScoreConfig.metric``: ``wer``, ``cer``, ``bleu`` (BLEU and chrF) or ``all``):

* WER / CER: references and hypotheses go through the normaliser (:mod:`elfs2t.text.normalize`,
  ``default``: lower-case, punctuation removed, apostrophes inside words kept, whitespace collapsed),
  then jiwer aligns them; corpus rate = (S + D + I) / N over the whole set. CER counts characters of
  the normalised text, single spaces between words included (jiwer's convention).
* BLEU / chrF: sacrebleu on the detokenised text, not normalised: cased (the standard) and
  lower-cased (``_lc``, ELF's convention), each with its sacrebleu signature.

Outputs in ``out_dir``: ``result.txt`` (human-readable; lines ``<METRIC>: <value> ...`` are what
:mod:`elfs2t.results` reads), ``result.json`` (the same numbers), ``align.txt`` (word alignments,
when WER is scored) and ``align_char.txt`` (character alignments, when CER is scored). Alignment
blocks, Kaldi style, columns padded to the same width::

    utt1 ref  a b c d
    utt1 hyp  a x c ***
    utt1 op   C S C D
    utt1 #csid 2 1 1 0
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Optional

import jiwer

from elfs2t.atomic import write_text
from elfs2t.config import config_check
from elfs2t.text.normalize import NORMALIZERS, get_normalizer, load_english_spelling_mapping
from elfs2t.textfile import read_text

log = logging.getLogger(__name__)

__all__ = ["ScoreConfig", "ScoreReport", "ErrorCounts", "align", "load_refs", "score_texts", "score_files"]

METRIC_SETS = {"wer": ("wer",), "cer": ("cer",), "bleu": ("bleu",), "all": ("wer", "cer", "bleu")}
_OP = {"equal": "C", "substitute": "S", "delete": "D", "insert": "I"}
_EMPTY = "***"


@dataclass(kw_only=True)
class ScoreConfig:
    """What to score and how to normalise."""

    metric: Literal["wer", "cer", "bleu", "all"] = "wer"
    """``wer``, ``cer``, ``bleu`` (BLEU and chrF, cased and lower-cased) or ``all``."""
    normalizer: str = "default"
    """Normaliser before WER/CER: ``default``, ``whisper_en``, ``whisper_basic`` or ``none``."""
    spelling_mapping: Optional[Path] = None
    """JSON British -> American spelling mapping for ``whisper_en`` (default: from an installed package)."""
    bleu_tokenize: str = "13a"
    """sacrebleu tokenizer for BLEU (``13a`` standard; ``intl``, ``zh``, ``char``, ...)."""
    max_examples: int = 10
    """How many missing / extra ids are listed in ``result.txt``."""

    def validate(self) -> None:
        config_check(self.normalizer in NORMALIZERS, "normalizer", self.normalizer, f"must be one of {sorted(NORMALIZERS)}")
        from sacrebleu.metrics.bleu import _TOKENIZERS

        config_check(self.bleu_tokenize in _TOKENIZERS, "bleu_tokenize", self.bleu_tokenize, f"must be one of {sorted(_TOKENIZERS)}")
        config_check(self.max_examples >= 0, "max_examples", self.max_examples, "must be >= 0")


@dataclass
class ErrorCounts:
    """Edit-distance counts over a set: N reference units, hits, substitutions, deletions, insertions."""

    ref_len: int = 0
    hits: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def rate(self) -> float:
        """Error rate in percent; with an empty reference side: 0 without errors, inf otherwise."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.ref_len


@dataclass
class ScoreReport:
    """Everything ``result.txt`` says about one scored set."""

    set_name: str
    num_utts: int
    normalizer: str
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    counts: dict[str, ErrorCounts] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    signatures: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Alignment and error counts
# ---------------------------------------------------------------------------------------------
def _units(text: str, unit: str) -> list[str]:
    return text.split() if unit == "word" else list(text)


def _process(refs: list[str], hyps: list[str], unit: str):
    return (jiwer.process_words if unit == "word" else jiwer.process_characters)(refs, hyps)


def align(ref: str, hyp: str, unit: Literal["word", "char"] = "word") -> list[tuple[str, Optional[str], Optional[str]]]:
    """Levenshtein alignment of two (already normalised) texts: ``[(op, ref_unit, hyp_unit)]``.

    ``op`` is ``C`` (correct), ``S``, ``D`` (``hyp_unit`` None) or ``I`` (``ref_unit`` None).
    """
    out = _process([ref], [hyp], unit)
    return _ops(out.alignments[0], out.references[0], out.hypotheses[0])


def _ops(chunks, ref_units: list[str], hyp_units: list[str]) -> list[tuple[str, Optional[str], Optional[str]]]:
    ops: list[tuple[str, Optional[str], Optional[str]]] = []
    for c in chunks:
        op = _OP[c.type]
        if op in "CS":
            for i, j in zip(range(c.ref_start_idx, c.ref_end_idx), range(c.hyp_start_idx, c.hyp_end_idx)):
                ops.append((op, ref_units[i], hyp_units[j]))
        elif op == "D":
            ops.extend(("D", ref_units[i], None) for i in range(c.ref_start_idx, c.ref_end_idx))
        else:
            ops.extend(("I", None, hyp_units[j]) for j in range(c.hyp_start_idx, c.hyp_end_idx))
    return ops


def _align_block(utt_id: str, ops: list[tuple[str, Optional[str], Optional[str]]], unit: str) -> str:
    def show(tok: Optional[str]) -> str:
        return _EMPTY if tok is None else ("<sp>" if unit == "char" and tok == " " else tok)

    cols = [(show(r), show(h), op) for op, r, h in ops]
    widths = [max(len(r), len(h), 1) for r, h, _ in cols]
    rows = {key: " ".join(c[k].ljust(w) for c, w in zip(cols, widths)).rstrip() for k, key in enumerate(("ref", "hyp", "op"))}
    n = {o: sum(1 for op, _, _ in ops if op == o) for o in "CSDI"}
    lines = [f"{utt_id} {key:<4} {rows[key]}".rstrip() for key in ("ref", "hyp", "op")]
    lines.append(f"{utt_id} #csid {n['C']} {n['S']} {n['D']} {n['I']}")
    return "\n".join(lines) + "\n"


def _error_rate(ids: list[str], refs: list[str], hyps: list[str], unit: str) -> tuple[ErrorCounts, str]:
    """Corpus counts and the alignment file text for normalised ``refs`` / ``hyps``."""
    if not ids:
        return ErrorCounts(), ""
    out = _process(refs, hyps, unit)
    counts = ErrorCounts(
        ref_len=sum(len(r) for r in out.references),
        hits=out.hits,
        sub=out.substitutions,
        dele=out.deletions,
        ins=out.insertions,
    )
    blocks = [_align_block(i, _ops(a, r, h), unit) for i, a, r, h in zip(ids, out.alignments, out.references, out.hypotheses)]
    return counts, "".join(blocks)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------
def load_refs(path: str | Path, target: Optional[str] = None) -> dict[str, str]:
    """References from a Kaldi text file, or from a cuts manifest (``*.jsonl[.gz]``) read with ``target``.

    ``target``: ``transcript`` (``supervision.text``) or ``translation:<tgt>``
    (``supervision.custom["translated_text"][tgt]``); default ``transcript`` for manifests.
    """
    path = Path(path)
    is_manifest = path.name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz"))
    if not is_manifest:
        if target is not None:
            raise ValueError(f"{path}: a reference target ({target!r}) only applies to a cuts manifest (*.jsonl.gz)")
        return read_text(path)
    from lhotse import CutSet

    from elfs2t.data.dataset import check_target, target_text

    target = target or "transcript"
    check_target(target, key="ref target")
    refs: dict[str, str] = {}
    for cut in CutSet.from_file(path):
        if cut.id in refs:
            raise ValueError(f"{path}: duplicate cut id {cut.id!r}")
        refs[cut.id] = " ".join(target_text(cut, target).split())
    return refs


def score_texts(
    refs: Mapping[str, str], hyps: Mapping[str, str], cfg: ScoreConfig, set_name: str = ""
) -> tuple[ScoreReport, dict[str, str]]:
    """Score ``hyps`` against ``refs``; returns the report and alignment texts by file name.

    Missing hypotheses count as empty ones; extra hypotheses are reported and ignored.
    """
    ids = sorted(refs)
    missing = [i for i in ids if i not in hyps]
    extra = sorted(i for i in hyps if i not in refs)
    if missing:
        log.warning("%s: %d of %d reference ids have no hypothesis (scored as empty), e.g. %s",
                    set_name or "set", len(missing), len(ids), missing[: cfg.max_examples])
    if extra:
        log.warning("%s: %d hypothesis ids have no reference (ignored), e.g. %s", set_name or "set", len(extra), extra[: cfg.max_examples])
    ref_list = [refs[i] for i in ids]
    hyp_list = [hyps.get(i, "") for i in ids]
    metrics = METRIC_SETS[cfg.metric]
    norm_desc = cfg.normalizer
    if cfg.normalizer == "whisper_en":
        norm_desc += f" (spelling mapping: {load_english_spelling_mapping(cfg.spelling_mapping)[1]})"
    report = ScoreReport(set_name=set_name, num_utts=len(ids), normalizer=norm_desc, missing=missing, extra=extra)
    aligns: dict[str, str] = {}
    if "wer" in metrics or "cer" in metrics:
        norm = get_normalizer(cfg.normalizer, cfg.spelling_mapping)
        ref_n = [norm(r) for r in ref_list]
        hyp_n = [norm(h) for h in hyp_list]
        for metric, unit, fname in (("wer", "word", "align.txt"), ("cer", "char", "align_char.txt")):
            if metric in metrics:
                counts, aligns[fname] = _error_rate(ids, ref_n, hyp_n, unit)
                report.counts[metric.upper()] = counts
                report.scores[metric.upper()] = counts.rate
    if "bleu" in metrics:
        _bleu_chrf(report, ref_list, hyp_list, cfg)
    return report, aligns


def _bleu_chrf(report: ScoreReport, refs: list[str], hyps: list[str], cfg: ScoreConfig) -> None:
    from sacrebleu.metrics import BLEU, CHRF

    for suffix, lower in (("", False), ("_lc", True)):
        for name, metric in (("BLEU", BLEU(lowercase=lower, tokenize=cfg.bleu_tokenize)), ("chrF", CHRF(lowercase=lower))):
            result = metric.corpus_score(hyps, [refs]) if refs else None
            key = name + suffix
            report.scores[key] = float(result.score) if result is not None else 0.0
            report.signatures[key] = str(metric.get_signature())
            report.details[key] = str(result) if result is not None else "empty set"


def format_result(report: ScoreReport, cfg: ScoreConfig, hyp_path: str = "", ref_path: str = "") -> str:
    """The text of ``result.txt``."""
    lines = [f"# elfs2t scoring: {report.set_name}" if report.set_name else "# elfs2t scoring"]
    if hyp_path:
        lines.append(f"hyp: {hyp_path}")
    if ref_path:
        lines.append(f"ref: {ref_path}")
    lines.append(f"num_utts: {report.num_utts}")
    k = cfg.max_examples
    more = lambda ids: " ..." if len(ids) > k else ""  # noqa: E731
    lines.append(
        f"missing_hyps: {len(report.missing)} (scored as empty hypotheses)"
        + (f" e.g. {' '.join(report.missing[:k])}{more(report.missing)}" if report.missing else "")
    )
    lines.append(
        f"extra_hyps: {len(report.extra)} (no reference, not scored)"
        + (f" e.g. {' '.join(report.extra[:k])}{more(report.extra)}" if report.extra else "")
    )
    if report.counts:
        lines.append(f"normalizer: {report.normalizer}")
    for name, c in report.counts.items():
        unit = "words" if name == "WER" else "chars"
        lines.append(
            f"{name}: {c.rate:.2f} % [ {c.errors} / {c.ref_len} {unit}, {c.sub} sub, {c.dele} del, {c.ins} ins, {c.hits} cor ]"
        )
    for name in ("BLEU", "BLEU_lc", "chrF", "chrF_lc"):
        if name in report.scores:
            lines.append(f"{name}: {report.scores[name]:.2f} | {report.details[name]} | {report.signatures[name]}")
    return "\n".join(lines) + "\n"


def score_files(
    hyp_path: str | Path,
    ref_path: str | Path,
    out_dir: str | Path,
    cfg: ScoreConfig,
    ref_target: Optional[str] = None,
    set_name: Optional[str] = None,
) -> ScoreReport:
    """Score a hypothesis file against references and write ``result.txt`` etc. into ``out_dir``."""
    out_dir = Path(out_dir)
    hyps = read_text(hyp_path)
    refs = load_refs(ref_path, ref_target)
    if not refs:
        raise ValueError(f"{ref_path}: no references")
    report, aligns = score_texts(refs, hyps, cfg, set_name=set_name or out_dir.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in aligns.items():
        write_text(out_dir / fname, text)
    data = asdict(report)
    data["counts"] = {k: asdict(v) | {"rate": v.rate} for k, v in report.counts.items()}
    write_text(out_dir / "result.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    write_text(out_dir / "result.txt", format_result(report, cfg, str(hyp_path), str(ref_path)))
    return report
