"""Tiny subword vocabularies (stage 3 of the AR baseline) for the AR tests."""
from __future__ import annotations

from pathlib import Path

from elfs2t.text.subword import SubwordConfig, train_subword


def make_vocab(root: Path, texts: list[str], vocab_size: int = 120, model_type: str = "bpe") -> Path:
    """Train a SentencePiece vocabulary on ``texts`` into ``root/vocab``; returns the folder."""
    root.mkdir(parents=True, exist_ok=True)
    text = root / "text.txt"
    text.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    train_subword(text, root / "vocab", SubwordConfig(vocab_size=vocab_size, model_type=model_type))
    return root / "vocab"
