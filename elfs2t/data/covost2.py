"""CoVoST 2 stage 1: Common Voice v4 clips + ``covost_v2.<src>_<tgt>.tsv`` -> S2TT cut sets (Lhotse has no recipe).

The join follows the CoVoST 2 release (and fairseq's ``prep_covost_data.py``): Common Voice's
``validated.tsv`` gives ``path, sentence, client_id``; the CoVoST TSV gives ``path, translation,
split``; they are joined on ``path``. ``train`` is ``train`` + ``train_covost``. Both TSVs are read
with the ``csv`` module, ``QUOTE_NONE`` and backslash escapes, and *no* NA filtering: a sentence
``"NA"`` or ``null`` is text like any other, and a ``"`` inside a sentence stays literal.

Per split the kept cuts carry ``supervision.text`` (source sentence), ``.language`` (``src``),
``.speaker`` (``client_id``) and ``.custom["translated_text"][tgt]``; recordings not at 16 kHz
(Common Voice mp3 is 48 kHz) are resampled in the cut. Rows with an empty sentence or translation,
a missing, unreadable, zero-length or truncated clip, a repeated path or clip id (``a.mp3`` and ``a.wav``), or a
malformed TSV line (wrong column count, reported with file and line) are skipped and counted in
``report_covost2_<prefix>.json`` (also logged). Clips that no CoVoST row names are not counted: Common Voice's
``clips/`` holds every clip of the language, and CoVoST uses a part of them.

    cuts = prepare_covost2("/data/cv4/de", "covost_v2.de_en.tsv", "de", "en", "data/manifests", nj=8)
    cuts["de_en_train"], cuts["de_en_dev"], cuts["de_en_test"]
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from lhotse import CutSet
from lhotse.supervision import SupervisionSegment

from elfs2t.data.manifests import (SplitReport, clear_done, is_done, keep_first_ids, load_set, probe_many,
                                   write_reports, write_set)

logger = logging.getLogger(__name__)

__all__ = ["COVOST2_SPLITS", "COVOST_URL", "TARGET_SAMPLE_RATE", "TsvRow", "download_covost2_tsv",
           "prepare_covost2", "read_tsv"]

#: Split names accepted by :func:`prepare_covost2` (``test_unseen`` is used by mini_synth).
COVOST2_SPLITS: tuple[str, ...] = ("train", "dev", "test", "test_unseen")

#: Where the CoVoST 2 translation TSVs are published (``covost_v2.<src>_<tgt>.tsv.tar.gz``).
COVOST_URL = "https://dl.fbaipublicfiles.com/covost"

#: Cuts load audio at this rate (docs/contracts.md).
TARGET_SAMPLE_RATE = 16000


@dataclass(kw_only=True)
class TsvRow:
    """One data line of a TSV: its 1-based line number and the values by column name."""

    lineno: int
    """Line number in the file (the header is line 1)."""
    values: dict[str, str]
    """Column name -> raw string value."""


def read_tsv(path: str | Path, required: Sequence[str], bad_lines: list[str]) -> Iterator[TsvRow]:
    """Rows of a tab-separated file with a header; no quoting, backslash escapes, no NA handling.

    :param path: the TSV file.
    :param required: column names that must be in the header.
    :param bad_lines: receives ``"<file>:<line>: <problem>"`` for each line with the wrong number
        of columns; such lines are not yielded.
    :raises FileNotFoundError: the file is missing.
    :raises ValueError: naming the file, when the header lacks a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TSV file not found: {path}")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}:1: empty file, expected a header with columns {list(required)}")
        absent = [c for c in required if c not in header]
        if absent:
            raise ValueError(f"{path}:1: header {header} lacks column(s) {absent}")
        for values in reader:
            lineno = reader.line_num
            if not values or values == [""]:
                continue
            if len(values) != len(header):
                bad_lines.append(f"{path.name}:{lineno}: expected {len(header)} columns, got {len(values)}")
                continue
            yield TsvRow(lineno=lineno, values=dict(zip(header, values)))


def download_covost2_tsv(target_dir: str | Path, src_lang: str, tgt_lang: str) -> Path:
    """Download and unpack ``covost_v2.<src>_<tgt>.tsv`` into ``target_dir``; return its path (skip if present).

    The Common Voice v4 audio cannot be downloaded anonymously; the user supplies it (``db.sh``).
    """
    import tarfile

    from lhotse.utils import resumable_download, safe_extract

    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    tsv = target_dir / f"covost_v2.{src_lang}_{tgt_lang}.tsv"
    if tsv.is_file():
        logger.info("%s already present - skipping download", tsv)
        return tsv
    archive = target_dir / f"{tsv.name}.tar.gz"
    resumable_download(f"{COVOST_URL}/{archive.name}", filename=archive)
    with tarfile.open(archive) as tar:
        safe_extract(tar, path=target_dir)
    if not tsv.is_file():
        raise FileNotFoundError(f"{archive} did not contain {tsv.name}")
    return tsv


def _wanted_split(split_value: str, splits: Sequence[str]) -> str | None:
    """The requested split a TSV ``split`` value belongs to (``train_covost`` -> ``train``), or None."""
    name = "train" if split_value == "train_covost" else split_value
    return name if name in splits else None


