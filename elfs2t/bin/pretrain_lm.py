"""Stage 3 (AR baseline): pre-train a small causal LM on a text corpus (one sentence per line).

    python -m elfs2t.bin.pretrain_lm --conf conf/pretrain_lm.yaml --exp-dir exp/lm_text \\
        --text data/lm/train_text.txt [key.path=value ...]

The config is :class:`elfs2t.models.text_lm.PretrainLmConfig` (sections model, optim, train). The
tokenizer is a byte-level BPE trained on the text into ``exp-dir/tokenizer`` (or ``model.tokenizer``).
Every ``train.valid_every`` steps a few sentences are sampled with the EMA weights and logged
(``train.log``, TensorBoard) with the share that are corpus lines. A re-run resumes from the last
checkpoint (``--no-resume`` refuses to start over existing checkpoints); ``exp-dir`` is never reused
with a different config unless ``--overwrite``. Output for stage 4: ``exp-dir/hf``, a Hugging Face
causal-LM directory with the tokenizer (EMA weights), named by the AR config as ``ar.lm``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elfs2t.config import ConfigError, load_config
from elfs2t.models.text_lm import PretrainLmConfig, pretrain_lm
from elfs2t.train.exp_dir import ExpDirError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.pretrain_lm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conf", type=Path, default=None, help="YAML with PretrainLmConfig fields (default: all defaults)")
    p.add_argument("--exp-dir", type=Path, required=True, help="output folder, e.g. exp/lm_text")
    p.add_argument("--text", type=Path, required=True, help="training text, one sentence per line (UTF-8)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the newest checkpoint of exp-dir (default); --no-resume refuses existing ones")
    p.add_argument("--overwrite", action="store_true", help="reuse exp-dir even if its stored config differs")
    p.add_argument("overrides", nargs="*", metavar="key.path=value",
                   help="config overrides, e.g. model.layers=2 train.max_steps=500")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    try:
        cfg = load_config(PretrainLmConfig, args.conf, args.overrides)
        summary = pretrain_lm(cfg, args.exp_dir, args.text, resume=args.resume, overwrite=args.overwrite)
    except (ConfigError, ExpDirError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"pre-trained {args.exp_dir}: step {summary['step']}, stopped by {summary['stopped_by']}, "
          f"train loss {summary['train_loss']:.4f}, samples in corpus "
          f"{summary['valid'].get('sample_in_corpus', float('nan')):.2f} -> {args.exp_dir / 'hf'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
