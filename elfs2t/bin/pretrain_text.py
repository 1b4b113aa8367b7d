"""Stage 3: pre-train a text-only ELF backbone on a text corpus (one sentence per line).

    python -m elfs2t.bin.pretrain_text --conf conf/pretrain_text.yaml --exp-dir exp/elf_text \\
        --text data/lm/train_text.txt [key.path=value ...]

The config is :class:`elfs2t.pretrain.text.PretrainTextConfig` (sections model.text, model.denoiser,
model.flow, optim, train, sampler). Every ``train.valid_every`` steps a few sentences are sampled with
the EMA weights and logged (``train.log``, TensorBoard), with the share of samples that are corpus lines.
A re-run resumes from the last checkpoint (``--no-resume`` refuses to start over existing checkpoints);
``exp-dir`` is never reused with a different config unless ``--overwrite``. The denoiser weights in
``exp-dir/last.pt`` initialise ELF-S2T in stage 4. For a conditional model (``model.conditional=true``)
each line is ``source<TAB>target``.
"""
from __future__ import annotations

import argparse
import sys

from elfs2t.bin import _pretrain
from elfs2t.bin._cli import entry_point
from elfs2t.pretrain.text import PretrainTextConfig, pretrain_text


def get_parser() -> argparse.ArgumentParser:
    return _pretrain.get_parser("pretrain_text", __doc__,
                                PretrainTextConfig, "exp/elf_text", "model.denoiser.depth=2 train.max_steps=500")


@entry_point
def main(argv: list[str] | None = None) -> int:
    return _pretrain.run(get_parser(), argv, PretrainTextConfig, pretrain_text)


if __name__ == "__main__":
    sys.exit(main())
