"""``README.txt`` of a generated mini_synth corpus (layout, counts, durations, sentence overlap, voices) and of its
generalisation corpus (``gen/README.txt``: the same per split, and the sentence structures)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from collections import Counter

from elfs2t.data.mini_synth.plan import GEN_SPLITS, SPLITS, CorpusPlan
from elfs2t.atomic import write_text

__all__ = ["write_summary", "write_gen_summary"]

_LAYOUT = """\
Layout (the real preparation code reads it unchanged):
  LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac   16 kHz FLAC, English (ASR)
  LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>.trans.txt    upper-case transcripts
  cv/de/clips/common_voice_de_<n>.mp3                             48 kHz MP3, German speech
  cv/de/validated.tsv                                             Common Voice v4 metadata
  covost/covost_v2.de_en.tsv                                      CoVoST 2 rows (path sentence translation client_id split)
  gen/                                                            the generalisation sets (if asked for): the same
                                                                  layouts, see gen/README.txt

Split mapping:
  train       -> LibriSpeech train-clean-100 | CoVoST train + train_covost
  dev         -> LibriSpeech dev-clean       | CoVoST dev
  test        -> LibriSpeech test-clean      | CoVoST test
  test_unseen -> LibriSpeech test-other      | CoVoST test_unseen   (voices never used in the other splits)
"""

_GEN_LAYOUT = """\
The generalisation sets: sentences from the training vocabulary in structures the training grammar never
produces (elfs2t/data/mini_synth/grammar_gen.py), in the same layouts as the main corpus:
  test_gen        -> LibriSpeech test-clean | CoVoST test          (seen voices)
  test_gen_unseen -> LibriSpeech test-other | CoVoST test_unseen   (unseen voices)
"""
_HEADER = ("split", "utts", "speakers", "minutes", "mean_s", "min_s", "max_s", "unique_sents", "sents_in_train")
_TASKS = (("en", "English ASR (LibriSpeech layout)"), ("de", "German -> English S2TT (Common Voice + CoVoST 2 layout)"))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells) + "\n"


def _stats(durs: list[float]) -> tuple[str, str, str, str]:
    if not durs:
        return "0.0", "-", "-", "-"
    return (f"{sum(durs) / 60:.1f}", f"{sum(durs) / len(durs):.2f}", f"{min(durs):.2f}", f"{max(durs):.2f}")


def _split_rows(plan: CorpusPlan, task: str, layout: Mapping[str, list], splits: Sequence[str],
                durations: Mapping[str, float], root: Path) -> list[tuple]:
    train_texts = {u.text for u in plan.utts[task]["train"]}
    rows = []
    for split in splits:
        utts = plan.utts[task][split]
        durs = [durations[str(Path(p).relative_to(root))] for _, _, p in layout[split]]
        texts = [u.text for u in utts]
        overlap = "-" if split == "train" else sum(t in train_texts for t in texts)
        rows.append((split, len(utts), len({u.speaker.speaker_id for u in utts}), *_stats(durs),
                     len(set(texts)), overlap))
    return rows


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
    for task, title in _TASKS:
        layout = en_layout if task == "en" else de_layout
        lines += [f"{title}\n", _table(_HEADER, _split_rows(plan, task, layout, SPLITS, durations, root)), "\n"]
    lines.append("Voices (espeak-ng voice+variant, pitch, rate wpm):\n")
    for task in ("en", "de"):
        for seen in (True, False):
            spk = [s for s in plan.speakers[task] if s.seen == seen]
            variants = sorted({s.variant for s in spk})
            label = "seen (train/dev/test)" if seen else "unseen (test_unseen only)"
            lines.append(f"  {task} {label}: {len(spk)} speakers, variants {' '.join(variants)}\n")
    return write_text(path, "".join(lines))


def write_gen_summary(path: Path, plan: CorpusPlan, en_layout: Mapping[str, list], de_layout: Mapping[str, list],
                      durations: Mapping[str, float], root: Path) -> Path:
    """Write the generalisation corpus' summary (``root`` is its folder) and return its path."""
    lines = [f"mini_synth generalisation corpus, seed {plan.seed}\n\n", _GEN_LAYOUT, "\n"]
    for task, title in _TASKS:
        layout = en_layout if task == "en" else de_layout
        structures = Counter(u.structure for split in GEN_SPLITS for u in plan.utts[task][split])
        lines += [f"{title}\n", _table(_HEADER, _split_rows(plan, task, layout, GEN_SPLITS, durations, root)),
                  "  structures: " + ", ".join(f"{k} {v}" for k, v in sorted(structures.items())) + "\n\n"]
    return write_text(path, "".join(lines))
