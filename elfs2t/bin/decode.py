"""Stage 5: decode test sets with a trained model (EMA weights), writing Kaldi-style hypothesis files.

    python -m elfs2t.bin.decode --exp-dir exp/asr_elf --target transcript \\
        --set asr_test=dump/whisper-tiny.en_trim/asr_test/cuts.jsonl.gz [decode.flow.steps=8 ...]

The model config comes from ``exp-dir/config.yaml``; only ``decode.*`` keys may be overridden: by named decoding
configs (``--decode-conf conf/decode/flow4.yaml``, a ``decode:`` section; repeatable, merged in order) and then by
``decode.key=value`` arguments. Output:
``exp-dir/decode_<inference_tag>/<set>/{text,ref,utt_timing.txt,timing.json}`` (see elfs2t.decode).
Under torchrun each process decodes a share of the batches and rank 0 merges the shards.
References longer than the model's text slots (``max_text_tokens``; no hypothesis can be that long) are still
decoded and scored, but counted: a warning names a few, and ``timing.json`` holds ``refs_over_max_len``.

Weights: the EMA weights of the latest checkpoint, ``--checkpoint FILE``, or ``--average N`` checkpoints (the last
N, or with ``--average-by best`` the N of lowest validation loss; the tag gets ``_avgN`` / ``_avgbestN``).
Features made by another encoder, mode or dtype than the model's (``exp-dir/encoder.json``) are refused.
``--record-setting`` records these ``decode.*`` overrides (the decoding configs' keys, then the arguments) as the
model's decoding setting
(``exp-dir/decode_setting.yaml``), the one ``elfs2t.load``, ``transcribe`` and ``export`` use.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point, named_path
from elfs2t.config import ConfigError, dump_config
from elfs2t.data.dataset import SetSpec, load_sets, target_text
from elfs2t.decode import annotate_timing, decode_cuts, merge_shards
from elfs2t.experiment import decode_tag, hypothesis_fn, model_kind, task_tokens
from elfs2t.inference.setting import decode_conf_overrides, record_setting
from elfs2t.inference.trained import check_sets, load_trained
from elfs2t.results import decode_info
from elfs2t.train.distributed import barrier, cleanup, init_distributed

log = logging.getLogger("elfs2t.decode")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.decode", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", type=Path, required=True, help="trained experiment folder exp/<tag>")
    p.add_argument("--set", dest="sets", action="append", required=True, type=named_path("CUTS"),
                   metavar="NAME=CUTS",
                   help="a test set: name and cuts manifest with cached features (repeatable)")
    p.add_argument("--target", default="transcript", help="transcript (ASR) or translation:<tgt> (S2TT)")
    p.add_argument("--task", default=None,
                   help="task token of a model with several tasks (default from --target: asr, st:<tgt>)")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default: the latest in exp-dir)")
    p.add_argument("--average", type=int, default=0, metavar="N",
                   help="decode the average of N checkpoints' weights instead of the EMA weights (0: off)")
    p.add_argument("--average-by", choices=("last", "best"), default="last",
                   help="which N checkpoints: the last, or those of lowest validation loss")
    p.add_argument("--decode-conf", action="append", default=[], type=Path, metavar="FILE",
                   help="a named decoding config (YAML with a decode: section, e.g. conf/decode/flow4.yaml), merged "
                        "into the model's decode section before the decode.key=value overrides (repeatable)")
    p.add_argument("--record-setting", action="store_true",
                   help="record these decode.* overrides as the model's setting (exp-dir/decode_setting.yaml)")
    p.add_argument("--tag", default=None, help="inference tag (default: from the decoding settings)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("overrides", nargs="*", metavar="decode.key=value", help="decoding overrides, e.g. decode.flow.steps=8")
    return p


def refs_over_max_len(model, cuts, target: str) -> list[str]:
    """Ids of the cuts whose reference has more tokens than ``model.max_text_tokens`` (counted as the training
    filter counts them, ``model.count_tokens``; ``[]`` for a model without them): their scores hold errors no
    hypothesis of this model could avoid."""
    count, limit = getattr(model, "count_tokens", None), getattr(model, "max_text_tokens", None)
    if count is None or limit is None:
        return []
    return [cut.id for cut in cuts if count(target_text(cut, target)) > limit]


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    overrides = decode_conf_overrides(args.decode_conf) + list(args.overrides)
    info = init_distributed()
    model, cfg, state = load_trained(args.exp_dir, overrides, args.checkpoint, args.average, args.average_by)
    task = SetSpec(cuts=Path("-"), target=args.target, task=args.task).task_name
    if task_tokens(cfg) and task not in task_tokens(cfg):
        raise ConfigError(f"--task {task}: the model of {args.exp_dir} has the tasks {task_tokens(cfg)}")
    # before any decoding: features of another encoder would decode into wrong text (a ConfigError: one line, status
    # 2, entry_point)
    check_sets(args.exp_dir, cfg, [path for _, path in args.sets])
    model.to(info.device)
    tag = args.tag or decode_tag(cfg)
    if args.average:
        tag += f"_avg{'best' if args.average_by == 'best' else ''}{args.average}"
    lower = model_kind(cfg).lowercase(cfg)
    for name, path in args.sets:
        cuts = load_sets([SetSpec(cuts=path, target=args.target, task=args.task)])
        over = refs_over_max_len(model, cuts, args.target) if info.is_main else []
        if over:
            log.warning("%s: %d reference(s) longer than the model's %d text tokens (e.g. %s): decoded and scored, "
                        "but no hypothesis can be that long", name, len(over), model.max_text_tokens,
                        ", ".join(over[:5]))
        out_dir = args.exp_dir / f"decode_{tag}" / name
        summary = decode_cuts(hypothesis_fn(model, cfg, args.seed), cuts, out_dir, max_duration=cfg.decode.max_duration,
                              rank=info.rank, world_size=info.world_size, text_transform=str.lower if lower else None)
        if info.world_size > 1:
            barrier()
            if info.is_main:
                summary = merge_shards(out_dir, info.world_size)
        if info.is_main:
            dump_config(cfg.decode, out_dir / "decode_config.yaml")
            annotate_timing(out_dir, {**decode_info(cfg, model, cuts=path, train_step=state.get("step")),
                                      "target": args.target, "task": task,
                                      "refs_over_max_len": len(over),
                                      "max_text_tokens": getattr(model, "max_text_tokens", None)})
            print(f"decoded {name}: {summary['num_utts']} utts, RTFx {summary['rtfx']:.1f} -> {out_dir}/text")
    if args.record_setting and info.is_main:
        print(f"recorded the decoding setting {overrides} -> {record_setting(args.exp_dir, overrides, tag)}")
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
