"""``README.txt`` of a generated mini_synth corpus: layout, counts, durations, sentence overlap, voices."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from elfs2t.data.mini_synth.plan import SPLITS, CorpusPlan
from elfs2t.data.mini_synth.writers import write_text_atomic

__all__ = ["write_summary"]

_LAYOUT = """\
Layout (the real preparation code reads it unchanged):
  LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac   16 kHz FLAC, English (ASR)
  LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>.trans.txt    upper-case transcripts
  cv/de/clips/common_voice_de_<n>.mp3                             48 kHz MP3, German speech
  cv/de/validated.tsv                                             Common Voice v4 metadata
  covost/covost_v2.de_en.tsv                                      CoVoST 2 rows (path sentence translation client_id split)

Split mapping:
  train       -> LibriSpeech train-clean-100 | CoVoST train + train_covost
  dev         -> LibriSpeech dev-clean       | CoVoST dev
  test        -> LibriSpeech test-clean      | CoVoST test
  test_unseen -> LibriSpeech test-other      | CoVoST test_unseen   (voices never used in the other splits)
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells) + "\n"


def _stats(durs: list[float]) -> tuple[str, str, str, str]:
    if not durs:
        return "0.0", "-", "-", "-"
    return (f"{sum(durs) / 60:.1f}", f"{sum(durs) / len(durs):.2f}", f"{min(durs):.2f}", f"{max(durs):.2f}")


def write_summary(
    path: Path,
    plan: CorpusPlan,
    en_layout: Mapping[str, list],
    de_layout: Mapping[str, list],
    durations: Mapping[str, float],
    root: Path,
    sizes: Mapping[str, int],
) -> Path:
    """Write the corpus summary (deterministic for a given plan) and return its path."""
    lines = [f"mini_synth corpus, seed {plan.seed}, per task: "
             + ", ".join(f"{s} {sizes[s]}" for s in SPLITS) + "\n\n", _LAYOUT, "\n"]
    header = ("split", "utts", "speakers", "minutes", "mean_s", "min_s", "max_s", "unique_sents", "sents_in_train")
    for task, title, layout in (("en", "English ASR (LibriSpeech layout)", en_layout),
                                ("de", "German -> English S2TT (Common Voice + CoVoST 2 layout)", de_layout)):
        train_texts = {u.text for u in plan.utts[task]["train"]}
        rows = []
        for split in SPLITS:
            utts = plan.utts[task][split]
            durs = [durations[str(Path(p).relative_to(root))] for _, _, p in layout[split]]
            texts = [u.text for u in utts]
            overlap = "-" if split == "train" else sum(t in train_texts for t in texts)
            rows.append((split, len(utts), len({u.speaker.speaker_id for u in utts}), *_stats(durs),
                         len(set(texts)), overlap))
        lines += [f"{title}\n", _table(header, rows), "\n"]
    lines.append("Voices (espeak-ng voice+variant, pitch, rate wpm):\n")
    for task in ("en", "de"):
        for seen in (True, False):
            spk = [s for s in plan.speakers[task] if s.seen == seen]
            variants = sorted({s.variant for s in spk})
            label = "seen (train/dev/test)" if seen else "unseen (test_unseen only)"
            lines.append(f"  {task} {label}: {len(spk)} speakers, variants {' '.join(variants)}\n")
    return write_text_atomic(path, "".join(lines))
