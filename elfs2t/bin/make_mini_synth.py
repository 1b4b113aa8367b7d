"""Stage 0 of egs/mini_synth: synthesize the mini_synth corpus with espeak-ng.

Writes English speech in LibriSpeech layout and German speech with English translations in
Common Voice v4 + CoVoST 2 layout, and optionally the generalisation sets in the same layouts under ``gen/``
(see ``elfs2t.data.mini_synth.generate``)::

    python -m elfs2t.bin.make_mini_synth --output-dir downloads/mini_synth --seed 0 --nj 2
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point
from elfs2t.data.mini_synth.generate import generate_mini_synth


def get_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m elfs2t.bin.make_mini_synth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output-dir", type=Path, required=True,
                        help="corpus root; receives LibriSpeech/, cv/de/, covost/ and README.txt")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed: the same seed and sizes give identical texts, TSVs and voices (default 0)")
    parser.add_argument("--num-train", type=int, default=3000, help="training utterances per task (default 3000)")
    parser.add_argument("--num-dev", type=int, default=200, help="dev utterances per task (default 200)")
    parser.add_argument("--num-test", type=int, default=200, help="test utterances per task (default 200)")
    parser.add_argument("--num-test-unseen", type=int, default=200,
                        help="unseen-voice test utterances per task (LibriSpeech test-other, CoVoST test_unseen; default 200)")
    parser.add_argument("--num-test-gen", type=int, default=0,
                        help="generalisation test utterances per task, seen voices: new sentence structures "
                             "from the training vocabulary, in <output-dir>/gen/ (default 0)")
    parser.add_argument("--num-test-gen-unseen", type=int, default=0,
                        help="generalisation test utterances per task, unseen voices (default 0)")
    parser.add_argument("--nj", type=int, default=2, help="parallel synthesis processes (default 2)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default INFO)")
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate the corpus, print where it is."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = generate_mini_synth(
        args.output_dir, seed=args.seed, num_train=args.num_train, num_dev=args.num_dev,
        num_test=args.num_test, num_test_unseen=args.num_test_unseen, num_test_gen=args.num_test_gen,
        num_test_gen_unseen=args.num_test_gen_unseen, nj=args.nj,
    )
    print(f"mini_synth corpus: {root} (summary: {root / 'README.txt'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
