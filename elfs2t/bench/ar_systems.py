"""The AR baseline in the decoding benchmark: one system per beam size, all on one model.

A trained model (``--ar-exp``) decodes through stage 5's own hypothesis function
(:func:`elfs2t.experiment.hypothesis_fn`) with ``decode.beam_size = N`` and ``decode.audio = real``: its hypotheses
are those of ``exp/<ar>/decode_beam<N>`` (up to the float noise of other batch paddings). A random-weight model
decodes with :meth:`~elfs2t.baselines.ar.ArSpeechLM.generate_ids` at the same beam size (timing only; see
``DecodeBenchConfig.ar_tokens`` for its generation limit).

FLOPs (:func:`elfs2t.bench.flops.ar_search_flops`) count the LM forwards each batch really ran (a forward pre-hook
on the LM): the prompt, then one per search step over ``B`` rows (greedy) or ``B x N`` rows (beam search).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from elfs2t.bench import flops as F
from elfs2t.bench.common import System, collate
from elfs2t.bench.models import count_params, load_trained_model, random_ar

if TYPE_CHECKING:
    from elfs2t.bench.decode import DecodeBenchConfig

__all__ = ["ar_systems"]


def ar_systems(cfg: DecodeBenchConfig, feat_dim: int, dtype: torch.dtype, max_new: int,
               real_refs: bool) -> list[System]:
    """One AR system per beam size of ``cfg.ar_beams`` (``ar <label> greedy``, ``ar <label> beam<N>``), all on one
    model. A trained one decodes through stage 5's own hypothesis function with ``decode.beam_size = N`` (and its
    experiment's ``decode.max_new_tokens`` unless ``ar_tokens``): the hypotheses of ``decode_beam<N>``."""
    import copy

    from elfs2t.experiment import hypothesis_fn, model_kind
    from elfs2t.kinds.ar import ArKind

    ecfg = None
    if cfg.ar_exp:
        model, ecfg = load_trained_model(cfg.ar_exp)
        if not isinstance(model_kind(ecfg), ArKind):
            raise ValueError(f"--ar-exp {cfg.ar_exp}: model is {ecfg.model!r}, not ar")
        label = Path(cfg.ar_exp).name
    else:
        model = random_ar(cfg.size, feat_dim=feat_dim, stack=cfg.stack, max_text_tokens=max_new, seed=cfg.seed)
        label = f"random-{cfg.size}"
    model.to(cfg.device, dtype)
    calls = [0]  # LM forwards of the last run: the prompt, then one per step (the FLOP count's steps)
    model.lm.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
    params = {"params_m": (count_params(model.lm) + count_params(model.projector)) / 1e6}
    systems = []
    for beams in cfg.ar_beams:
        if ecfg is not None:
            stage5 = copy.deepcopy(ecfg)
            stage5.decode.beam_size, stage5.decode.audio = beams, "real"
            if cfg.ar_tokens:
                stage5.decode.max_new_tokens = cfg.ar_tokens
            hyps = hypothesis_fn(model, stage5, seed=cfg.seed)

            def run(utts, hyps=hyps):
                calls[0] = 0
                return hyps(collate(utts))
        else:
            def run(utts, beams=beams):
                calls[0] = 0
                limit = max_new
                if real_refs:  # a random LM never stops: decode as many tokens as the references need
                    limit = 1 + max(len(model.tokenize([u.text])[0]) for u in utts)
                seqs = model.generate_ids(collate(utts), max_new_tokens=limit, beam_size=beams)
                texts = [model.tokenizer.decode(s, skip_special_tokens=True).strip() for s in seqs]
                return [t.lower() for t in texts] if model.cfg.lowercase else texts

        def flops(utts, beams=beams):
            prompt = max(-(-u.feats.shape[0] // model.cfg.stack) for u in utts) + 1 + (1 if model.cfg.tasks else 0)
            return F.ar_search_flops(model.lm.config, len(utts), prompt, max(calls[0], 1), beams)

        decoding = "greedy" if beams == 1 else f"beam{beams}"
        systems.append(System(f"ar {label} {decoding}", "ar", run, False, ecfg is not None,
                              {"decoding": decoding, "beam": beams, **params}, flops))
    return systems
