"""Corpus-specific stage 1 of this recipe: the corpus folder -> ``{set_name: CutSet}`` (docs/contracts.md).

This is the only Python a new recipe needs. ``python -m elfs2t.bin.prepare_data local`` imports this
file, calls :func:`prepare` and checks and writes what it returns (atomically, with done markers).
Replace the body with your corpus' layout; keep the signature and the contract:
one supervision per cut covering the whole recording, ``text``, ``language``, ``speaker``, and for
speech translation ``supervision.custom["translated_text"][<tgt>]``.

The example reads a simple layout::

    <corpus>/<split>/text          lines "<utt_id> <transcript>"
    <corpus>/<split>/wav/<utt_id>.wav

and makes one set per split folder. Bad rows (an empty text, a missing, unreadable, empty or truncated wav, a
repeated id) are skipped and reported, never fatal, and so are wavs that no text line names.
"""
from __future__ import annotations

from pathlib import Path

from lhotse import CutSet
from lhotse.supervision import SupervisionSegment

from elfs2t.data.manifests import SplitReport, count_audio_without_text, keep_first_ids, probe_many, write_reports

#: The corpus language (``supervision.language``).
LANGUAGE = "en"


def prepare(corpus_dir: Path, output_dir: Path, nj: int = 1) -> dict[str, CutSet]:
    """Return one CutSet per ``<split>/`` folder of ``corpus_dir``; write the skip report to ``output_dir``."""
    corpus_dir = Path(corpus_dir)
    sets, reports = {}, []
    for split_dir in sorted(p for p in corpus_dir.iterdir() if (p / "text").is_file()):
        report = SplitReport(split=split_dir.name)
        rows, named = [], []
        for lineno, line in enumerate((split_dir / "text").read_text(encoding="utf-8").splitlines(), start=1):
            utt_id, _, text = line.strip().partition(" ")
            if not utt_id:
                continue
            named.append(utt_id)
            if not text.strip():
                report.skip("empty_text", f"{split_dir.name}/text:{lineno}")
                continue
            rows.append((utt_id, text.strip(), f"{split_dir.name}/text:{lineno}"))
        count_audio_without_text((split_dir / "wav").glob("*.wav"), named, report)
        probed = probe_many([(split_dir / "wav" / f"{u}.wav", u) for u, _, _ in rows], nj=nj, desc=split_dir.name)
        cuts = []
        for (utt_id, text, where), (recording, reason) in zip(rows, probed):
            if recording is None:
                report.skip(reason, f"{utt_id}.wav")
                continue
            cut = recording.to_cut()
            if recording.sampling_rate != 16000:
                cut = cut.resample(16000)
            cut.supervisions = [SupervisionSegment(
                id=utt_id, recording_id=utt_id, start=0.0, duration=cut.duration, channel=0,
                text=text, language=LANGUAGE, speaker=utt_id.split("-")[0],
            )]
            cuts.append((cut, where))
        cuts = keep_first_ids(cuts, report)
        report.kept = len(cuts)
        reports.append(report)
        sets[split_dir.name] = CutSet.from_cuts(cuts)
    if not sets:
        raise FileNotFoundError(f"{corpus_dir}: no <split>/text file found")
    write_reports(reports, Path(output_dir) / "report_local.json")
    return sets
