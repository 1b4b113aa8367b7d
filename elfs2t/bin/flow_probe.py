"""Flow probe: a trained ELF-S2T's flow head (x_hat) against the true text latents at fixed flow times.

    python -m elfs2t.bin.flow_probe --exp-dir exp/asr_elf \\
        --set asr_train=dump/whisper-base_trim/asr_train/cuts.jsonl.gz --max-utts 480 --threads 1
    python -m elfs2t.bin.flow_probe --exp-dir exp/st_elf --target translation:en \\
        --set st_dev=dump/whisper-tiny.en_trim/st_dev/cuts.jsonl.gz --times 0.1 0.5 0.9 --no-progress

The trained model (EMA weights) is loaded once from ``--exp-dir``; it must be an ELF-S2T with the CTC draft and
``text_positions: ctc``. Only the utterances whose greedy CTC draft equals their text are probed (their text
slots then sit at the true tokens' aligned positions). For each ``--times`` value and for times drawn from the
training distribution, the x_hat MSE per channel (content / all positions), the velocity MSE (training times)
and the token head's accuracy on the denoising-mode states are measured, next to the variance of the latents, the
token-mean oracle and a linear read-out of the denoiser's hidden states (see elfs2t.analysis.flow_probe).
Output (``--out-dir``, default ``<exp>/analysis/flow_probe/<set>``): ``flow_probe.md`` and ``flow_probe.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import torch

from elfs2t import atomic
from elfs2t.analysis.flow_probe import DEFAULT_TIMES, check_probe_model, format_table, run_probe
from elfs2t.bin._cli import entry_point, named_path
from elfs2t.config import load_config
from elfs2t.data.dataset import SetSpec, load_sets
from elfs2t.experiment import ExperimentConfig
from elfs2t.inference.trained import check_sets, load_trained

log = logging.getLogger("elfs2t.flow_probe")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.flow_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", type=Path, required=True, help="trained ELF-S2T experiment folder exp/<tag>")
    p.add_argument("--set", dest="sets", action="append", required=True, type=named_path("CUTS"),
                   metavar="NAME=CUTS",
                   help="a set: name and cuts manifest with cached features (repeatable)")
    p.add_argument("--target", default="transcript", help="transcript (ASR) or translation:<tgt> (S2TT)")
    p.add_argument("--times", nargs="+", type=float, default=list(DEFAULT_TIMES),
                   help=f"fixed flow times t (default {' '.join(f'{t:g}' for t in DEFAULT_TIMES)}); the training "
                        "distribution's times are always probed too")
    p.add_argument("--max-utts", type=int, default=None, help="probe the first N utterances of each set (default all)")
    p.add_argument("--max-duration", type=float, default=200.0, help="seconds of audio per batch (default 200)")
    p.add_argument("--max-cuts", type=int, default=None, help="utterances per batch at most (default no limit)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draft, path noise and time draws")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (torch.set_num_threads)")
    p.add_argument("--out-dir", type=Path, default=None, help="default <exp>/analysis/flow_probe (one folder per set)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    if any(not 0.0 <= t < 1.0 for t in args.times):
        parser.error(f"--times {args.times}: every flow time must be in [0, 1)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.exp_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{args.exp_dir}: not a trained experiment folder (no config.yaml)")
    # ConfigErrors (FeatureMismatchError is one) print one line and return 2: entry_point
    # the model kind first, from the config alone: an AR baseline's weights are not loaded to be refused
    check_probe_model(load_config(ExperimentConfig, args.exp_dir / "config.yaml"), str(args.exp_dir))
    model, cfg, _ = load_trained(args.exp_dir, [])
    check_sets(args.exp_dir, cfg, [path for _, path in args.sets])  # features of another encoder: another model
    out_root = args.out_dir or args.exp_dir / "analysis" / "flow_probe"
    for name, path in args.sets:
        cuts = load_sets([SetSpec(cuts=path, target=args.target)])
        log.info("probing %s on %s (%s utterances at most, times %s and the training distribution's)", args.exp_dir,
                 name, args.max_utts or "all", " ".join(f"{t:g}" for t in args.times))
        # a set without an utterance whose draft equals its text: a ConfigError too
        res = run_probe(model, cfg, cuts, title=f"{args.exp_dir.name} / {name}", times=tuple(args.times),
                        max_utts=args.max_utts, max_duration=args.max_duration, max_cuts=args.max_cuts,
                        seed=args.seed, show_progress=not args.no_progress)
        out_dir = out_root / name
        out_dir.mkdir(parents=True, exist_ok=True)
        table = format_table(res)
        atomic.write_text(out_dir / "flow_probe.md", table)
        atomic.write_text(out_dir / "flow_probe.json", json.dumps(dataclasses.asdict(res), indent=1))
        log.info("%s: %d of %d utterances probed; wrote %s", name, res.rows_kept, res.rows_total, out_dir)
        print(table)
        print(f"table: {out_dir / 'flow_probe.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
