"""Score hypotheses against references (stage 6): WER / CER / BLEU / chrF -> result.txt.

Usable on its own with any Kaldi-style text files::

    python -m elfs2t.bin.score --hyp exp/x/decode_y/test/text --ref exp/x/decode_y/test/ref \\
        --metric wer --out-dir exp/x/decode_y/test
    python -m elfs2t.bin.score --hyp hyp.txt --ref data/manifests/cuts_st_test.jsonl.gz \\
        --ref-target translation:en --metric bleu --out-dir scores/st_test
    python -m elfs2t.bin.score --results-table egs/mini_synth   # only (re)write RESULTS.md

The results table (elfs2t.results) has one section per set, rows ELF-S2T (per steps / guidance), AR
baseline, Whisper zero-shot, with WER/BLEU, decoding RTFx (and with the encoder), parameters, encoder,
and training / pre-training minutes from the experiments' train.log.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point
from elfs2t.config import ConfigError, load_config
from elfs2t.score import ScoreConfig, format_result, score_files
from elfs2t.text.normalize import NORMALIZERS


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m elfs2t.bin.score",
        description="\n\n".join(__doc__.split("\n\n")[:3]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Missing hypotheses are scored as empty and reported; extra hypotheses are reported and ignored.",
    )
    p.add_argument("--hyp", type=Path, help="hypothesis text file (<utt-id> <text> per line)")
    p.add_argument("--ref", type=Path, help="reference text file, or a cuts manifest (*.jsonl.gz) with --ref-target")
    p.add_argument("--ref-target", default=None, help="for a cuts manifest: 'transcript' (default) or 'translation:<tgt>'")
    p.add_argument("--metric", choices=["wer", "cer", "bleu", "all"], default=None, help="what to score (bleu = BLEU and chrF); default wer")
    p.add_argument("--normalizer", choices=sorted(NORMALIZERS), default=None, help="normaliser before WER/CER; default 'default'")
    p.add_argument("--spelling-mapping", type=Path, default=None, help="JSON British->American spellings for whisper_en")
    p.add_argument("--bleu-tokenize", default=None, help="sacrebleu tokenizer for BLEU (default 13a)")
    p.add_argument("--conf", type=Path, default=None, help="YAML with ScoreConfig fields (flags override it)")
    p.add_argument("--out-dir", type=Path, help="where result.txt, result.json, align*.txt go")
    p.add_argument("--set-name", default=None, help="name of the set in result.txt (default: the out-dir name)")
    p.add_argument("--results-table", type=Path, default=None, metavar="RECIPE_DIR",
                   help="after scoring (or alone), collect RECIPE_DIR/exp/*/decode_*/*/result.txt (+ timing.json, train.log) "
                        "into the comparison table RECIPE_DIR/RESULTS.md")
    p.add_argument("--results-out", type=Path, default=None, help="file for the results table (default RECIPE_DIR/RESULTS.md)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scoring = any(x is not None for x in (args.hyp, args.ref, args.out_dir))
    if scoring and None in (args.hyp, args.ref, args.out_dir):
        get_parser().error("--hyp, --ref and --out-dir go together")
    if not scoring and args.results_table is None:
        get_parser().error("give --hyp/--ref/--out-dir to score, and/or --results-table RECIPE_DIR")
    if scoring:
        flags = {"metric": args.metric, "normalizer": args.normalizer, "spelling_mapping": args.spelling_mapping,
                 "bleu_tokenize": args.bleu_tokenize}
        overrides = [f"{k}={v}" for k, v in flags.items() if v is not None]
        try:
            cfg = load_config(ScoreConfig, args.conf, overrides=overrides)
            report = score_files(args.hyp, args.ref, args.out_dir, cfg, ref_target=args.ref_target, set_name=args.set_name)
        except ConfigError:
            raise  # the entry point prints it alone and exits 2
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(format_result(report, cfg, str(args.hyp), str(args.ref)), end="")
    if args.results_table is not None:
        from elfs2t.results import write_results_table

        print(f"results table: {write_results_table(args.results_table, args.results_out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
