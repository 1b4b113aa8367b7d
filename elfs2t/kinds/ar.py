"""The AR speech-LLM baseline in the model registry: build, decode (n-best = beam search's hypotheses), and what
an export must carry (its tokenizer and, for a Hugging Face LM, the LM's structure).

Scores are ``log p / len ** length_penalty`` (length counting EOS): higher is better. A hypothesis that used all
``decode.max_new_tokens`` without ending is marked ``full``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn

from elfs2t.config import ConfigError
from elfs2t.kinds.base import DecodeFn, Hyp, ModelKind, ModelSpaces

if TYPE_CHECKING:
    from elfs2t.experiment import ExperimentConfig

__all__ = ["ArKind"]

LM_DIR = "lm"
"""Folder of an exported AR model holding its tokenizer and LM structure (``config.json``, no weights)."""


class ArKind(ModelKind):
    """``model: ar`` (:class:`elfs2t.baselines.ar.ArSpeechLM`, settings under ``ar``)."""

    name = "ar"
    section_key = "ar"
    title = "AR"
    display_name = "AR speech-LLM"
    backbone_key = "ar.lm"
    table_settings = ("beam_size",)

    def build(self, cfg: "ExperimentConfig") -> nn.Module:
        from elfs2t.baselines.ar import ArSpeechLM

        return ArSpeechLM(cfg.ar)

    def build_for_weights(self, cfg: "ExperimentConfig") -> nn.Module:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        from elfs2t.baselines.ar import ArSpeechLM

        lm_dir = cfg.ar.lm
        if lm_dir is not None and (Path(lm_dir) / "elfs2t_structure_only").is_file():  # an export: structure only
            tokenizer = AutoTokenizer.from_pretrained(lm_dir)
            lm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(lm_dir))
            return ArSpeechLM(cfg.ar, lm=lm, tokenizer=tokenizer)
        return ArSpeechLM(cfg.ar)

    def decode_fn(self, model: nn.Module, cfg: "ExperimentConfig", generator: torch.Generator,
                  nbest: int = 1) -> DecodeFn:
        d = cfg.decode
        if nbest > d.beam_size:
            raise ConfigError(f"nbest={nbest}: the AR baseline's n-best lists come from beam search; decode with "
                              f"decode.beam_size={nbest} or more (now {d.beam_size})")
        if nbest <= 1:  # exactly stage 5's call
            def one(batch: dict) -> list[list[Hyp]]:
                ids = model.generate_ids(batch, max_new_tokens=d.max_new_tokens, beam_size=d.beam_size)
                return [[Hyp(model.tokenizer.decode(s, skip_special_tokens=True).strip(),
                             full=len(s) >= d.max_new_tokens)] for s in ids]
            return one

        def ranked(batch: dict) -> list[list[Hyp]]:
            rows = model.generate_nbest(batch, nbest, max_new_tokens=d.max_new_tokens, beam_size=d.beam_size)
            return [[Hyp(text, score, not ended) for text, score, ended in row] for row in rows]
        return ranked

    def decode_tag(self, cfg: "ExperimentConfig") -> str:
        return f"beam{cfg.decode.beam_size}"

    def decode_record(self, cfg: "ExperimentConfig") -> dict[str, Any]:
        beam = cfg.decode.beam_size
        return {"beam_size": beam, "reader": "autoregressive decoder" + (" (greedy)" if beam == 1 else f" (beam {beam})")}

    def word_spaces(self, model: nn.Module, cfg: "ExperimentConfig") -> ModelSpaces:
        """No latent space of its own; the token embedding is the LM's input embedding."""
        return ModelSpaces(latent=None, latent_note="the AR baseline has no latent space of its own",
                           tokenizer=model.tokenizer, token_weight=model.lm.get_input_embeddings().weight,
                           token_source=f"AR LM input embedding ({cfg.ar.lm or 'fresh LM'})")

    def loads_from(self, cfg: "ExperimentConfig") -> dict[str, Optional[str]]:
        return {"ar.lm": cfg.ar.lm, "ar.tokenizer": cfg.ar.tokenizer}  # frozen_models: none (copied by portable)

    def portable(self, model: nn.Module, cfg: "ExperimentConfig", out_dir: Path) -> dict[str, str]:
        """The tokenizer and the LM's config (no weights: they are the model's) into ``out_dir/lm``."""
        lm_dir = out_dir / LM_DIR
        model.tokenizer.save_pretrained(lm_dir)
        model.lm.config.save_pretrained(lm_dir)
        (lm_dir / "elfs2t_structure_only").write_text(json.dumps(
            {"note": "tokenizer and LM structure of an exported elfs2t AR model; the weights are in "
                     "../model.safetensors"}) + "\n")
        return {"ar.lm": LM_DIR, "ar.tokenizer": LM_DIR}
