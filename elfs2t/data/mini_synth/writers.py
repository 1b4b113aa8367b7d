"""Text-side writers of the two corpus layouts mini_synth imitates (audio is written by ``synth``).

LibriSpeech (``<root>/LibriSpeech``)::

    <part>/<spk>/<chapter>/<spk>-<chapter>-<utt:04d>.flac      16 kHz FLAC
    <part>/<spk>/<chapter>/<spk>-<chapter>.trans.txt          "<spk>-<chapter>-<utt:04d> UPPER CASE TEXT"

Common Voice v4 (``<root>/cv/de``) + CoVoST 2 (``<root>/covost``)::

    cv/de/clips/<name>.mp3                                    48 kHz MP3
    cv/de/validated.tsv      client_id path sentence up_votes down_votes age gender accent
    covost/covost_v2.de_en.tsv   path sentence translation client_id split

TSVs are tab-separated, UTF-8, with no quoting (as the real files); fields never contain tabs or
newlines (checked).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence
from elfs2t.atomic import write_text

__all__ = [
    "LibriUtt", "CvClip", "librispeech_audio_path", "write_librispeech_transcripts",
    "write_cv_validated", "write_covost_tsv", "CV_HEADER", "COVOST_HEADER",
]

CV_HEADER = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent")
"""Columns of Common Voice v4 ``validated.tsv``."""
COVOST_HEADER = ("path", "sentence", "translation", "client_id", "split")
"""Columns of CoVoST 2 ``covost_v2.<src>_<tgt>.tsv``."""


@dataclass(frozen=True)
class LibriUtt:
    """One LibriSpeech-layout utterance."""

    speaker: int
    """Speaker id (directory name)."""
    chapter: int
    """Chapter id (directory name)."""
    index: int
    """Utterance index within the chapter."""
    transcript: str
    """Upper-case LibriSpeech transcript."""

    @property
    def utt_id(self) -> str:
        """``<spk>-<chapter>-<utt:04d>``."""
        return f"{self.speaker}-{self.chapter}-{self.index:04d}"


@dataclass(frozen=True)
class CvClip:
    """One Common Voice clip with its CoVoST 2 row."""

    path: str
    """Clip file name in ``clips/`` (e.g. ``common_voice_de_10000001.mp3``)."""
    sentence: str
    """German text."""
    translation: str
    """English translation."""
    client_id: str
    """Speaker hash."""
    split: str
    """CoVoST split: train, train_covost, dev, test or test_unseen."""
    gender: str
    """male / female."""
    age: str
    """Common Voice age bucket."""


def librispeech_audio_path(part_dir: Path, utt: LibriUtt) -> Path:
    """``<part_dir>/<spk>/<chapter>/<spk>-<chapter>-<utt:04d>.flac``."""
    return part_dir / str(utt.speaker) / str(utt.chapter) / f"{utt.utt_id}.flac"


def write_librispeech_transcripts(part_dir: Path, utts: Iterable[LibriUtt]) -> list[Path]:
    """Write one ``<spk>-<chapter>.trans.txt`` per chapter (lines sorted by utterance id)."""
    chapters: dict[tuple[int, int], list[LibriUtt]] = defaultdict(list)
    for utt in utts:
        if not utt.transcript or "\n" in utt.transcript:
            raise ValueError(f"{utt.utt_id}: transcript must be one non-empty line, got {utt.transcript!r}")
        chapters[(utt.speaker, utt.chapter)].append(utt)
    written = []
    for (spk, chapter), items in sorted(chapters.items()):
        lines = [f"{u.utt_id} {u.transcript}\n" for u in sorted(items, key=lambda u: u.index)]
        written.append(write_text(part_dir / str(spk) / str(chapter) / f"{spk}-{chapter}.trans.txt", "".join(lines)))
    return written


def _tsv(header: Sequence[str], rows: Iterable[Sequence[str]], where: Path) -> str:
    out = ["\t".join(header) + "\n"]
    for i, row in enumerate(rows, start=2):
        for field in row:
            if "\t" in field or "\n" in field or "\r" in field:
                raise ValueError(f"{where}: line {i}: field {field!r} contains a tab or newline")
        out.append("\t".join(row) + "\n")
    return "".join(out)


def write_cv_validated(path: Path, clips: Sequence[CvClip], accent: str = "germany") -> Path:
    """Common Voice v4 ``validated.tsv`` listing every clip (2 up-votes, 0 down-votes)."""
    rows = [(c.client_id, c.path, c.sentence, "2", "0", c.age, c.gender, accent) for c in clips]
    return write_text(path, _tsv(CV_HEADER, rows, path))


def write_covost_tsv(path: Path, clips: Sequence[CvClip]) -> Path:
    """CoVoST 2 ``covost_v2.de_en.tsv`` with one row per clip."""
    rows = [(c.path, c.sentence, c.translation, c.client_id, c.split) for c in clips]
    return write_text(path, _tsv(COVOST_HEADER, rows, path))
