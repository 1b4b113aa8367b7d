"""Shared helpers for stage 1: atomic manifest writing, done markers, audio probing and the per-split report.

Every corpus preparation (:mod:`elfs2t.data.librispeech`, :mod:`elfs2t.data.covost2`, a recipe's
``local/`` function) ends the same way::

    report = SplitReport(split="de_en_train")
    report.skip("empty_translation", "clip_12.mp3")       # a bad row: counted, never fatal
    report.kept += 1
    write_set(cuts, output_dir, "de_en_train")              # cuts_<set>.jsonl.gz (+ recordings, supervisions)
    write_reports([report], output_dir / "report_covost2.json")

Writes go to a temporary name in the same folder and are renamed into place, so an interrupted
stage never leaves a half-written manifest that a re-run would trust. A set is *done* when its
marker ``.done_<set>`` exists next to the manifests.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from lhotse import CutSet, Recording, RecordingSet, SupervisionSet, load_manifest
from tqdm import tqdm
from elfs2t.atomic import write_manifest, write_text

logger = logging.getLogger(__name__)

#: How many example file names a report keeps per skip reason.
MAX_EXAMPLES = 5


@dataclass(kw_only=True)
class SplitReport:
    """What happened to the rows of one split: how many were kept, and which were skipped and why."""

    split: str
    """The set name (``asr_train``, ``de_en_dev``, ...)."""
    kept: int = 0
    """Rows that became cuts."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Skip reason -> count."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Skip reason -> up to :data:`MAX_EXAMPLES` example file names (or ``file:line`` for bad TSV lines)."""

    def skip(self, reason: str, example: str) -> None:
        """Count one skipped row under ``reason`` and remember ``example`` (a file name or ``file:line``)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(example)

    @property
    def num_skipped(self) -> int:
        """Total skipped rows over all reasons."""
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One line: ``<split>: kept N, skipped M (reason: n e.g. a, b; ...)``."""
        parts = [
            f"{reason}: {count} e.g. {', '.join(self.examples.get(reason, []))}"
            for reason, count in sorted(self.skipped.items())
        ]
        detail = f" ({'; '.join(parts)})" if parts else ""
        return f"{self.split}: kept {self.kept}, skipped {self.num_skipped}{detail}"

    def to_dict(self) -> dict:
        """JSON-ready dict of the report."""
        return {"split": self.split, "kept": self.kept, "skipped": dict(self.skipped), "examples": dict(self.examples)}


def cuts_path(output_dir: str | Path, set_name: str) -> Path:
    """``<output_dir>/cuts_<set>.jsonl.gz``, the stage-1 output named in docs/contracts.md."""
    return Path(output_dir) / f"cuts_{set_name}.jsonl.gz"


def done_marker(output_dir: str | Path, set_name: str) -> Path:
    """The marker file whose presence means the set ``set_name`` is completely written."""
    return Path(output_dir) / f".done_{set_name}"


def is_done(output_dir: str | Path, set_name: str) -> bool:
    """True when the set's marker and its cuts file both exist."""
    return done_marker(output_dir, set_name).is_file() and cuts_path(output_dir, set_name).is_file()


def clear_done(output_dir: str | Path, set_names: Iterable[str]) -> None:
    """Remove the done markers of ``set_names`` (used by ``--force``) so that the sets are rebuilt."""
    for name in set_names:
        done_marker(output_dir, name).unlink(missing_ok=True)


def load_set(output_dir: str | Path, set_name: str) -> CutSet:
    """Read the cuts of a finished set back (lazily opened manifests are not used: sets are small enough)."""
    return load_manifest(cuts_path(output_dir, set_name))


