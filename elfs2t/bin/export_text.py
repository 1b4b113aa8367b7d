"""Write the target texts of cut manifests to a text file, one per line (stage-3 pre-training text).

    python -m elfs2t.bin.export_text --out data/lm/train_text.txt \\
        --set data/manifests/cuts_asr_train.jsonl.gz=transcript \\
        --set data/manifests/cuts_st_train.jsonl.gz=translation:en [--lowercase] [--unique]
    python -m elfs2t.bin.export_text --out data/lm/train_de_en.tsv --source transcript \\
        --set data/manifests/cuts_st_train.jsonl.gz=translation:en     # source<TAB>target pairs (a text MT model)

Only training manifests belong here: text of dev/test sets must never reach a backbone.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lhotse import CutSet

from elfs2t.bin._cli import entry_point
from elfs2t.data.dataset import check_target, target_text

log = logging.getLogger("elfs2t.export_text")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.export_text", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", dest="sets", action="append", required=True, metavar="CUTS=TARGET",
                   help="cuts manifest and target (transcript or translation:<tgt>); repeatable")
    p.add_argument("--out", type=Path, required=True, help="output text file")
    p.add_argument("--lowercase", action="store_true", help="lower-case every line")
    p.add_argument("--unique", action="store_true", help="keep each distinct line once")
    p.add_argument("--source", default=None, metavar="TARGET",
                   help="write 'source<TAB>text' pairs, the source being this text of each cut (e.g. transcript)")
    return p


def export_text(sets: list[tuple[Path, str]], out: Path, lowercase: bool = False, unique: bool = False,
                source: str | None = None) -> int:
    """Write the texts (``source<TAB>text`` with ``source``); returns the number of lines written (cuts with an
    empty text or source are skipped)."""
    if source is not None:
        check_target(source, key="--source")
    lines: list[str] = []
    for path, target in sets:
        check_target(target, key=f"--set {path}")
        if not path.is_file():
            raise FileNotFoundError(f"cuts manifest not found: {path}")
        for cut in CutSet.from_file(path):
            text = " ".join(target_text(cut, target).split())
            if source is not None:
                src = " ".join(target_text(cut, source).split())
                text = f"{src}\t{text}" if src and text else ""
            if text:
                lines.append(text.lower() if lowercase else text)
    if unique:
        lines = list(dict.fromkeys(lines))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(out)
    return len(lines)


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    sets = []
    for item in args.sets:
        path, sep, target = item.rpartition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected CUTS=TARGET")
        sets.append((Path(path), target))
    n = export_text(sets, args.out, args.lowercase, args.unique, args.source)
    log.info("wrote %d lines to %s", n, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