def prepare_covost2(
    cv_dir: str | Path,
    covost_tsv: str | Path,
    src_lang: str,
    tgt_lang: str,
    output_dir: str | Path,
    splits: Sequence[str] = ("train", "dev", "test"),
    prefix: str | None = None,
    nj: int = 1,
    force: bool = False,
) -> dict[str, CutSet]:
    """Prepare CoVoST 2 ``src -> tgt`` splits as cut sets ``<prefix>_<split>``; return ``{set_name: CutSet}``.

    :param cv_dir: the Common Voice v4 language folder (``validated.tsv`` and ``clips/``).
    :param covost_tsv: ``covost_v2.<src>_<tgt>.tsv`` (columns ``path``, ``translation``, ``split``).
    :param src_lang: source language code, e.g. ``de``; written to ``supervision.language``.
    :param tgt_lang: target language code, e.g. ``en``; the key in ``custom["translated_text"]``.
    :param output_dir: where ``cuts_<set>.jsonl.gz``, markers and the report go.
    :param splits: which of :data:`COVOST2_SPLITS` to prepare.
    :param prefix: set-name prefix; default ``<src>_<tgt>`` (mini_synth uses ``st``).
    :param nj: threads probing the audio files.
    :param force: rebuild sets even when their done markers exist.
    :raises FileNotFoundError: ``cv_dir``, its ``validated.tsv`` or ``covost_tsv`` is missing.
    :raises ValueError: unknown split, a TSV header without a needed column, or a split left empty.
    """
    cv_dir, output_dir = Path(cv_dir), Path(output_dir)
    unknown = [s for s in splits if s not in COVOST2_SPLITS]
    if unknown:
        raise ValueError(f"unknown CoVoST 2 split(s) {unknown}; known: {list(COVOST2_SPLITS)}")
    if not cv_dir.is_dir():
        raise FileNotFoundError(f"Common Voice language dir not found: {cv_dir}")
    prefix = prefix or f"{src_lang}_{tgt_lang}"
    set_names = {split: f"{prefix}_{split}" for split in splits}
    if force:
        clear_done(output_dir, set_names.values())
    todo = [s for s in splits if not is_done(output_dir, set_names[s])]
    result = {set_names[s]: load_set(output_dir, set_names[s]) for s in splits if s not in todo}
    for name in result:
        logger.info("CoVoST 2 set %s already prepared in %s - skipping", name, output_dir)
    if not todo:
        return result

    # Common Voice: path -> (sentence, client_id). Malformed lines are reported against every split.
    bad_lines: list[str] = []
    validated = cv_dir / "validated.tsv"
    cv_rows = {r.values["path"]: r for r in read_tsv(validated, ("path", "sentence", "client_id"), bad_lines)}
    reports = {s: SplitReport(split=set_names[s]) for s in todo}
    rows: dict[str, list[tuple[TsvRow, TsvRow]]] = {s: [] for s in todo}
    seen: set[str] = set()
    for row in read_tsv(covost_tsv, ("path", "translation", "split"), bad_lines):
        split = _wanted_split(row.values["split"], todo)
        if split is None:
            continue
        report, where = reports[split], f"{Path(covost_tsv).name}:{row.lineno} ({row.values['path']})"
        cv_row = cv_rows.get(row.values["path"])
        if row.values["path"] in seen:
            report.skip("duplicate_path", where)
        elif cv_row is None:
            report.skip("not_in_validated_tsv", where)
        elif not cv_row.values["sentence"].strip():
            report.skip("empty_text", where)
        elif not row.values["translation"].strip():
            report.skip("empty_translation", where)
        else:
            seen.add(row.values["path"])
            rows[split].append((row, cv_row))
    for line in bad_lines:
        logger.warning("malformed TSV line skipped: %s", line)

    for split in todo:
        report, name = reports[split], set_names[split]
        for line in bad_lines:
            report.skip("malformed_tsv_line", line)
        items = [(cv_dir / "clips" / row.values["path"], Path(row.values["path"]).stem) for row, _ in rows[split]]
        probed = probe_many(items, nj=nj, desc=f"probing {name}")
        cuts = []
        for (row, cv_row), (path, _), (recording, reason) in zip(rows[split], items, probed):
            if recording is None:
                report.skip(reason, path.name)
                continue
            cut = recording.to_cut()
            if recording.sampling_rate != TARGET_SAMPLE_RATE:
                cut = cut.resample(TARGET_SAMPLE_RATE)
            cut.supervisions = [SupervisionSegment(
                id=recording.id,
                recording_id=recording.id,
                start=0.0,
                duration=cut.duration,  # after resampling: never longer than the cut
                channel=0,
                text=cv_row.values["sentence"].strip(),
                language=src_lang,
                speaker=cv_row.values["client_id"],
                custom={"translated_text": {tgt_lang: row.values["translation"].strip()}},
            )]
            cuts.append((cut, f"{Path(covost_tsv).name}:{row.lineno}"))
        cuts = keep_first_ids(cuts, report)  # two clips with one id (a.mp3, a.wav): counted, by name
        report.kept = len(cuts)
        if not cuts:
            write_reports(list(reports.values()), output_dir / f"report_covost2_{prefix}.json")
            raise ValueError(f"CoVoST 2 split {split} ({covost_tsv}, {cv_dir}): no usable row")
        cutset = CutSet.from_cuts(sorted(cuts, key=lambda c: c.id))
        write_set(cutset, output_dir, name)
        result[name] = cutset
    write_reports(list(reports.values()), output_dir / f"report_covost2_{prefix}.json")
    return result
