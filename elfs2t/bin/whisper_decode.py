"""Stage 5, Whisper zero-shot baseline: decode cut sets with the Whisper model itself.

    python -m elfs2t.bin.whisper_decode --model tools/models/whisper-tiny.en --target transcript \\
        --set asr_test=data/manifests/cuts_asr_test.jsonl.gz --set asr_test_unseen=...
    python -m elfs2t.bin.whisper_decode --model tools/models/whisper-base --task translate --language de \\
        --target translation:en --set st_test=data/manifests/cuts_st_test.jsonl.gz

Cuts are stage-1 manifests or stage-2 cached-feature cuts: the audio is read through Lhotse and goes
through Whisper's own front end and encoder (30-s padded windows). Output, like stage 5:
``<exp-dir>/decode_<task>[_<lang>]_beam<N>/<set>/{text,ref,utt_timing.txt,timing.json,decode_config.yaml}``
with ``exp-dir`` defaulting to ``exp/whisper_<name>`` (``whisper_tiny.en``, ``whisper_base``), so stage 6
scores and tabulates it like the trained models. ``timing.json``: ``rtfx`` counts the decoder only
(like the cached-feature models), ``rtfx_e2e`` adds log-mel and encoder. One process; ``--model`` is a
local directory or a hub id (offline: a local directory).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point, named_path
from elfs2t.config import structure
from elfs2t.data.dataset import SetSpec, load_sets
from elfs2t.errors import InputError
from elfs2t.baselines.whisper_zero_shot import (WhisperDecodeConfig, WhisperZeroShot, decode_whisper, exp_name,
                                             inference_tag)

log = logging.getLogger("elfs2t.whisper_decode")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.whisper_decode", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Whisper hub id or local directory")
    p.add_argument("--set", dest="sets", action="append", required=True, type=named_path("CUTS"),
                   metavar="NAME=CUTS",
                   help="a test set: name and cuts manifest (stage 1 or stage 2; repeatable)")
    p.add_argument("--target", default="transcript", help="reference: transcript (ASR) or translation:<tgt> (S2TT)")
    p.add_argument("--task", choices=["transcribe", "translate"], default="transcribe",
                   help="Whisper task (translate: X -> English, multilingual models only)")
    p.add_argument("--language", default=None, help="source language code, e.g. de (default: the cuts' language)")
    p.add_argument("--beam-size", type=int, default=1, help="1: greedy (default); > 1: beam search")
    p.add_argument("--max-new-tokens", type=int, default=128, help="longest hypothesis in tokens")
    p.add_argument("--max-duration", type=float, default=120.0, help="seconds of audio per batch")
    p.add_argument("--max-cuts", type=int, default=16, help="utterances per batch")
    p.add_argument("--lowercase", action="store_true", help="lower-case hypotheses and references")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--exp-dir", type=Path, default=None, help="output experiment folder (default exp/whisper_<name>)")
    p.add_argument("--tag", default=None, help="inference tag (default <task>[_<lang>]_beam<N>)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    values = {"model": args.model, "task": args.task, "language": args.language, "beam_size": args.beam_size,
              "max_new_tokens": args.max_new_tokens, "max_duration": args.max_duration, "max_cuts": args.max_cuts,
              "lowercase": args.lowercase, "device": args.device}
    cfg = structure(WhisperDecodeConfig, values)
    sets = []  # every set is read before the model decodes the first (a missing one: one line, status 1)
    for name, path in args.sets:
        try:
            sets.append((name, load_sets([SetSpec(cuts=path, target=args.target)])))
        except FileNotFoundError as exc:
            raise InputError(f"--set {name}: {exc}") from exc
    model = WhisperZeroShot(cfg)  # a model folder that is not there: entry_point's one line, status 1
    exp_dir = args.exp_dir or Path("exp") / exp_name(args.model)
    tag = args.tag or inference_tag(cfg)
    for name, cuts in sets:
        out_dir = exp_dir / f"decode_{tag}" / name
        timing = decode_whisper(model, cuts, out_dir)
        print(f"decoded {name}: {timing['num_utts']} utts, RTFx {timing['rtfx']:.1f} (decoder), "
              f"{timing['rtfx_e2e']:.1f} (with log-mel + encoder) -> {out_dir}/text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
