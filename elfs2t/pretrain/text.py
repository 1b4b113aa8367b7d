"""Stage 3: pre-train a text-only ELF (:class:`elfs2t.models.elf_text.TextElf`) on the corpus text with the trainer,
and load a pre-trained one back (the ELF-S2T initialisation ``--elf-init text``, the cascade's translation model)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from elfs2t.config import load_config, unstructure
from elfs2t.data.text_corpus import TextLineDataset, sample_reporter, text_loader
from elfs2t.flow.sampler import SamplerConfig
from elfs2t.models.elf_text import TextElf, TextElfConfig
from elfs2t.text.latent import TextLatentSpace
from elfs2t.train.checkpoint import list_checkpoints, load_checkpoint, load_latest
from elfs2t.train.config import TextPretrainConfig
from elfs2t.train.exp_dir import check_exp_dir, record_exp_dir
from elfs2t.train.trainer import Trainer

log = logging.getLogger(__name__)

__all__ = ["PretrainTextConfig", "pretrain_text", "sample_hook", "load_text_elf"]


@dataclass(kw_only=True)
class PretrainTextConfig(TextPretrainConfig):
    """Stage 3: text-only ELF pre-training (model, objective, periodic samples; optim, train, batch_size,
    num_samples: :class:`~elfs2t.train.config.TextPretrainConfig`)."""

    model: TextElfConfig = field(default_factory=TextElfConfig)
    """The text ELF (latent space, denoiser, flow objective)."""
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(steps=16))
    """Sampler of the periodic samples."""


def sample_hook(corpus: TextLineDataset, sampler: SamplerConfig, num_samples: int):
    """``on_validate(model, step)`` hook: log ``num_samples`` generated sentences and how many are corpus lines."""
    report = sample_reporter(corpus, log)
    sources = corpus.sources()[:num_samples]

    def hook(model: nn.Module, step: int) -> dict:
        if num_samples == 0:
            return {}
        elf = model.module if hasattr(model, "module") else model
        return report(step, elf.generate(sources if elf.cfg.conditional else num_samples, sampler))

    return hook


def pretrain_text(cfg: PretrainTextConfig, exp_dir: str | Path, text_file: str | Path, *,
                  resume: bool = True, overwrite: bool = False,
                  text_space: Optional[TextLatentSpace] = None) -> dict:
    """Train a :class:`TextElf` on ``text_file`` (one sentence per line; ``source<TAB>target`` when
    ``model.conditional``) into ``exp_dir`` (one process); returns the trainer's summary.

    ``resume``: continue from the newest checkpoint of ``exp_dir``; without it, an ``exp_dir`` that
    already holds checkpoints is an error (no silent restart over old checkpoints). ``overwrite``:
    reuse ``exp_dir`` even if its stored config differs. The last samples go to ``exp_dir/samples.txt``.
    """
    exp_dir = Path(exp_dir)
    if not resume and list_checkpoints(exp_dir):
        raise FileExistsError(f"{exp_dir} already holds checkpoints: resume, or use another exp dir")
    corpus = TextLineDataset(text_file, paired=cfg.model.conditional)
    torch.manual_seed(cfg.train.seed)  # the initial weights
    model = TextElf(cfg.model, text_space=text_space)
    check_exp_dir(exp_dir, cfg, overwrite=overwrite)  # after the model filled in the text space's sizes
    if cfg.model.token_shortlist:  # fixed before the optimiser is built; a resume loads the same one
        model.set_token_shortlist(corpus.texts())
    log.info("text ELF: %.2fM denoiser parameters, %d sentences, L=%d, d=%d", model.denoiser.num_parameters() / 1e6,
             len(corpus), model.text_space.max_len, model.text_space.dim)
    loader = text_loader(corpus, cfg.batch_size)
    record_exp_dir(exp_dir, cfg)  # only now: a start that failed (a missing text file) leaves the folder as it was
    trainer = Trainer(model, cfg.optim, cfg.train, exp_dir, loader,
                      on_validate=sample_hook(corpus, cfg.sampler, cfg.num_samples),
                      batch_size=cfg.batch_size, config=unstructure(cfg))
    summary = trainer.fit(resume=resume)
    samples = summary.get("valid", {}).get("samples", "")
    (exp_dir / "samples.txt").write_text(samples.replace(" | ", "\n") + "\n" if samples else "")
    return summary


def load_text_elf(exp_dir: str | Path, checkpoint: Optional[str | Path] = None, use_ema: bool = True,
                  text_space: Optional[TextLatentSpace] = None) -> tuple[TextElf, PretrainTextConfig, dict]:
    """The text ELF trained into ``exp_dir`` (its ``config.yaml``; the latest checkpoint or ``checkpoint``), with
    the EMA weights when ``use_ema`` and the checkpoint has them, in eval mode; also its config and the state."""
    exp_dir = Path(exp_dir)
    cfg = load_config(PretrainTextConfig, exp_dir / "config.yaml")
    state = load_checkpoint(checkpoint) if checkpoint else load_latest(exp_dir)
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {exp_dir}: train the text ELF first (pretrain_text)")
    model = TextElf(cfg.model, text_space=text_space)
    weights = dict(state["model"])
    if use_ema and state.get("ema"):
        weights.update(state["ema"]["shadow"])
    model.load_state_dict(weights)
    return model.eval(), cfg, state
