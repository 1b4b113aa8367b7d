"""Export a trained model as a portable folder that ``elfs2t.load`` and ``transcribe`` use from anywhere.

    python -m elfs2t.bin.export --exp-dir exp/asr_elf --out my_model/
    python -m elfs2t.bin.export --exp-dir exp/asr_elf --out my_model_avg5/ --average 5

Writes ``model.safetensors`` (the EMA weights, or ``--average N`` checkpoints, or ``--raw``), ``config.yaml``
without machine paths (the recorded decoding setting applied), ``model.json`` (the frozen Whisper and text encoders
by name, hub id and weights fingerprint; the tasks; what the model holds) and ``README.md`` (its scores, how it was
trained, how to use it): see elfs2t.inference.export. Loading it needs no unpickling.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point
from elfs2t.config import ConfigError
from elfs2t.train.checkpoint import CheckpointError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", type=Path, required=True, help="trained experiment folder exp/<tag>")
    p.add_argument("--out", type=Path, required=True, help="the folder to write")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--average", type=int, default=0, metavar="N", help="the average of N checkpoints' weights")
    weights.add_argument("--raw", action="store_true", help="the latest checkpoint's own weights instead of its EMA")
    p.add_argument("--average-by", choices=("last", "best"), default="last",
                   help="with --average: the last N checkpoints, or those of lowest validation loss")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty --out folder")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    from elfs2t.inference.export import export_model

    try:
        out = export_model(args.exp_dir, args.out, average=args.average, average_by=args.average_by, raw=args.raw,
                           overwrite=args.overwrite)
    except (ConfigError, CheckpointError, FileNotFoundError, FileExistsError) as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {args.exp_dir} -> {out} (load it with elfs2t.load({str(out)!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
