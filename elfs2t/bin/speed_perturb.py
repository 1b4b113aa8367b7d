"""Write the speed-perturbed copies of a training cuts manifest (stage 1; stage 2 then caches them).

    python -m elfs2t.bin.speed_perturb --cuts data/manifests/cuts_asr_train.jsonl.gz \\
        --out data/manifests/cuts_asr_train_sp.jsonl.gz --factors 0.9 1.1 [--per-cut all|one] [--seed 0]

Only the perturbed copies are written (ids ``<id>_sp<factor>``); train on both manifests. ``--per-cut one``
gives each cut one copy with a factor drawn per cut (half the stage-2 time of ``all`` for two factors).
Only training sets belong here: perturbing a dev or test set changes what it measures.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lhotse import CutSet

from elfs2t.bin._cli import entry_point
from elfs2t.data.perturb import PER_CUT, check_factors, speed_perturb

log = logging.getLogger("elfs2t.speed_perturb")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.speed_perturb", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cuts", type=Path, required=True, help="input cuts manifest (jsonl.gz)")
    p.add_argument("--out", type=Path, required=True, help="output cuts manifest of the perturbed copies")
    p.add_argument("--factors", type=float, nargs="+", default=[0.9, 1.1], help="speed factors (default: 0.9 1.1)")
    p.add_argument("--per-cut", choices=PER_CUT, default="all",
                   help="all: one copy per factor; one: one copy with a factor drawn per cut (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --per-cut one draw (default: 0)")
    return p


def write_perturbed(cuts_path: Path, out: Path, factors: list[float], per_cut: str = "all", seed: int = 0) -> int:
    """Write ``out`` atomically; returns the number of cuts written."""
    check_factors(factors)
    if not cuts_path.is_file():
        raise FileNotFoundError(f"cuts manifest not found: {cuts_path}")
    if cuts_path.resolve() == out.resolve():
        raise ValueError(f"--out must differ from --cuts ({cuts_path}): the originals would be lost")
    cuts = CutSet.from_file(cuts_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.jsonl.gz")
    n = 0
    hours = 0.0
    with CutSet.open_writer(tmp) as writer:
        for cut in speed_perturb(cuts, factors, per_cut=per_cut, seed=seed):
            writer.write(cut)
            n += 1
            hours += cut.duration / 3600
    tmp.replace(out)
    log.info("wrote %d speed-perturbed cuts (%.2f h, factors %s, per cut: %s) to %s", n, hours,
             " ".join(str(f) for f in factors), per_cut, out)
    return n


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    try:
        write_perturbed(args.cuts, args.out, args.factors, args.per_cut, args.seed)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"speed_perturb: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
