"""ELF-S2T in the model registry: build, decode (n-best = the rescoring candidates), word times from the CTC.

Decoding follows ``decode.strategy`` (:mod:`elfs2t.s2t.decoding`). N-best lists are the candidates of
``strategy: rescore``, scored by minus the rescoring score (CTC + text-slot negative log-likelihoods,
:mod:`elfs2t.s2t.draft_rescore`): higher is better. Word times come from the forced CTC alignment of the
hypothesis to the audio slots' readout (:func:`token_spans`): a word starts at the first audio slot of its first
token and ends after the last slot of its last token; one audio slot is ``elf.stack`` encoder frames.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn

from elfs2t.config import ConfigError
from elfs2t.text.ngram import NGRAM_FILE
from elfs2t.kinds.base import DecodeFn, Hyp, ModelKind, ModelSpaces, Word

if TYPE_CHECKING:
    from elfs2t.experiment import ExperimentConfig

__all__ = ["ElfS2TKind", "group_words", "token_spans"]


class _Candidates:
    """A rescore decoding that keeps every candidate of the last batch (``found``) and returns the best, as the
    strategy does: handed to :meth:`ElfS2T.generate`, it sees exactly the condition and noise draws of stage 5."""

    def __init__(self, decoding) -> None:
        self.decoding, self.found = decoding, None

    def __call__(self, model, cond, cond_mask, generator):
        from elfs2t.s2t.draft_rescore import best_per_row

        self.found = ids, score, cands = self.decoding.candidates(model, cond, cond_mask, generator)
        return ids[best_per_row(score, cands, cond.shape[0])]


@torch.no_grad()
def token_spans(model: nn.Module, batch: dict, tokens: list[list[int]]) -> list[Optional[list[tuple[int, int, float]]]]:
    """Where the token ids ``tokens[b]`` (a row's content tokens) sit in its audio: the forced CTC alignment
    (:func:`~elfs2t.s2t.ctc_align.ctc_align_confident`) of the audio slots' readout (the draft's,
    ``ElfS2T.draft_readout``; its text-slot noise from a generator of its own, so decoding's draws are untouched).
    Per row, per token, ``(first audio slot, last audio slot, highest posterior over them)``; None for a row with no
    tokens, a token outside the CTC vocabulary, or more tokens than its slots hold."""
    from elfs2t.s2t.ctc_align import ctc_align_confident

    cond, cond_mask = model.condition(batch)
    readout = model.draft_readout(cond, cond_mask, torch.Generator().manual_seed(0)).ctc
    local_rows: list[list[int]] = []
    for row in tokens:
        local, found = readout.vocab.index(torch.tensor(row, dtype=torch.long))
        local_rows.append(local.tolist() if row and bool(found.all()) else [])
    spans = ctc_align_confident(readout.log_probs, readout.in_lens, local_rows, readout.vocab.blank)
    return [sp or None for sp in spans]


def group_words(text: str, offsets: list[tuple[int, int]], spans: list[tuple[int, int, float]]) -> list[tuple[str, int, int, float]]:
    """The whitespace-separated words of ``text`` with the spans of their tokens: ``offsets`` are the tokens'
    character spans in ``text`` and ``spans`` their ``(first, last, conf)`` frames. Returns ``(word, first frame,
    last frame, mean conf)`` per word that has tokens."""
    words, pos = [], 0
    for word in text.split():
        start = text.index(word, pos)
        words.append((word, start, start + len(word)))
        pos = start + len(word)
    out = []
    k = 0
    for word, a, b in words:
        mine = []
        while k < len(offsets) and offsets[k][0] < b:
            if offsets[k][1] > a:
                mine.append(spans[k])
            k += 1
        if mine:
            out.append((word, min(s[0] for s in mine), max(s[1] for s in mine), sum(s[2] for s in mine) / len(mine)))
    return out


class ElfS2TKind(ModelKind):
    """``model: elf_s2t`` (:class:`elfs2t.s2t.elf_s2t.ElfS2T`, settings under ``elf``)."""

    name = "elf_s2t"
    section_key = "elf"
    title = "ELF-S2T"
    display_name = "ELF-S2T"
    backbone_key = "init.denoiser"
    table_settings = ("steps", "guidance")

    def build(self, cfg: "ExperimentConfig") -> nn.Module:
        from elfs2t.s2t.elf_s2t import ElfS2T

        model = ElfS2T(cfg.elf)
        if cfg.init.denoiser:
            from elfs2t.models.init import init_denoiser

            init_denoiser(model.denoiser, cfg.init.denoiser, strict=cfg.init.strict)
        return model

    def build_for_weights(self, cfg: "ExperimentConfig") -> nn.Module:
        from elfs2t.s2t.elf_s2t import ElfS2T

        return ElfS2T(cfg.elf)

    def prepare(self, model: nn.Module, cfg: "ExperimentConfig", train_texts: list[str]) -> None:
        if cfg.elf.token_shortlist:  # fixed before training; a resume loads the saved one
            model.set_token_shortlist(train_texts)

    def portable(self, model: nn.Module, cfg: "ExperimentConfig", out_dir: Path) -> dict[str, str]:
        """The n-gram model of the training texts (``decode.draft.lm_weight``), if the experiment has one."""
        if model.ngram is not None:
            model.ngram.save(out_dir / NGRAM_FILE)
        return {}

    def decode_fn(self, model: nn.Module, cfg: "ExperimentConfig", generator: torch.Generator,
                  nbest: int = 1) -> DecodeFn:
        from elfs2t.s2t.decoding import RescoreDecoding, build_decoding

        decoding = build_decoding(cfg.decode, cfg.elf)
        limit = model.max_text_tokens

        def full(text: str) -> bool:
            return model.count_tokens(text) >= limit

        if nbest <= 1:  # exactly stage 5's call
            def one(batch: dict) -> list[list[Hyp]]:
                return [[Hyp(t, full=full(t))] for t in model.generate(batch, decoding, generator=generator)]
            return one
        if not isinstance(decoding, RescoreDecoding):
            raise ConfigError(f"nbest={nbest}: ELF-S2T's n-best lists are its rescoring candidates; decode with "
                              f"decode.strategy=rescore (this setting: decode.strategy={cfg.decode.strategy})")
        collect = _Candidates(decoding)

        def ranked(batch: dict) -> list[list[Hyp]]:
            model.generate(batch, collect, generator=generator)  # the same draws as stage 5's call
            ids, score, cands = collect.found
            texts = model.text_space.decode(ids)
            out: list[list[Hyp]] = [[] for _ in range(len(batch["cut_ids"]))]
            for i in sorted(range(len(texts)), key=lambda i: (cands[i].row, float(score[i]), i)):  # first of equals
                hyps = out[cands[i].row]
                if len(hyps) < nbest and all(h.text != texts[i] for h in hyps):  # candidates can decode alike
                    hyps.append(Hyp(texts[i], -float(score[i]), full(texts[i])))
            return out
        return ranked

    def decode_tag(self, cfg: "ExperimentConfig") -> str:
        from elfs2t.s2t.decoding import build_decoding

        return build_decoding(cfg.decode, cfg.elf).tag()

    def decode_record(self, cfg: "ExperimentConfig") -> dict[str, Any]:
        """The strategy, its reader and the settings of its section that the results table can show."""
        from elfs2t.s2t.decoding import build_decoding

        info: dict[str, Any] = {"strategy": cfg.decode.strategy,
                                "reader": build_decoding(cfg.decode, cfg.elf).reader}
        section = getattr(cfg.decode, cfg.decode.strategy, None)
        for key in ("steps", "guidance", "method", "self_cond_scale", "draws"):
            if hasattr(section, key):
                info[key] = getattr(section, key)
        return info

    def valid_decodings(self, cfg: "ExperimentConfig") -> dict[str, "ExperimentConfig"]:
        """``decode.valid_strategies`` (each with its section's settings), but ``decode.strategy`` itself."""
        import copy

        out = {}
        for strategy in cfg.decode.valid_strategies:
            if strategy != cfg.decode.strategy:
                other = copy.deepcopy(cfg)
                other.decode.strategy = strategy
                out[strategy] = other
        return out

    def has_ctc_warmup(self, cfg: "ExperimentConfig") -> bool:
        """``elf.ctc_warmup > 0``: its steps leave the text path without gradients."""
        return cfg.elf.ctc_warmup > 0

    def guidance_section(self, cfg: "ExperimentConfig") -> Any:
        """The strategy's section when it takes a CFG scale (``flow``, ``refine``); None for the draft, the
        readout and rescoring."""
        section = getattr(cfg.decode, cfg.decode.strategy, None)
        return section if hasattr(section, "guidance") else None

    def word_spaces(self, model: nn.Module, cfg: "ExperimentConfig") -> ModelSpaces:
        """Its own frozen text encoder's latent space; the token embedding is the token head's unembedding ``U``
        (a head restricted to a shortlist holds only those ids' columns)."""
        head_ids = model.denoiser.head_ids
        return ModelSpaces(latent=model.text_space,
                           latent_note=f"ELF-S2T uses its own latent space {cfg.elf.text.name_or_path}",
                           tokenizer=model.text_space.tokenizer, token_weight=model.denoiser.unembed_kernel.T,
                           token_source="ELF token head unembedding U (d x V)",
                           token_ids=head_ids if head_ids.numel() else None)

    def word_times(self, model: nn.Module, cfg: "ExperimentConfig", batch: dict, texts: list[str],
                   frame_shift: float) -> list[Optional[list[Word]]]:
        if cfg.elf.ctc_weight <= 0:
            raise ConfigError("elf.ctc_weight=0: word times (CTM) come from the auxiliary CTC's alignment; this "
                              "ELF-S2T model was trained without it")
        tok = model.text_space.tokenizer
        cased = [t.lower() for t in texts] if cfg.elf.lowercase else list(texts)
        enc = tok(cased, add_special_tokens=False, return_offsets_mapping=True)
        limit = model.max_text_tokens
        spans = token_spans(model, batch, [ids[:limit] for ids in enc["input_ids"]])
        slot = cfg.elf.stack * frame_shift
        out: list[Optional[list[Word]]] = []
        for text, low, offsets, sp in zip(texts, cased, enc["offset_mapping"], spans):
            if sp is None:
                out.append(None)
                continue
            shown = text if len(text) == len(low) else low
            pos, row = 0, []
            for word, first, last, conf in group_words(low, list(offsets)[:len(sp)], sp):
                start = low.index(word, pos)
                pos = start + len(word)
                row.append(Word(shown[start:pos], round(first * slot, 3), round((last + 1) * slot, 3), conf))
            out.append(row)
        return out

    def loads_from(self, cfg: "ExperimentConfig") -> dict[str, Optional[str]]:
        return {"elf.text.name_or_path": cfg.elf.text.name_or_path}

    def frozen_models(self, cfg: "ExperimentConfig") -> dict[str, Optional[str]]:
        return self.loads_from(cfg)

    def frozen_fingerprints(self, model: nn.Module, cfg: "ExperimentConfig") -> dict[str, str]:
        from elfs2t.fingerprint import weights_fingerprint

        return {"elf.text.name_or_path": weights_fingerprint(model.text_space.encoder)}
