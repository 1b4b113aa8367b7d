"""Stage 7: audio-reliance diagnostics: decode with the audio zeroed, replaced by noise or swapped, over CFG scales.

    python -m elfs2t.bin.audio_reliance --exp-dir exp/asr_elf --target transcript \\
        --set asr_test=dump/whisper-tiny.en_trim/asr_test/cuts.jsonl.gz --guidance 1 2 3 4
    python -m elfs2t.bin.audio_reliance --exp-dir exp/st_elf --target translation:en --metric bleu \\
        --set st_test=dump/whisper-base_trim/st_test/cuts.jsonl.gz --audio real zero --guidance 1 2

The trained model (EMA weights) is loaded once from ``--exp-dir``; each (audio condition, CFG scale) is a
stage-5 decode with ``decode.audio`` and the strategy's CFG scale (``decode.flow.guidance``) set, scored like stage 6 (WER, or BLEU and
chrF). The AR baseline has no CFG: it is decoded once per audio condition. Output (``--out-dir``, default
``<exp>/analysis/audio_reliance``): ``decode_<tag>/<set>/`` per run, and ``<set>/reliance.md``, ``reliance.json``
and ``cfg_sweep.png`` (see elfs2t.analysis.reliance). Finished decodes with the same settings are reused
unless ``--force``. ``--decode-conf FILE`` (a named decoding config, ``conf/decode/*.yaml``) and then
``decode.key=value`` arguments override the decoding config (e.g. steps); put the latter before
``--audio`` / ``--guidance`` (which take lists) or after ``--``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.analysis.audio import AUDIO_MODES
from elfs2t.analysis.reliance import run_reliance
from elfs2t.bin._cli import entry_point, named_path
from elfs2t.inference.setting import decode_conf_overrides
from elfs2t.inference.trained import check_sets, load_trained
from elfs2t.data.dataset import SetSpec, load_sets

log = logging.getLogger("elfs2t.audio_reliance")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.audio_reliance", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", type=Path, required=True, help="trained experiment folder exp/<tag>")
    p.add_argument("--set", dest="sets", action="append", required=True, type=named_path("CUTS"),
                   metavar="NAME=CUTS",
                   help="a test set: name and cuts manifest with cached features (repeatable)")
    p.add_argument("--target", default="transcript", help="transcript (ASR) or translation:<tgt> (S2TT)")
    p.add_argument("--metric", choices=["wer", "bleu"], default=None,
                   help="score (default: wer for transcript, bleu for translation targets)")
    p.add_argument("--audio", nargs="+", choices=AUDIO_MODES, default=list(AUDIO_MODES),
                   help=f"audio conditions (default: all of {' '.join(AUDIO_MODES)})")
    p.add_argument("--guidance", nargs="+", type=float, default=[1.0, 1.5, 2.0, 3.0],
                   help="CFG scales g to sweep (ELF-S2T; default 1 1.5 2 3)")
    p.add_argument("--seed", type=int, default=0, help="sampling and noise seed (the same for every condition)")
    p.add_argument("--out-dir", type=Path, default=None, help="default <exp>/analysis/audio_reliance")
    p.add_argument("--force", action="store_true", help="redo decodes that already exist")
    p.add_argument("--decode-conf", action="append", default=[], type=Path, metavar="FILE",
                   help="a named decoding config (conf/decode/*.yaml), before the decode.key=value overrides")
    p.add_argument("overrides", nargs="*", metavar="decode.key=value",
                   help="decoding overrides, e.g. decode.flow.steps=4")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    metric = args.metric or ("wer" if args.target == "transcript" else "bleu")
    model, cfg, _ = load_trained(args.exp_dir, decode_conf_overrides(args.decode_conf) + list(args.overrides))
    out_dir = args.out_dir or args.exp_dir / "analysis" / "audio_reliance"
    # features of another encoder would measure another model (a ConfigError: one line, status 2, entry_point);
    # every set is checked before the first one runs
    check_sets(args.exp_dir, cfg, [path for _, path in args.sets])
    for name, path in args.sets:
        cuts = load_sets([SetSpec(cuts=path, target=args.target)])
        rows = run_reliance(model, cfg, cuts, name, out_dir, modes=args.audio, guidances=args.guidance, metric=metric,
                            seed=args.seed, force=args.force, title=f"{args.exp_dir.name} / {name}")
        for r in rows:
            g = "" if r["guidance"] is None else f" g={r['guidance']:g}"
            print(f"{name} audio={r['audio']}{g}: {metric.upper()} {r['score']:.2f}")
        print(f"table: {out_dir / name / 'reliance.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
