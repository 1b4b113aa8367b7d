"""Stage 5: decode test sets with a trained model (EMA weights), writing Kaldi-style hypothesis files.

    python -m elfs2t.bin.decode --exp-dir exp/asr_elf --target transcript \\
        --set asr_test=dump/whisper-tiny.en_trim/asr_test/cuts.jsonl.gz [decode.flow.steps=8 ...]

The model config comes from ``exp-dir/config.yaml``; only ``decode.*`` keys may be overridden. Output:
``exp-dir/decode_<inference_tag>/<set>/{text,ref,utt_timing.txt,timing.json}`` (see elfs2t.decode).
Under torchrun each process decodes a share of the batches and rank 0 merges the shards.
References longer than the model's text slots (``max_text_tokens``; no hypothesis can be that long) are still
decoded and scored, but counted: a warning names a few, and ``timing.json`` holds ``refs_over_max_len``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from elfs2t.bin._cli import entry_point
from elfs2t.config import ConfigError, dump_config, load_config
from elfs2t.data.dataset import SetSpec, load_sets, target_text
from elfs2t.decode import annotate_timing, decode_cuts, merge_shards
from elfs2t.experiment import ExperimentConfig, build_model, decode_tag, hypothesis_fn
from elfs2t.results import decode_info
from elfs2t.train.checkpoint import load_checkpoint, load_latest
from elfs2t.train.distributed import barrier, cleanup, init_distributed

log = logging.getLogger("elfs2t.decode")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.decode", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", type=Path, required=True, help="trained experiment folder exp/<tag>")
    p.add_argument("--set", dest="sets", action="append", required=True, metavar="NAME=CUTS",
                   help="a test set: name and cuts manifest with cached features (repeatable)")
    p.add_argument("--target", default="transcript", help="transcript (ASR) or translation:<tgt> (S2TT)")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default: the latest in exp-dir)")
    p.add_argument("--tag", default=None, help="inference tag (default: from the decoding settings)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("overrides", nargs="*", metavar="decode.key=value", help="decoding overrides, e.g. decode.flow.steps=8")
    return p


def load_trained(exp_dir: Path, overrides: list[str], checkpoint: Path | None = None):
    """Model + config of a trained experiment, with EMA weights when ``decode.use_ema``."""
    bad = [o for o in overrides if not o.lstrip("-").startswith("decode.")]
    if bad:
        raise ConfigError(f"only decode.* keys can be overridden at decoding time, got {bad}")
    cfg = load_config(ExperimentConfig, exp_dir / "config.yaml", overrides)
    cfg.init.denoiser = None  # the trained weights come from the checkpoint
    model = build_model(cfg)
    state = load_checkpoint(checkpoint) if checkpoint else load_latest(exp_dir)
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {exp_dir}: run stage 4 first")
    model.load_state_dict(state["model"])
    if cfg.decode.use_ema and state.get("ema"):
        shadow = state["ema"]["shadow"]
        with torch.no_grad():
            for name, value in model.state_dict(keep_vars=True).items():
                if name in shadow:
                    value.copy_(shadow[name].to(value.dtype))
    log.info("loaded %s (step %s, %s weights)", state.get("path", checkpoint), state["step"],
             "EMA" if cfg.decode.use_ema and state.get("ema") else "raw")
    model.eval()
    return model, cfg, state


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
    info = init_distributed()
    model, cfg, state = load_trained(args.exp_dir, args.overrides, args.checkpoint)
    model.to(info.device)
    tag = args.tag or decode_tag(cfg)
    lower = cfg.ar.lowercase if cfg.model == "ar" else cfg.elf.lowercase
    for item in args.sets:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected NAME=CUTS_MANIFEST")
        cuts = load_sets([SetSpec(cuts=Path(path), target=args.target)])
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
                                      "refs_over_max_len": len(over),
                                      "max_text_tokens": getattr(model, "max_text_tokens", None)})
            print(f"decoded {name}: {summary['num_utts']} utts, RTFx {summary['rtfx']:.1f} -> {out_dir}/text")
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
