"""The word spaces of a trained experiment, for the error analysis.

* ELF-S2T (``model: elf_s2t``): the latent space is the model's own frozen text encoder (``elf.text``), the
  token embedding the token head's unembedding ``U`` (EMA weights when ``decode.use_ema``).
* AR baseline (``model: ar``): it has no latent space of its own, so ``text_space`` (a text encoder name or
  directory, e.g. ``tools/models/all-MiniLM-L6-v2``) must be given; the token embedding is the LM's input
  embedding.
* No trained model (a folder without ``config.yaml``, e.g. Whisper zero-shot decodes): the latent spaces of
  ``text_space`` only.

An ELF-S2T experiment always uses its own latent space (``text_space`` is ignored for it, with a log line), so
one command line serves a folder of mixed experiments.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from elfs2t.analysis.spaces import LatentWords, TokenEmbedding, WordSpaces
from elfs2t.text.latent import TextLatentConfig, TextLatentSpace

__all__ = ["load_spaces"]

log = logging.getLogger(__name__)


def _latent(text_space: str, max_len: int) -> LatentWords:
    return LatentWords(TextLatentSpace(TextLatentConfig(name_or_path=str(text_space), max_len=max_len)))


def load_spaces(exp_dir: Optional[Path], text_space: Optional[str] = None, max_len: int = 32) -> WordSpaces:
    """The spaces of ``exp_dir`` (see the module docstring); ``max_len``: L for a ``text_space`` given here."""
    if exp_dir is None or not (Path(exp_dir) / "config.yaml").is_file():
        if text_space is None:
            raise ValueError(f"{exp_dir}: no trained model (config.yaml) to take the spaces from; pass a text "
                             "encoder (--text-space) for the latent spaces")
        log.info("%s: no trained model; latent spaces of %s only", exp_dir, text_space)
        return WordSpaces(_latent(text_space, max_len), None, model_type="none")
    from elfs2t.experiment import model_kind
    from elfs2t.inference.trained import load_trained

    model, cfg, state = load_trained(Path(exp_dir), [])
    own = model_kind(cfg).word_spaces(model, cfg)  # what the model holds (elfs2t.kinds.base.ModelSpaces)
    if own is None:
        raise ValueError(f"{exp_dir}: model type {cfg.model!r} has no word spaces defined for the analysis")
    if own.latent is not None:
        if text_space:
            log.info("%s: %s; --text-space %s is not used for it", exp_dir, own.latent_note, text_space)
        latent = LatentWords(own.latent)
    elif text_space is None:
        raise ValueError(f"{exp_dir}: {own.latent_note}; pass a text encoder "
                         "(--text-space, e.g. tools/models/all-MiniLM-L6-v2)")
    else:
        latent = _latent(text_space, max_len)
    token = TokenEmbedding(own.tokenizer, own.token_weight, f"{own.token_source}, step {state.get('step')}",
                           ids=own.token_ids)
    return WordSpaces(latent, token, model_type=cfg.model)
