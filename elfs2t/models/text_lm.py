"""Stage 3 for the AR baseline: pre-train a small causal LM on the corpus text (docs/design.md §6).

The counterpart of the text ELF backbone (:mod:`elfs2t.models.elf_text`): the same text file, the
same generic :class:`~elfs2t.train.trainer.Trainer`, batch size, optimiser family and wall-time
budget, and a model of the same depth and width (a Llama-style decoder: RMSNorm, RoPE, SwiGLU, tied
embeddings, :func:`~elfs2t.models.ar.small_llama_config`). Each sentence is one training row::

    inputs:  BOS t_1 .. t_n          targets: t_1 .. t_n EOS      (cross-entropy, mean over targets)

which is how :class:`~elfs2t.models.ar.ArSpeechLM` continues after its audio prefix in stage 4.

Tokenizer (``model.tokenizer``): null trains a byte-level BPE on the corpus
(:func:`~elfs2t.models.ar.train_bpe_tokenizer`) into ``exp_dir/tokenizer`` (kept for resuming); or
give any Hugging Face tokenizer name / directory. The BPE is the default because it round-trips text
exactly (contractions such as "didn't" come back as written, where an uncased WordPiece
tokenizer such as MiniLM's decodes "didn ' t"), and its vocabulary fits the corpus (hundreds of
words, so ~1-2k ids instead of 30k: smaller embeddings and a cheaper softmax for a 4-layer LM).

Output: checkpoints and ``train.log`` like every trainer run, and ``exp_dir/hf/``, a Hugging Face
causal-LM directory (EMA weights + tokenizer) that the AR config names as ``ar.lm``, plus
``exp_dir/summary.json`` (steps, loss, parameters).
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from elfs2t.config import config_check, unstructure
from elfs2t.data.text_corpus import TextLineDataset, sample_reporter, text_loader
from elfs2t.models.ar import special_ids, small_llama_config, train_bpe_tokenizer
from elfs2t.train.checkpoint import list_checkpoints
from elfs2t.train.config import TextPretrainConfig
from elfs2t.train.exp_dir import check_exp_dir, record_exp_dir
from elfs2t.train.trainer import Trainer

log = logging.getLogger(__name__)

__all__ = ["TextLmConfig", "TextLm", "PretrainLmConfig", "pretrain_lm", "lm_sample_hook"]

@dataclass(kw_only=True)
class TextLmConfig:
    """A small causal LM and its tokenizer."""

    tokenizer: Optional[str] = None
    """Hugging Face tokenizer name or dir; null: train a byte-level BPE on the corpus (exp_dir/tokenizer)."""
    bpe_vocab_size: int = 2000
    """Largest BPE vocabulary (a small corpus stops earlier, when no merge is left)."""
    layers: int = 4
    """Decoder layers."""
    hidden: int = 256
    """Hidden width H."""
    heads: int = 4
    """Attention heads (H must be divisible by it)."""
    intermediate: Optional[int] = None
    """SwiGLU inner width; default int(8H/3) rounded up to a multiple of 8."""
    max_positions: int = 4096
    """Maximum positions (stage 4 adds the audio prefix in front of the text)."""
    max_tokens: int = 128
    """Tokens kept per sentence (longer ones are cut, with a warning)."""
    lowercase: bool = False
    """Lower-case the text (before training the BPE, too)."""

    def validate(self) -> None:
        for key in ("bpe_vocab_size", "layers", "hidden", "heads", "max_positions", "max_tokens"):
            config_check(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")
        config_check(self.hidden % self.heads == 0, "hidden", self.hidden, f"must be divisible by heads={self.heads}")
        config_check(self.intermediate is None or self.intermediate >= 1, "intermediate", self.intermediate,
                     "must be >= 1")


class TextLm(nn.Module):
    """``forward(batch) -> (loss, stats)`` over ``batch = {"text": list[str]}``; :meth:`sample` texts."""

    def __init__(self, cfg: TextLmConfig, tokenizer) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM

        self.cfg, self.tokenizer = cfg, tokenizer
        self.lm = AutoModelForCausalLM.from_config(small_llama_config(
            tokenizer, layers=cfg.layers, hidden=cfg.hidden, heads=cfg.heads, intermediate=cfg.intermediate,
            max_positions=cfg.max_positions))
        self.bos, self.eos, self.pad = special_ids(tokenizer)

    @property
    def device(self) -> torch.device:
        return self.lm.get_input_embeddings().weight.device

    def num_parameters(self) -> int:
        """Distinct parameters (the tied output projection counted once)."""
        return sum(p.numel() for p in self.parameters())

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N + 1)`` inputs ``BOS t_1 .. t_n`` (pad after) and targets ``t_1 .. t_n EOS`` (-100 after)."""
        texts = [t.lower() for t in texts] if self.cfg.lowercase else list(texts)
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        too_long = sum(len(i) > self.cfg.max_tokens for i in ids)
        if too_long:
            log.warning("%d sentence(s) longer than max_tokens=%d were cut", too_long, self.cfg.max_tokens)
        ids = [i[: self.cfg.max_tokens] for i in ids]
        n = max(len(i) for i in ids) + 1
        inputs = torch.full((len(ids), n), self.pad, dtype=torch.long)
        targets = torch.full((len(ids), n), -100, dtype=torch.long)
        for row, tok in enumerate(ids):
            inputs[row, : len(tok) + 1] = torch.tensor([self.bos, *tok], dtype=torch.long)
            targets[row, : len(tok) + 1] = torch.tensor([*tok, self.eos], dtype=torch.long)
        return inputs, targets

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        inputs, targets = (x.to(self.device) for x in self.encode(batch["text"]))
        mask = targets != -100  # real positions: BOS and the tokens
        logits = self.lm(input_ids=inputs, attention_mask=mask.long(), use_cache=False).logits.float()  # (B, N+1, V)
        num_tokens = int(mask.sum())
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                               reduction="sum") / max(num_tokens, 1)
        acc = float((logits.argmax(-1) == targets)[mask].float().mean()) if num_tokens else 0.0
        return loss, {"loss": float(loss.detach()), "acc": acc, "num_tokens": float(num_tokens),
                      "num_samples": float(inputs.shape[0])}

    @torch.no_grad()
    def sample(self, n: int, max_new_tokens: int = 48) -> list[str]:
        """``n`` sentences sampled from BOS (multinomial, temperature 1; seed the torch RNG to repeat)."""
        was_training = self.training
        self.eval()
        try:
            start = torch.full((n, 1), self.bos, dtype=torch.long, device=self.device)
            out = self.lm.generate(input_ids=start, attention_mask=torch.ones_like(start), do_sample=True, top_k=0,
                                   top_p=1.0, temperature=1.0, max_new_tokens=max_new_tokens, eos_token_id=self.eos,
                                   pad_token_id=self.pad, bos_token_id=self.bos)
        finally:
            self.train(was_training)
        return [self.tokenizer.decode(row[1:], skip_special_tokens=True).strip() for row in out]


