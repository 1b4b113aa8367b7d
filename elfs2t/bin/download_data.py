"""Stage 0: download what a corpus allows to be downloaded (needs internet; skips what is already there).

    python -m elfs2t.bin.download_data librispeech --target-dir downloads --parts dev-clean test-clean
    python -m elfs2t.bin.download_data covost2 --target-dir downloads/covost --src-lang de --tgt-lang en

LibriSpeech goes through Lhotse's ``download_librispeech`` (prints the ``LibriSpeech`` folder).
CoVoST 2 fetches the translation TSV only: Common Voice v4 audio must be obtained by the user.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point
from elfs2t.data.covost2 import download_covost2_tsv
from elfs2t.data.librispeech import LIBRISPEECH_PARTS, download_librispeech


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m elfs2t.bin.download_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="corpus", required=True, metavar="{librispeech,covost2}")
    ls = sub.add_parser("librispeech", help="LibriSpeech parts from OpenSLR",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ls.add_argument("--target-dir", type=Path, required=True, help="folder for the archives and LibriSpeech/")
    ls.add_argument("--parts", nargs="+", required=True, choices=LIBRISPEECH_PARTS, help="parts to download")
    cv = sub.add_parser("covost2", help="the CoVoST 2 translation TSV of one language pair",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cv.add_argument("--target-dir", type=Path, required=True, help="folder for covost_v2.<src>_<tgt>.tsv")
    cv.add_argument("--src-lang", required=True, help="source language code, e.g. de")
    cv.add_argument("--tgt-lang", required=True, help="target language code, e.g. en")
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.corpus == "librispeech":
            path = download_librispeech(args.target_dir, dataset_parts=args.parts)
        else:
            path = download_covost2_tsv(args.target_dir, args.src_lang, args.tgt_lang)
    except OSError as exc:  # network and disk failures: one clear line instead of a traceback
        logging.error("download failed: %s", exc)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
