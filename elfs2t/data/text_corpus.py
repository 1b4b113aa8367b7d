"""Plain-text corpora for text-only ELF training (stage 3): one sentence per line, or ``source<TAB>target``.

Batch dictionary made by :func:`collate_text`::

    {
      "text":        list[str]  length B   target sentences
      "source_text": list[str]  length B   source sentences (paired corpora only)
    }

Empty lines are skipped; a paired corpus whose line does not hold exactly one tab is an error that
names the file and line.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from torch.utils.data import DataLoader, Dataset, RandomSampler

log = logging.getLogger(__name__)

__all__ = ["read_text_lines", "TextLineDataset", "collate_text", "text_loader", "sample_reporter"]


def read_text_lines(path: str | Path, *, paired: bool = False) -> list[tuple[Optional[str], str]]:
    """``(source or None, text)`` per non-empty line of a UTF-8 file (stripped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text corpus not found: {path}")
    rows: list[tuple[Optional[str], str]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            if paired:
                parts = line.split("\t")
                if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                    raise ValueError(f"{path}:{lineno}: expected 'source<TAB>target', got {line!r}")
                rows.append((parts[0].strip(), parts[1].strip()))
            else:
                rows.append((None, line.strip()))
    if not rows:
        raise ValueError(f"{path}: no non-empty lines")
    log.info("read %d %s from %s", len(rows), "pairs" if paired else "sentences", path)
    return rows


class TextLineDataset(Dataset):
    """Items ``{"text": str}`` (and ``"source_text"`` for paired corpora) from a text file or a list."""

    def __init__(self, source: str | Path | list[str], *, paired: bool = False) -> None:
        if isinstance(source, list):
            if paired:
                raise ValueError("TextLineDataset: paired=True needs a file of 'source<TAB>target' lines")
            self.rows = [(None, s.strip()) for s in source if s.strip()]
            if not self.rows:
                raise ValueError("TextLineDataset: the list of sentences is empty")
        else:
            self.rows = read_text_lines(source, paired=paired)
        self.paired = paired

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, str]:
        src, text = self.rows[index]
        return {"text": text} if src is None else {"text": text, "source_text": src}

    def texts(self) -> list[str]:
        """All target sentences, in file order."""
        return [t for _, t in self.rows]

    def sources(self) -> list[str]:
        """All source sentences (paired corpora), in file order."""
        return [s for s, _ in self.rows if s is not None]


def collate_text(items: list[dict[str, str]]) -> dict[str, list[str]]:
    """List of items -> the batch dictionary of the module docstring."""
    batch = {"text": [it["text"] for it in items]}
    if items and "source_text" in items[0]:
        batch["source_text"] = [it["source_text"] for it in items]
    return batch


def text_loader(dataset: TextLineDataset, batch_size: int, *, shuffle: bool = True,
                drop_last: bool = True) -> DataLoader:
    """Shuffled DataLoader of text batches (drops a short last batch unless the corpus is smaller).

    The shuffle order comes from the global torch RNG when an epoch starts; the trainer seeds it per
    epoch, so a resumed run sees the same order and can skip the batches it already consumed.
    """
    sampler = RandomSampler(dataset) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, collate_fn=collate_text,
                      drop_last=drop_last and len(dataset) >= batch_size)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def sample_reporter(corpus: "TextLineDataset", logger: logging.Logger):
    """``report(step, samples) -> dict`` for pre-training validation hooks: logs each sampled sentence and
    returns ``sample_in_corpus`` (share of samples that are corpus lines, case- and space-insensitive) and
    ``samples`` (joined by `` | ``)."""
    known = {_norm(t) for t in corpus.texts()}

    def report(step: int, samples: list[str]) -> dict:
        for i, text in enumerate(samples):
            logger.info("step %d sample %d: %s", step, i, text)
        return {"sample_in_corpus": sum(_norm(s) in known for s in samples) / len(samples),
                "samples": " | ".join(samples)}

    return report
