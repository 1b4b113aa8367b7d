"""Train an ELF-S2T experiment's token n-gram model of its training texts (for the draft's LM fusion).

    python -m elfs2t.bin.train_ngram --exp-dir exp/asr_elf [--order 3] [--discount 0.75] [--force]

Reads the experiment's training sets (``data.train`` of its ``config.yaml``: the same cuts and targets as
training), tokenizes each target text with the model's text tokenizer (the ids its CTC reads), and writes an
interpolated Kneser-Ney n-gram (:mod:`elfs2t.text.ngram`) to ``<exp-dir>/ngram.json``, where the loaders find it:
``decode.draft.lm_weight > 0`` fuses it into the draft's prefix beam search. Lhotse's perturbed copies of an
utterance (``<id>_sp0.9``, ``_tp1.1``, ``_vp...``) count once. Only training text belongs here: the model's own
targets, no test text. A folder that has an n-gram model keeps it unless ``--force``; a model trained without
the auxiliary CTC (``elf.ctc_weight: 0``, the paper's configuration) has no draft to fuse one into and is skipped.
Recipes run it at the end of stage 4.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point
from elfs2t.errors import InputError

log = logging.getLogger(__name__)

_PERTURBED = re.compile(r"_(sp|tp|vp)[0-9.]+$")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.train_ngram", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", type=Path, required=True, help="a trained ELF-S2T experiment folder (stage 4's)")
    p.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    p.add_argument("--discount", type=float, default=0.75, help="Kneser-Ney absolute discount (default 0.75)")
    p.add_argument("--force", action="store_true", help="train again over an existing ngram.json")
    return p


def training_texts(exp_dir: Path, cfg) -> list[str]:
    """The target texts of the experiment's training sets, each utterance once (perturbed copies dropped)."""
    from lhotse import CutSet

    from elfs2t.data.dataset import target_text
    from elfs2t.inference.trained import config_bases, resolve_path

    bases = config_bases(exp_dir)
    texts, seen = [], set()
    for spec in cfg.data.train:
        path = resolve_path(str(spec.cuts), bases)
        if not path or not Path(path).is_file():
            raise InputError(f"{exp_dir}: its training set {spec.cuts} (data.train) is not there")
        for cut in CutSet.from_file(path):
            key = (_PERTURBED.sub("", cut.id), spec.target)
            if key not in seen:
                seen.add(key)
                texts.append(target_text(cut, spec.target))
    return texts


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    from elfs2t.inference.trained import load_experiment
    from elfs2t.text.ngram import NGRAM_FILE, NgramLM

    out = args.exp_dir / NGRAM_FILE
    if out.is_file() and not args.force:
        print(f"n-gram model {out}: kept (already trained; --force trains it again)")
        return 0
    loaded = load_experiment(args.exp_dir)
    model = loaded.model
    if not hasattr(model, "ngram"):
        raise InputError(f"{args.exp_dir}: a {loaded.cfg.model} model has no use for an n-gram model "
                         "(ELF-S2T's draft fuses one)")
    if model.cfg.ctc_weight <= 0:
        print(f"n-gram model: skipped ({args.exp_dir} has no CTC draft to fuse one into: elf.ctc_weight=0)")
        return 0
    texts = training_texts(args.exp_dir, loaded.cfg)
    ids = model.text_space.tokenizer(texts, add_special_tokens=False)["input_ids"]
    vocab = model.vocab.numel() if model.vocab is not None else model.text_space.vocab_size
    lm = NgramLM.train(ids, order=args.order, vocab_size=vocab, discount=args.discount)
    tmp = out.with_name(out.name + ".tmp")
    lm.save(tmp)
    tmp.replace(out)
    print(f"n-gram model {out}: order {args.order}, {len(texts)} training texts, "
          f"{sum(len(x) for x in ids)} tokens, floor over {vocab} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
