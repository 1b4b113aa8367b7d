"""LibriSpeech stage 1: the corpus tree -> cuts named per docs/contracts.md, through Lhotse's recipe.

Lhotse's :func:`lhotse.recipes.librispeech.parse_utterance` reads each transcript line (the audio
path and speaker come from the utterance id); around it this module adds what a long run needs:
bad rows (a transcript line without text, a missing, unreadable, empty or truncated audio file, a repeated
utterance id) are skipped and counted in a report instead of stopping the stage, and so are audio files that no
transcript line names; training parts are combined into one set,
``supervision.language`` is the ISO code ``en``, and each set is written atomically with a done
marker so a re-run skips it.

    cuts = prepare_librispeech_cuts("/data/LibriSpeech", "data/manifests",
                                    parts=["train-clean-100", "dev-clean", "test-clean"])
    cuts["train"], cuts["dev_clean"], cuts["test_clean"]
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

from lhotse import CutSet
from lhotse.recipes.librispeech import LIBRISPEECH, MINI_LIBRISPEECH, download_librispeech, parse_utterance
from tqdm import tqdm

from elfs2t.data.manifests import (SplitReport, clear_done, count_audio_without_text, failure_reason, is_done,
                                   is_truncated, keep_first_ids, load_set, write_reports, write_set)

logger = logging.getLogger(__name__)

__all__ = ["LIBRISPEECH_PARTS", "default_set_name", "download_librispeech", "prepare_librispeech_cuts"]

#: Every part name a LibriSpeech (or mini LibriSpeech) tree may hold.
LIBRISPEECH_PARTS: tuple[str, ...] = tuple(LIBRISPEECH) + tuple(MINI_LIBRISPEECH)

#: The language code written into every supervision.
LANGUAGE = "en"


def default_set_name(part: str) -> str:
    """Contract set name of a part: training parts -> ``train``, ``dev-clean`` -> ``dev_clean``, ..."""
    return "train" if part.startswith("train") else part.replace("-", "_")


def _parse_line(part_dir: Path, line: str, where: str) -> tuple[object | None, str | None, str]:
    """One transcript line -> ``(cut, None, example)`` or ``(None, reason, example)``."""
    fields = line.strip().split(maxsplit=1)
    utt_id = fields[0] if fields else ""
    if len(fields) < 2 or not fields[1].strip():
        return None, "empty_text", where
    audio = part_dir / Path(utt_id.replace("-", "/")).parent / f"{utt_id}.flac"
    try:
        parsed = parse_utterance(part_dir, line, {})
    except Exception as exc:  # lhotse raises on files no backend can read; report, never crash
        logger.debug("%s: %s", where, exc)
        return None, failure_reason(audio), audio.name
    if parsed is None:
        return None, "missing_audio", audio.name
    recording, segment = parsed
    if recording.num_samples <= 0:
        return None, "zero_length_audio", audio.name
    if is_truncated(audio):  # the header promises more audio than the file holds: the text would not match
        return None, "truncated_audio", audio.name
    segment.language = LANGUAGE
    cut = recording.to_cut()
    cut.supervisions = [segment]
    return cut, None, where


def _prepare_part(corpus_dir: Path, part: str, report: SplitReport, nj: int) -> list[tuple[object, str]]:
    """``(cut, transcript file:line)`` of every kept row of one part folder; skipped rows, and audio files that no
    transcript line names, go into ``report``."""
    part_dir = corpus_dir / part
    jobs = []
    for trans in sorted(part_dir.rglob("*.trans.txt")):
        with open(trans, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if line.strip():
                    jobs.append((line, f"{trans.name}:{lineno}"))
    count_audio_without_text(part_dir.rglob("*.flac"), (line.split(maxsplit=1)[0] for line, _ in jobs), report)
    with ThreadPoolExecutor(max_workers=max(1, nj)) as pool:
        results = list(
            tqdm(pool.map(lambda j: _parse_line(part_dir, *j), jobs), total=len(jobs), desc=part, leave=False)
        )
    cuts = []
    for cut, reason, example in results:
        if cut is None:
            report.skip(reason, example)
        else:
            cuts.append((cut, example))
    return cuts


def prepare_librispeech_cuts(
    corpus_dir: str | Path,
    output_dir: str | Path,
    parts: Sequence[str] = ("train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"),
    set_names: Mapping[str, str] | None = None,
    nj: int = 1,
    force: bool = False,
) -> dict[str, CutSet]:
    """Prepare LibriSpeech parts as contract cut sets in ``output_dir``; return ``{set_name: CutSet}``.

    :param corpus_dir: the ``LibriSpeech`` folder holding part folders (``train-clean-100/``, ...).
    :param output_dir: where ``cuts_<set>.jsonl.gz`` (+ recordings/supervisions), the markers and
        ``report_librispeech.json`` go.
    :param parts: part folder names to prepare; all must exist under ``corpus_dir``.
    :param set_names: part -> set name; parts mapped to the same name are combined. Default:
        :func:`default_set_name` (all training parts -> ``train``).
    :param nj: threads for reading audio headers.
    :param force: rebuild sets even when their done markers exist.
    :raises FileNotFoundError: ``corpus_dir`` or a requested part folder is missing.
    :raises ValueError: an unknown part name, or a set that kept no utterance at all.
    """
    corpus_dir, output_dir = Path(corpus_dir), Path(output_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"LibriSpeech corpus dir not found: {corpus_dir}")
    unknown = [p for p in parts if p not in LIBRISPEECH_PARTS]
    if unknown:
        raise ValueError(f"unknown LibriSpeech part(s) {unknown}; known: {list(LIBRISPEECH_PARTS)}")
    missing = [p for p in parts if not (corpus_dir / p).is_dir()]
    if missing:
        raise FileNotFoundError(f"LibriSpeech part folder(s) missing under {corpus_dir}: {missing}")
    names = dict(set_names or {})
    groups: dict[str, list[str]] = {}
    for part in parts:
        groups.setdefault(names.get(part, default_set_name(part)), []).append(part)
    if force:
        clear_done(output_dir, groups)

    result: dict[str, CutSet] = {}
    reports = []
    for set_name, set_parts in groups.items():
        if is_done(output_dir, set_name):
            logger.info("LibriSpeech set %s already prepared in %s - skipping", set_name, output_dir)
            result[set_name] = load_set(output_dir, set_name)
            continue
        report = SplitReport(split=set_name)
        rows = [row for part in set_parts for row in _prepare_part(corpus_dir, part, report, nj)]
        cuts = keep_first_ids(rows, report)  # a repeated utterance id: counted, by name, never two cuts of one id
        report.kept = len(cuts)
        reports.append(report)
        if not cuts:
            write_reports(reports, output_dir / "report_librispeech.json")
            raise ValueError(f"LibriSpeech set {set_name} ({set_parts} in {corpus_dir}): no usable utterance")
        cutset = CutSet.from_cuts(sorted(cuts, key=lambda c: c.id))
        write_set(cutset, output_dir, set_name)
        result[set_name] = cutset
    if reports:
        write_reports(reports, output_dir / "report_librispeech.json")
    return result
