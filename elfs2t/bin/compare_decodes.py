"""Two decodings compared utterance by utterance over seeds and noise draws: WER and a 95% bootstrap interval.

    python -m elfs2t.bin.compare_decodes --sets asr_dev asr_test asr_test_unseen \\
        --a exp/asr_elf/decode_flow4_read_lm_d0 exp/asr_elf/decode_flow4_read_lm_d1 \\
        --b exp/asr_elf/decode_readout_lm_d0 exp/asr_elf/decode_readout_lm_d1 --out exp/flow_vs_readout.md

``--a`` and ``--b`` pair in order (the i-th folder of each decoded the same set: another seed's model, another noise
draw); per utterance the word errors of A minus those of B are summed over the pairs and the utterances are
resampled (2000 times by default) for the interval of WER(A) - WER(B) -- on each set, and on all sets together
(see elfs2t.paired). A negative difference whose interval lies under zero: A makes fewer errors, beyond what the
choice of utterances explains. WER only (BLEU is a corpus score; its paired test is sacrebleu's).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from elfs2t.atomic import write_text
from elfs2t.bin._cli import entry_point
from elfs2t.errors import ConfigError
from elfs2t.paired import compare_pairs, format_paired
from elfs2t.text.normalize import NORMALIZERS

log = logging.getLogger("elfs2t.compare_decodes")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.compare_decodes", description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", nargs="+", type=Path, required=True, metavar="DECODE_DIR",
                   help="decode folders of system A (exp/<tag>/decode_<name>), one per seed / draw")
    p.add_argument("--b", nargs="+", type=Path, required=True, metavar="DECODE_DIR",
                   help="decode folders of system B, paired with --a in order")
    p.add_argument("--sets", nargs="+", required=True, help="set names (sub-folders with ref and text)")
    p.add_argument("--labels", nargs=2, default=("A", "B"), metavar=("A", "B"), help="names of the two systems")
    p.add_argument("--normalizer", choices=sorted(NORMALIZERS), default="default", help="text normaliser (default: default)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.add_argument("--out", type=Path, default=None, help="also write the table here (Markdown)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(args.a) != len(args.b):
        raise ConfigError(f"--a has {len(args.a)} decode folders and --b {len(args.b)}: they pair in order")
    if args.resamples < 1:
        raise ConfigError(f"--resamples {args.resamples}: must be >= 1")
    results = compare_pairs(list(zip(args.a, args.b)), args.sets, args.normalizer, args.resamples, args.seed)
    missing = sum(r.missing for r in results if r.set_name != "all")
    if missing:
        log.warning("%d hypotheses missing across the pairs and sets (scored as empty)", missing)
    text = format_paired(results, *args.labels, num_pairs=len(args.a))
    print(text, end="")
    if args.out is not None:
        write_text(args.out, text)
        log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