def write_set(cuts: CutSet, output_dir: str | Path, set_name: str) -> Path:
    """Write the cuts of one set plus its recordings and supervisions atomically, then its done marker.

    The marker is removed first and written last, so a crash in between leaves the set "not done".
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    marker = done_marker(output_dir, set_name)
    marker.unlink(missing_ok=True)
    cuts = cuts.to_eager()
    recordings = RecordingSet.from_recordings(c.recording for c in cuts if c.has_recording)
    supervisions = SupervisionSet.from_segments(s for c in cuts for s in c.supervisions)
    write_manifest(recordings, output_dir / f"recordings_{set_name}.jsonl.gz")
    write_manifest(supervisions, output_dir / f"supervisions_{set_name}.jsonl.gz")
    path = write_manifest(cuts, cuts_path(output_dir, set_name))
    marker.touch()
    logger.info("wrote %d cuts to %s", len(cuts), path)
    return path


def _read_reports(path: Path) -> list[SplitReport]:
    """Reports of an earlier :func:`write_reports` to ``path``; ``[]`` when absent or unreadable."""
    try:
        return [SplitReport(**item) for item in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []


def write_reports(reports: Sequence[SplitReport], path: str | Path) -> Path:
    """Write the per-split reports as JSON to ``path`` (and a ``.txt`` summary beside it); log each line.

    Reports already in ``path`` for other splits are kept; a split reported again is replaced.
    """
    path = Path(path)
    for report in reports:
        log = logger.warning if report.num_skipped else logger.info
        log("%s", report.summary())
    merged = {r.split: r for r in _read_reports(path)}  # sets prepared by earlier runs stay in the report
    merged.update({r.split: r for r in reports})
    write_text(path, json.dumps([r.to_dict() for r in merged.values()], indent=2) + "\n")
    write_text(path.with_suffix(".txt"), "".join(r.summary() + "\n" for r in merged.values()))
    return path


def failure_reason(path: Path) -> str:
    """Why an audio file could not become a recording: ``missing_audio``, ``zero_length_audio`` or
    ``unreadable_audio`` (an empty file or a header with 0 frames counts as zero length)."""
    if not path.is_file():
        return "missing_audio"
    if path.stat().st_size == 0:
        return "zero_length_audio"
    try:
        import soundfile

        if soundfile.info(str(path)).frames == 0:
            return "zero_length_audio"
    except Exception:
        pass
    return "unreadable_audio"


def _wav_data_shortfall(path: Path) -> int:
    """Bytes a RIFF/WAVE file's ``data`` chunk declares beyond the end of the file (0: complete, or not a WAV
    with a declared length). A WAV cut off mid-data keeps its header: the decoders then quietly return only the
    samples that are there, so the recording would look shorter and still carry the whole transcript."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # written by a stream: the length was never filled in
                    return 0
                return max(0, pos + 8 + chunk_size - size)
            pos += 8 + chunk_size + (chunk_size & 1)
    return 0


