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
import sys

from elfs2t.bin import _pretrain
from elfs2t.bin._cli import entry_point
from elfs2t.models.text_lm import PretrainLmConfig, pretrain_lm


def get_parser() -> argparse.ArgumentParser:
    return _pretrain.get_parser("pretrain_lm", __doc__,
                                PretrainLmConfig, "exp/lm_text", "model.layers=2 train.max_steps=500")


@entry_point
def main(argv: list[str] | None = None) -> int:
    return _pretrain.run(get_parser(), argv, PretrainLmConfig, pretrain_lm, output="hf")


if __name__ == "__main__":
    sys.exit(main())
