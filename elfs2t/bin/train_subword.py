"""Stage 3 (AR baseline): train the subword vocabulary of the targets with SentencePiece.

    python -m elfs2t.bin.train_subword --text data/lm/train_text.txt --out-dir data/token_list/en \\
        [--vocab-size 1000] [--model-type bpe]

Writes ``out-dir/sp.model`` (SentencePiece), the same vocabulary as a Hugging Face tokenizer
(``tokenizer.json``; the AR config names the folder as ``ar.tokenizer``) and ``subword.json`` (settings,
pieces, tokens per line). A folder already trained on the same text with the same settings is kept; see
:mod:`elfs2t.text.subword`. Only training text belongs here.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point
from elfs2t.text.subword import SubwordConfig, train_subword


def get_parser() -> argparse.ArgumentParser:
    d = SubwordConfig()
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.train_subword", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", type=Path, required=True, help="training text, one sentence per line (UTF-8)")
    p.add_argument("--out-dir", type=Path, required=True, help="vocabulary folder, e.g. data/token_list/en")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size,
                   help=f"pieces incl. <unk> <s> </s> <pad>; a small text may fill fewer (default {d.vocab_size})")
    p.add_argument("--model-type", choices=["bpe", "unigram"], default=d.model_type,
                   help=f"SentencePiece algorithm (default {d.model_type})")
    p.add_argument("--character-coverage", type=float, default=d.character_coverage,
                   help=f"share of characters kept as pieces, the rest map to <unk> (default {d.character_coverage})")
    p.add_argument("--max-sentences", type=int, default=d.max_sentences,
                   help=f"lines sampled from a larger text (default {d.max_sentences})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"SentencePiece's random seed (default {d.seed})")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    cfg = SubwordConfig(vocab_size=args.vocab_size, model_type=args.model_type,
                        character_coverage=args.character_coverage, max_sentences=args.max_sentences, seed=args.seed)
    meta = train_subword(args.text, args.out_dir, cfg)
    state = "kept (already trained)" if meta.get("skipped") else "trained"
    print(f"vocabulary {args.out_dir}: {state}, {meta['pieces']} pieces, {meta['tokens_per_line']} tokens per line "
          f"over {meta['lines']} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
