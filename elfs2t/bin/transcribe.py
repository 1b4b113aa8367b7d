"""Transcribe (or translate) your own audio with a trained model: an experiment folder or an exported one.

    python -m elfs2t.bin.transcribe --model exp/asr_elf a.wav b.flac
    python -m elfs2t.bin.transcribe --model my_model/ --format json --nbest 4 data/wav.scp > out.jsonl
    python -m elfs2t.bin.transcribe --model exp/asr_elf --format ctm cuts.jsonl.gz > words.ctm

Inputs: audio files (any format Lhotse reads, any sampling rate or channel count), Kaldi wav.scp files, Lhotse cuts
manifests. The Whisper encoder runs in-process, as stage 2 runs it, and the model decodes with the setting its
experiment recorded (stage 5's ``--record-setting``; ``decode.key=value`` arguments go on top): the same audio gives
the text stage 5 gives. A speech translation model translates (``--task st:<tgt>`` picks the task of a model with
several). Audio longer than the model holds (the longest utterance it was trained on, at most 30 s) is split at
quiet points (``--max-segment`` sets the length, ``--no-segment`` refuses such audio instead). An input that cannot
be read is skipped and named; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point
from elfs2t.config import ConfigError
from elfs2t.inference.audio import InputError, TooLongError
from elfs2t.inference.output import FORMATS, write_transcripts
from elfs2t.train.checkpoint import CheckpointError

log = logging.getLogger("elfs2t.transcribe")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.transcribe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="experiment folder exp/<tag> or an exported model folder")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio files, wav.scp files, cuts manifests; and decode.key=value overrides")
    p.add_argument("--task", default=None, help="asr or st:<tgt> (default: the model's task; asr if it has several)")
    p.add_argument("--format", choices=FORMATS, default="text", help="text: '<id> <text>' lines; json: one object "
                   "per input (n-best, segments, word times); ctm: one line per word with its time")
    p.add_argument("--out", type=Path, default=None, help="output file (default: standard output)")
    p.add_argument("--nbest", type=int, default=1, help="hypotheses per segment in the JSON output (ELF-S2T: the "
                   "rescoring candidates; AR: beam search, needs decode.beam_size >= N)")
    p.add_argument("--word-times", action="store_true", help="word times in the JSON output (on for --format ctm)")
    p.add_argument("--max-segment", type=float, default=None, metavar="SECONDS",
                   help="split longer audio into pieces of at most this long (default: what the model holds)")
    p.add_argument("--no-segment", action="store_true", help="refuse audio longer than the model holds")
    p.add_argument("--average", type=int, default=0, metavar="N",
                   help="experiment folders: the average of N checkpoints' weights (default: the EMA weights)")
    p.add_argument("--average-by", choices=("last", "best"), default="last", help="the last N, or those of lowest "
                   "validation loss")
    p.add_argument("--checkpoint", type=Path, default=None, help="experiment folders: this checkpoint file")
    p.add_argument("--encoder", default=None, help="the Whisper encoder (hub id or directory) when the recorded "
                   "one is not found; its weights must be the ones the model was trained on")
    p.add_argument("--text-model", default=None, help="the frozen text encoder, when the recorded one is not found")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
                        stream=sys.stderr)
    overrides = [a for a in args.inputs if a.startswith("decode.") and "=" in a]
    inputs = [a for a in args.inputs if a not in overrides]
    if not inputs:
        print("transcribe: error: no input (audio files, wav.scp, cuts manifests)", file=sys.stderr)
        return 2
    from elfs2t.inference.model import load

    errors: list[str] = []
    try:
        model = load(args.model, device=args.device, average=args.average, average_by=args.average_by,
                     checkpoint=args.checkpoint, overrides=overrides, encoder=args.encoder, text_model=args.text_model)
        task = args.task or model.default_task()
        if task not in model.tasks:
            raise ConfigError(f"--task {task}: {args.model} does {model.tasks}")
        log.info("%r: %s", model, task)
        results = model.decode(inputs, task, nbest=args.nbest, word_times=args.word_times or args.format == "ctm",
                               max_segment=args.max_segment, segment=not args.no_segment, progress=args.progress,
                               errors=errors)  # unreadable inputs are named and skipped
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w") as fh:
                write_transcripts(results, fh, args.format)
        else:
            write_transcripts(results, sys.stdout, args.format)
    except (ConfigError, InputError, TooLongError, CheckpointError, FileNotFoundError, FileExistsError) as exc:
        print(f"transcribe: error: {exc}", file=sys.stderr)
        return 2
    log.info("%d input(s) decoded%s", len(results), f", {len(errors)} skipped" if errors else "")
    if errors:
        print(f"transcribe: {len(errors)} input(s) skipped: " + "; ".join(errors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