def is_truncated(path: Path) -> bool:
    """True when an audio file holds fewer samples than its header says: a WAV whose ``data`` chunk runs past
    the end of the file, or (other formats libsndfile reads: FLAC, MP3, ...) a file whose last half second
    (by the header's length) cannot be decoded. Files libsndfile cannot open are not judged here."""
    if _wav_data_shortfall(path) > 0:
        return True
    try:
        import soundfile

        with soundfile.SoundFile(str(path)) as f:
            if f.format == "WAV" or f.frames <= 0:
                return False
            window = min(f.frames, max(1, f.samplerate // 2))
            f.seek(f.frames - window)
            return len(f.read(window)) < window // 2
    except RuntimeError as exc:  # a decoder error at the tail (a cut FLAC "lost sync", a failed seek)
        msg = str(exc).lower()
        return "format not recognised" not in msg and "unknown format" not in msg
    except Exception:  # noqa: BLE001 -- soundfile cannot judge this file
        return False


def probe_audio(path: Path, recording_id: str) -> tuple[Recording | None, str | None]:
    """Read the header of one audio file: ``(recording, None)`` or ``(None, reason)``.

    Reasons: ``missing_audio`` (no such file), ``unreadable_audio`` (no backend can open it),
    ``zero_length_audio`` (no samples), ``truncated_audio`` (fewer samples than the header says:
    :func:`is_truncated`).
    """
    if not path.is_file():
        return None, "missing_audio"
    try:
        recording = Recording.from_file(path, recording_id=recording_id)
    except Exception as exc:  # any decoder failure means the same thing for us: skip and report
        logger.debug("cannot read %s: %s", path, exc)
        return None, failure_reason(path)
    if recording.num_samples <= 0 or recording.duration <= 0:
        return None, "zero_length_audio"
    if is_truncated(path):
        return None, "truncated_audio"
    return recording, None


def probe_many(
    items: Sequence[tuple[Path, str]], nj: int = 1, desc: str = "probing audio"
) -> list[tuple[Recording | None, str | None]]:
    """:func:`probe_audio` over ``(path, recording_id)`` pairs with ``nj`` threads and a progress bar.

    Results come back in the order of ``items``.
    """
    if nj <= 1:
        return [probe_audio(p, i) for p, i in tqdm(items, desc=desc, leave=False)]
    with ThreadPoolExecutor(max_workers=nj) as pool:
        return list(tqdm(pool.map(lambda it: probe_audio(*it), items), total=len(items), desc=desc, leave=False))


def keep_first_ids(rows: Iterable[tuple], report: SplitReport) -> list:
    """The cuts of ``(cut, where)`` rows without the repeats of an id: the first row of an id is kept, each later
    one is counted in ``report`` under ``duplicate_id`` as ``<id> (<where>; first at <where of the first>)``
    (``where``: the row's origin, e.g. ``transcript file:line``)."""
    first: dict[str, str] = {}
    kept = []
    for cut, where in rows:
        if cut.id in first:
            report.skip("duplicate_id", f"{cut.id} ({where}; first at {first[cut.id]})")
            continue
        first[cut.id] = where
        kept.append(cut)
    return kept


def count_audio_without_text(audio_files: Iterable[Path], ids: Iterable[str], report: SplitReport) -> int:
    """Count in ``report`` (``audio_without_transcript``) the audio files whose stem is none of ``ids``: audio
    that a transcript file should have listed and did not (a lost line is otherwise invisible)."""
    known = set(ids)
    orphans = sorted(p.name for p in audio_files if p.stem not in known)
    for name in orphans:
        report.skip("audio_without_transcript", name)
    return len(orphans)


def check_cuts_contract(cuts: CutSet, set_name: str) -> None:
    """Raise ``ValueError`` naming the set and cut unless each cut follows the stage-1 contract.

    Unique cut ids; one supervision per cut covering the whole recording, with a non-empty text and a language.
    """
    seen: set[str] = set()
    for cut in cuts:
        where = f"set {set_name!r}, cut {cut.id!r}"
        if cut.id in seen:
            raise ValueError(f"{where}: the id occurs more than once (cut ids must be unique in a set)")
        seen.add(cut.id)
        if len(cut.supervisions) != 1:
            raise ValueError(f"{where}: expected exactly one supervision, got {len(cut.supervisions)}")
        sup = cut.supervisions[0]
        if not (sup.text or "").strip():
            raise ValueError(f"{where}: supervision text is empty")
        if not sup.language:
            raise ValueError(f"{where}: supervision.language is not set")
        if abs(sup.start) > 1e-3 or abs(sup.duration - cut.duration) > 1e-3:
            raise ValueError(f"{where}: the supervision ({sup.start}+{sup.duration} s) must cover the whole "
                             f"cut ({cut.duration} s)")


def prepared_sets(output_dir: str | Path, set_names: Mapping[str, object] | Iterable[str]) -> dict[str, CutSet]:
    """Load every already finished set among ``set_names``; ``{}`` unless all of them are done."""
    names = list(set_names)
    if names and all(is_done(output_dir, n) for n in names):
        return {n: load_set(output_dir, n) for n in names}
    return {}
