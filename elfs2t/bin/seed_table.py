"""The scores of one recipe run with several training seeds, side by side: the mean and each seed's value.

    python -m elfs2t.bin.seed_table egs/mini_synth ../mini_synth_seed2 --labels "seed 1234" "seed 2" \\
        --out egs/mini_synth/exp/seeds.md

Each RUN_DIR is a recipe folder whose stages 4-6 ran (its ``exp/*/decode_*/*/result.txt``); another seed is a
copy of the recipe sharing ``data/`` and ``dump/``, trained with ``--train-opts "... train.seed=N"``. Rows are
systems (experiment + decoding), columns the sets (WER sets and BLEU sets in their own tables), each cell
``mean (run 1, run 2, ...)``; see elfs2t.seed_table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from elfs2t.atomic import write_text
from elfs2t.bin._cli import entry_point
from elfs2t.errors import ConfigError
from elfs2t.seed_table import format_seed_table


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.seed_table", description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="recipe folders, one per seed")
    p.add_argument("--labels", nargs="+", default=None, help="a name per run for the table's legend (default: the paths)")
    p.add_argument("--out", type=Path, default=None, help="write the table here (default: print it)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.runs):
        raise ConfigError(f"--labels: {len(args.labels)} labels for {len(args.runs)} runs")
    text = format_seed_table(args.runs, args.labels)
    if args.out is None:
        print(text, end="")
    else:
        write_text(args.out, text)
        print(f"seed table: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