# ---------------------------------------------------------------------------------------------
# Stage 3: pre-training
# ---------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class PretrainLmConfig(TextPretrainConfig):
    """Stage 3 (AR baseline): causal-LM pre-training on a text corpus (optim, train, batch_size,
    num_samples: :class:`~elfs2t.train.config.TextPretrainConfig`)."""

    model: TextLmConfig = field(default_factory=TextLmConfig)
    """The LM and its tokenizer."""


def lm_sample_hook(corpus: TextLineDataset, num_samples: int):
    """``on_validate(model, step)``: log ``num_samples`` sampled sentences and the share that are corpus lines."""
    report = sample_reporter(corpus, log)

    def hook(model: nn.Module, step: int) -> dict:
        if num_samples == 0:
            return {}
        lm = model.module if hasattr(model, "module") else model
        return report(step, lm.sample(num_samples))

    return hook


def _tokenizer(cfg: TextLmConfig, exp_dir: Path, corpus: TextLineDataset, resuming: bool):
    """The configured tokenizer, or the BPE of ``exp_dir/tokenizer`` (trained now if absent)."""
    from transformers import AutoTokenizer

    if cfg.tokenizer is not None:
        return AutoTokenizer.from_pretrained(cfg.tokenizer)
    tok_dir = exp_dir / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        if resuming:
            raise FileNotFoundError(f"{exp_dir} holds checkpoints but no tokenizer/: the BPE their embeddings "
                                    "index is gone; use a new exp dir")
        texts = [t.lower() for t in corpus.texts()] if cfg.lowercase else corpus.texts()
        tmp = exp_dir / "tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        train_bpe_tokenizer(texts, tmp, vocab_size=cfg.bpe_vocab_size)
        tmp.replace(tok_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    log.info("tokenizer %s: %d ids", tok_dir, len(tokenizer))
    return tokenizer


def _export_hf(lm: TextLm, out_dir: Path) -> Path:
    """Save the LM (its current weights) and tokenizer as a Hugging Face directory, replacing ``out_dir``."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    lm.lm.save_pretrained(tmp)
    lm.tokenizer.save_pretrained(tmp)
    old = out_dir.with_name(out_dir.name + ".old")
    if out_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        out_dir.replace(old)
    tmp.replace(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir


def pretrain_lm(cfg: PretrainLmConfig, exp_dir: str | Path, text_file: str | Path, *, resume: bool = True,
                overwrite: bool = False) -> dict[str, Any]:
    """Train a :class:`TextLm` on ``text_file`` (one sentence per line) into ``exp_dir``; write
    ``exp_dir/hf`` (EMA weights when the optimiser keeps an EMA) and ``exp_dir/summary.json``.

    ``resume``: continue from the newest checkpoint; without it an ``exp_dir`` holding checkpoints is an
    error. ``overwrite``: reuse ``exp_dir`` even if its stored config differs. Returns the trainer's summary.
    """
    exp_dir = Path(exp_dir)
    has_ckpt = bool(list_checkpoints(exp_dir))
    if not resume and has_ckpt:
        raise FileExistsError(f"{exp_dir} already holds checkpoints: resume, or use another exp dir")
    check_exp_dir(exp_dir, cfg, overwrite=overwrite)
    corpus = TextLineDataset(text_file)
    tokenizer = _tokenizer(cfg.model, exp_dir, corpus, resuming=has_ckpt)
    torch.manual_seed(cfg.train.seed)
    model = TextLm(cfg.model, tokenizer)
    log.info("text LM: %.2fM parameters (%d layers, H=%d), vocabulary %d, %d sentences",
             model.num_parameters() / 1e6, cfg.model.layers, cfg.model.hidden, len(tokenizer), len(corpus))
    record_exp_dir(exp_dir, cfg)  # only now: a start that failed (a missing text file) leaves the folder as it was
    trainer = Trainer(model, cfg.optim, cfg.train, exp_dir, text_loader(corpus, cfg.batch_size),
                      on_validate=lm_sample_hook(corpus, cfg.num_samples), batch_size=cfg.batch_size,
                      config=unstructure(cfg))
    summary = trainer.fit(resume=resume)
    if trainer.ema is not None:
        with trainer.ema.swapped(model):
            _export_hf(model, exp_dir / "hf")
    else:
        _export_hf(model, exp_dir / "hf")
    info = {"step": summary["step"], "stopped_by": summary["stopped_by"], "train_loss": summary["train_loss"],
            "params": model.num_parameters(), "vocab_size": len(tokenizer), "hf_dir": str(exp_dir / "hf"),
            "weights": "ema" if trainer.ema is not None else "raw",
            "sample_in_corpus": summary["valid"].get("sample_in_corpus")}
    tmp = exp_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(exp_dir / "summary.json")
    samples = summary.get("valid", {}).get("samples", "")
    (exp_dir / "samples.txt").write_text(samples.replace(" | ", "\n") + "\n" if samples else "")
    return summary
