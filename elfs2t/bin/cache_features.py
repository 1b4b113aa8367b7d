"""Stage 2: cache frozen Whisper encoder outputs (fp16, valid frames) for one or several cut sets.

One set::

    python -m elfs2t.bin.cache_features --cuts data/manifests/cuts_test_clean.jsonl.gz \\
        --encoder openai/whisper-large-v3 --mode pad30 --out-dir dump/whisper-large-v3_pad30/test_clean

Several sets (``<manifest-dir>/cuts_<set>.jsonl.gz`` -> ``<dump-dir>/<encoder_tag>/<set>/``)::

    python -m elfs2t.bin.cache_features --manifest-dir data/manifests --sets asr_train asr_dev \\
        --encoder ../../tools/models/whisper-tiny.en --mode trim --dump-dir dump --nj 2

Prints, per set, the utterances/s and the x-real-time speed reached.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point
from elfs2t.config import structure
from elfs2t.features.cache import CacheConfig, cache_features
from elfs2t.features.whisper import WhisperFrontEnd
from elfs2t.train.distributed import check_gpus


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m elfs2t.bin.cache_features",
        description="Stage 2: encode every cut with a frozen Whisper encoder and cache the frames (fp16, "
        "kaldiio ark/scp) with a cuts manifest that references them. Resumable; finished sets are skipped.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = p.add_argument_group("input / output (either --cuts + --out-dir, or --manifest-dir + --sets + --dump-dir)")
    src.add_argument("--cuts", type=Path, help="input cuts manifest (jsonl.gz) of one set")
    src.add_argument("--out-dir", type=Path, help="output folder of that set, normally dump/<encoder_tag>/<set>")
    src.add_argument("--manifest-dir", type=Path, help="folder with cuts_<set>.jsonl.gz")
    src.add_argument("--sets", nargs="+", help="set names to cache from --manifest-dir")
    src.add_argument("--dump-dir", type=Path, default=Path("dump"), help="outputs go to <dump-dir>/<encoder_tag>/<set>/")
    enc = p.add_argument_group("encoder")
    enc.add_argument("--encoder", default="openai/whisper-large-v3", help="Whisper hub id or local Whisper directory")
    enc.add_argument("--mode", choices=("trim", "pad30"), default="trim",
                     help="trim: encode only the needed frames; pad30: pad to 30 s as Whisper was trained")
    enc.add_argument("--name", default=None, help="model name in the encoder tag (default: from --encoder)")
    enc.add_argument("--batch-size", type=int, default=8, help="utterances per forward")
    enc.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                     help="compute dtype (auto: float16 on GPU, float32 on CPU); storage is always float16")
    run = p.add_argument_group("parallelism")
    run.add_argument("--device", default="cpu", help="cpu or cuda[:N] (single process)")
    run.add_argument("--nj", type=int, default=1, help="CPU worker processes")
    run.add_argument("--ngpu", type=int, default=0, help="GPU worker processes, one per GPU (overrides --nj/--device)")
    run.add_argument("--shard-size", type=int, default=500, help="cuts per shard (unit of resume)")
    run.add_argument("--num-threads", type=int, default=0, help="torch threads per CPU worker (0: CPUs / nj)")
    p.add_argument("--force", action="store_true", help="redo sets that are cached already (or made otherwise)")
    p.add_argument("--print-tag", action="store_true",
                   help="print the encoder tag and exit (after checking --ngpu against the visible GPUs)")
    args = p.parse_args(argv)
    if not args.print_tag and bool(args.cuts) == bool(args.sets):
        p.error("give either --cuts (with --out-dir) or --manifest-dir with --sets")
    if args.cuts and not args.out_dir:
        p.error("--cuts needs --out-dir")
    if args.sets and not args.manifest_dir:
        p.error("--sets needs --manifest-dir")
    return args


@entry_point
def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = structure(CacheConfig, dict(
        encoder=args.encoder, mode=args.mode, name=args.name, batch_size=args.batch_size, dtype=args.dtype,
        device=args.device, nj=args.nj, ngpu=args.ngpu, shard_size=args.shard_size, num_threads=args.num_threads))
    spec = WhisperFrontEnd.from_pretrained(cfg.encoder, cfg.mode, name=cfg.name)
    check_gpus(args.ngpu)  # before any work: --ngpu 1 on a CPU machine is one line, not a CUDA traceback
    if args.print_tag:
        print(spec.tag)
        return 0
    jobs = [(args.cuts, args.out_dir)] if args.cuts else [
        (args.manifest_dir / f"cuts_{s}.jsonl.gz", args.dump_dir / spec.tag / s) for s in args.sets]
    reports = [cache_features(cuts, out, cfg, spec=spec, force=args.force) for cuts, out in jobs]
    for r in reports:
        print(r.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
