"""Subword vocabularies trained with SentencePiece on the training text (the AR baseline's stage 3).

As ESPnet's ``token_list`` stage: a SentencePiece model (BPE or unigram) trained on the training targets, one small
file, deterministic (the same text and settings give the same bytes)::

    train_subword("data/lm/train_text.txt", "data/token_list/en", SubwordConfig(vocab_size=1000))
    tok = load_subword("data/token_list/en")      # = AutoTokenizer.from_pretrained("data/token_list/en")
    tok("the cat sat", add_special_tokens=False)["input_ids"]

The output folder holds

* ``sp.model`` / ``sp.vocab``: the SentencePiece model and its pieces with their log-probabilities (read it with
  ``sentencepiece.SentencePieceProcessor(model_file=...)``);
* ``tokenizer.json`` + ``tokenizer_config.json``: the same model as a Hugging Face fast tokenizer, so that
  ``ar.tokenizer`` names the folder like any tokenizer directory and the analysis gets character offsets. The
  conversion is checked when the vocabulary is written: on every line of the training text the Hugging Face
  tokenizer must give SentencePiece's ids, or the stage fails (:func:`check_same_ids`);
* ``subword.json``: the settings, the number of pieces, the training text's hash and its tokens per line.

Special pieces: ``<unk>`` 0, ``<s>`` 1 (BOS), ``</s>`` 2 (EOS), ``<pad>`` 3. The text is taken as it is
(SentencePiece's ``identity`` normalisation: no NFKC, no case change; runs of spaces collapse), so decoding
gives the text back exactly for every character seen in training (``character_coverage`` 1.0).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Literal

from elfs2t.config import config_check
from elfs2t.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["SubwordConfig", "SPECIALS", "train_subword", "load_subword", "check_same_ids", "is_subword_dir"]

SPECIALS = {"unk": ("<unk>", 0), "bos": ("<s>", 1), "eos": ("</s>", 2), "pad": ("<pad>", 3)}
"""Special pieces and their ids in every vocabulary written here."""
META = "subword.json"


@dataclass(kw_only=True)
class SubwordConfig:
    """A SentencePiece vocabulary."""

    model_type: Literal["bpe", "unigram"] = "bpe"
    """SentencePiece's algorithm: ``bpe`` (merges of frequent pairs) or ``unigram`` (ESPnet's default). On the
    mini_synth text (6000 lines, ~500 words) unigram stops at 507 pieces and splits frequent words ("be ca use",
    11.3 tokens per line), BPE at 1000 pieces keeps them whole (8.8 tokens per line)."""
    vocab_size: int = 1000
    """Pieces including the 4 specials; a small text that cannot fill it gets fewer (logged)."""
    character_coverage: float = 1.0
    """Share of the training characters covered by single-character pieces (1.0: all; <1 maps rare ones to
    ``<unk>``, for scripts with thousands of characters)."""
    max_sentences: int = 2_000_000
    """Lines sampled for training from a larger text (SentencePiece's ``input_sentence_size``)."""
    seed: int = 0
    """SentencePiece's random seed (sentence sampling and seed pieces)."""

    def validate(self) -> None:
        config_check(self.vocab_size > len(SPECIALS), "vocab_size", self.vocab_size,
                     f"must be > {len(SPECIALS)} (the special pieces)")
        config_check(0 < self.character_coverage <= 1, "character_coverage", self.character_coverage,
                     "must be in (0, 1]")
        config_check(self.max_sentences >= 1, "max_sentences", self.max_sentences, "must be >= 1")


def _lines(text_file: Path) -> list[str]:
    if not text_file.is_file():
        raise FileNotFoundError(f"training text not found: {text_file}")
    lines = [" ".join(line.split()) for line in text_file.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise InputError(f"{text_file}: no text to train a vocabulary on (empty file)")
    return lines


def _bpe_merges(pieces: dict[str, int]) -> list[tuple[str, str]]:
    """The merges of a SentencePiece BPE model: every split of a piece into two pieces, in the order the
    pieces were learned (their ids)."""
    specials = {piece for piece, _ in SPECIALS.values()}
    merges = []
    for piece, rank in pieces.items():
        if piece in specials:
            continue
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in pieces and right in pieces and not {left, right} & specials:
                merges.append((rank, pieces[left], pieces[right], left, right))
    return [(m[3], m[4]) for m in sorted(merges)]


def _hf_tokenizer(model_file: Path, model_type: str):
    """The SentencePiece model ``model_file`` that :func:`train_subword` wrote (``model_type`` BPE or unigram,
    identity normalisation) as a ``PreTrainedTokenizerFast``."""
    import sentencepiece as spm
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    if model_type == "unigram":
        tok = Tokenizer(models.Unigram(vocab, unk_id=SPECIALS["unk"][1], byte_fallback=False))
    else:
        pieces = {piece: i for i, (piece, _) in enumerate(vocab)}
        tok = Tokenizer(models.BPE(pieces, _bpe_merges(pieces), unk_token=SPECIALS["unk"][0], fuse_unk=True,
                                   byte_fallback=False))
    # SentencePiece with identity normalisation: runs of spaces collapse, leading / trailing ones go
    tok.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    names = {k: piece for k, (piece, _) in SPECIALS.items()}
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=names["unk"], bos_token=names["bos"],
                                   eos_token=names["eos"], pad_token=names["pad"], clean_up_tokenization_spaces=False)


def check_same_ids(model_file: Path, tokenizer, lines: Iterable[str]) -> None:
    """Raise ValueError at the first line where ``tokenizer`` (Hugging Face) and SentencePiece disagree."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    for n, line in enumerate(lines, start=1):
        ours, theirs = tokenizer(line, add_special_tokens=False)["input_ids"], sp.encode(line)
        if ours != theirs:
            raise ValueError(f"{model_file}: the Hugging Face view of the vocabulary tokenizes line {n} ({line!r}) "
                             f"as {ours}, SentencePiece as {theirs}")


def _digest(lines: list[str], cfg: SubwordConfig) -> str:
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def is_subword_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by :func:`train_subword`."""
    return (Path(path) / META).is_file() and (Path(path) / "sp.model").is_file()


def train_subword(text_file: str | Path, out_dir: str | Path, cfg: SubwordConfig | None = None) -> dict:
    """Train a vocabulary on ``text_file`` (one sentence per line) into ``out_dir``; returns ``subword.json``.

    A folder already written from the same text and settings is kept as it is (``"skipped": true`` in the
    returned dict); anything else is rebuilt in ``<out_dir>.tmp`` and renamed into place.
    """
    import sentencepiece as spm

    cfg = cfg or SubwordConfig()
    cfg.validate()
    text_file, out_dir = Path(text_file), Path(out_dir)
    lines = _lines(text_file)
    digest = _digest(lines, cfg)
    if is_subword_dir(out_dir):
        meta = json.loads((out_dir / META).read_text())
        if meta.get("text_sha256") == digest:
            log.info("%s: vocabulary of this text and settings already trained, kept", out_dir)
            return {**meta, "skipped": True}
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    chars = len(set("".join(lines)))
    spm.set_random_generator_seed(cfg.seed)
    model = io.BytesIO()  # not model_prefix: the model would record that (temporary) path
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type=cfg.model_type,
        vocab_size=cfg.vocab_size, hard_vocab_limit=False, character_coverage=cfg.character_coverage,
        normalization_rule_name="identity", input_sentence_size=cfg.max_sentences, shuffle_input_sentence=True,
        unk_id=SPECIALS["unk"][1], bos_id=SPECIALS["bos"][1], eos_id=SPECIALS["eos"][1], pad_id=SPECIALS["pad"][1],
        unk_piece=SPECIALS["unk"][0], bos_piece=SPECIALS["bos"][0], eos_piece=SPECIALS["eos"][0],
        pad_piece=SPECIALS["pad"][0], num_threads=1, minloglevel=2)
    (tmp / "sp.model").write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "sp.model"))
    (tmp / "sp.vocab").write_text("".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n"
                                          for i in range(sp.get_piece_size())), encoding="utf-8")
    tokenizer = _hf_tokenizer(tmp / "sp.model", cfg.model_type)
    check_same_ids(tmp / "sp.model", tokenizer, lines)
    tokenizer.save_pretrained(tmp)
    tokens = sum(len(ids) for ids in sp.encode(lines))
    meta = {"config": asdict(cfg), "pieces": sp.get_piece_size(), "text": str(text_file),
            "text_sha256": digest, "lines": len(lines), "characters": chars,
            "tokens_per_line": round(tokens / len(lines), 3)}
    if meta["pieces"] < cfg.vocab_size:
        log.info("%s: the text fills %d of vocab_size=%d pieces", text_file, meta["pieces"], cfg.vocab_size)
    (tmp / META).write_text(json.dumps(meta, indent=1))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.replace(out_dir)
    log.info("vocabulary %s: %d pieces, %.2f tokens per line over %d lines", out_dir, meta["pieces"],
             meta["tokens_per_line"], len(lines))
    return meta


def load_subword(path: str | Path):
    """The Hugging Face tokenizer of a vocabulary folder (the same as ``AutoTokenizer.from_pretrained``)."""
    from transformers import AutoTokenizer

    if not is_subword_dir(path):
        raise FileNotFoundError(f"{path}: not a subword vocabulary (no {META} and sp.model; run stage 3)")
    return AutoTokenizer.from_pretrained(str(path))
