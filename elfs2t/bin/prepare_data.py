"""Stage 1: corpus on disk -> Lhotse cuts in ``data/manifests/`` (docs/contracts.md).

    python -m elfs2t.bin.prepare_data librispeech --corpus-dir $LIBRISPEECH --output-dir data/manifests \\
        --parts train-clean-100 dev-clean test-clean --nj 4
    python -m elfs2t.bin.prepare_data covost2 --cv-dir $COMMONVOICE/de --covost-tsv covost_v2.de_en.tsv \\
        --src-lang de --tgt-lang en --output-dir data/manifests --nj 4
    python -m elfs2t.bin.prepare_data local --script local/prepare.py --corpus-dir DIR --output-dir data/manifests

``local`` runs a recipe's own preparation: the script defines
``prepare(corpus_dir: Path, output_dir: Path, nj: int) -> dict[str, CutSet]``; the returned sets are
checked against the contract and written here (atomically, with done markers).
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

from lhotse import CutSet

from elfs2t.bin._cli import entry_point
from elfs2t.data.covost2 import COVOST2_SPLITS, prepare_covost2
from elfs2t.data.librispeech import LIBRISPEECH_PARTS, prepare_librispeech_cuts
from elfs2t.data.manifests import check_cuts_contract, write_set


def _set_names(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        part, sep, name = item.partition("=")
        if not sep or not part or not name:
            raise argparse.ArgumentTypeError(f"--set-name {item!r}: expected PART=SET_NAME")
        out[part] = name
    return out


def run_local(script: Path, corpus_dir: Path, output_dir: Path, nj: int) -> dict[str, CutSet]:
    """Import ``script``, call its ``prepare(corpus_dir=, output_dir=, nj=)``, check and write the sets."""
    if not script.is_file():
        raise FileNotFoundError(f"local preparation script not found: {script}")
    spec = importlib.util.spec_from_file_location(f"local_prepare_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    prepare = getattr(module, "prepare", None)
    if not callable(prepare):
        raise AttributeError(f"{script}: defines no function prepare(corpus_dir, output_dir, nj)")
    sets = prepare(corpus_dir=corpus_dir, output_dir=output_dir, nj=nj)
    if not isinstance(sets, dict) or not all(isinstance(v, CutSet) for v in sets.values()):
        raise TypeError(f"{script}: prepare() must return dict[str, CutSet], got {type(sets).__name__}")
    for name, cuts in sets.items():
        check_cuts_contract(cuts, name)
        write_set(cuts, output_dir, name)
    return sets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m elfs2t.bin.prepare_data",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="corpus", required=True, metavar="{librispeech,covost2,local}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--output-dir", type=Path, required=True, help="folder for cuts_<set>.jsonl.gz and reports")
        p.add_argument("--nj", type=int, default=1, help="parallel jobs reading audio headers")
        p.add_argument("--force", action="store_true", help="rebuild sets that are already marked done")
        p.add_argument("--log-level", default="INFO", help="logging level")

    ls = sub.add_parser("librispeech", help="LibriSpeech tree (Lhotse recipe)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ls.add_argument("--corpus-dir", type=Path, required=True, help="the LibriSpeech folder with part folders")
    ls.add_argument("--parts", nargs="+", default=["train-clean-100", "dev-clean", "dev-other", "test-clean",
                                                   "test-other"], choices=LIBRISPEECH_PARTS, help="parts to prepare")
    ls.add_argument("--set-name", action="append", default=[], metavar="PART=SET",
                    help="rename a part's set (repeatable); parts with one set name are combined")
    common(ls)

    cv = sub.add_parser("covost2", help="Common Voice v4 + CoVoST 2 TSV",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cv.add_argument("--cv-dir", type=Path, required=True, help="Common Voice language folder (validated.tsv, clips/)")
    cv.add_argument("--covost-tsv", type=Path, required=True, help="covost_v2.<src>_<tgt>.tsv")
    cv.add_argument("--src-lang", required=True, help="source language code, e.g. de")
    cv.add_argument("--tgt-lang", required=True, help="target language code, e.g. en")
    cv.add_argument("--splits", nargs="+", default=["train", "dev", "test"], choices=COVOST2_SPLITS,
                    help="splits to prepare")
    cv.add_argument("--prefix", default=None, help="set-name prefix (default <src>_<tgt>)")
    common(cv)

    lo = sub.add_parser("local", help="a recipe's own local/ preparation script",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    lo.add_argument("--script", type=Path, required=True, help="python file defining prepare(corpus_dir, output_dir, nj)")
    lo.add_argument("--corpus-dir", type=Path, required=True, help="the corpus folder handed to prepare()")
    common(lo)
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.corpus == "librispeech":
            sets = prepare_librispeech_cuts(args.corpus_dir, args.output_dir, parts=args.parts,
                                            set_names=_set_names(args.set_name), nj=args.nj, force=args.force)
        elif args.corpus == "covost2":
            sets = prepare_covost2(args.cv_dir, args.covost_tsv, args.src_lang, args.tgt_lang, args.output_dir,
                                   splits=args.splits, prefix=args.prefix, nj=args.nj, force=args.force)
        else:
            sets = run_local(args.script, args.corpus_dir, args.output_dir, args.nj)
    except (FileNotFoundError, ValueError, TypeError, AttributeError, argparse.ArgumentTypeError) as exc:
        logging.error("stage 1 failed: %s", exc)
        return 1
    for name, cuts in sets.items():
        print(f"{name}: {len(cuts)} cuts -> {args.output_dir}/cuts_{name}.jsonl.gz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
