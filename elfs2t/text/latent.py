"""The continuous text space (docs/design.md §2.1): tokenizer + frozen text encoder -> scaled latents.

``x = E(ids) / sigma_lat``: the last hidden states of a frozen Hugging Face encoder, divided by one
global scale (0.2 in ELF). Every text becomes exactly ``L = max_len`` ids::

    space = TextLatentSpace(TextLatentConfig(name_or_path="t5-small", max_len=64))
    ids = space.tokenize(["a cat sat"])   # (B, L) long
    x = space.encode(ids)                 # (B, L, d) float32, no grad
    space.decode(ids)                     # ["a cat sat"]

Sequence convention (conditional generation, ELF): content tokens, then EOS, then EOS again up to
``L`` (the padding *is* EOS and the model learns the EOS tail). Texts longer than the room are cut,
and the EOS is always kept. The encoder sees the whole fixed-length sequence with full attention,
so the tail latents are well defined.

* T5-like tokenizers (no CLS token; ``t5-small``: V = 32100, pad 0, eos 1): ``[w_1 .. w_n, </s>, </s> ...]``,
  ``n <= L - 1``. Model types ``t5``/``mt5``/``umt5`` load ``T5EncoderModel`` (the encoder only).
* BERT-like tokenizers (with ``[CLS]``/``[SEP]``; e.g. all-MiniLM-L6-v2): ``[CLS]`` is kept at
  position 0 because the encoder was trained with it, and ``[SEP]`` plays the role of EOS:
  ``[CLS, w_1 .. w_n, SEP, SEP ...]``, ``n <= L - 2``. Loaded with ``AutoModel``.

``decode`` cuts each row at the first EOS after the content start, drops special tokens and cleans
tokenization spaces. The *normalised* text is ``decode(tokenize(text))`` (for uncased BERT
vocabularies it is lower-cased with WordPiece spacing); it is a fixed point:
``decode(tokenize(normalised)) == normalised`` whenever it fits in ``L``.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

import torch

from elfs2t.config import config_check
from elfs2t.tensor_lru import DEFAULT_MAX_BYTES, TensorLRU

__all__ = ["TextLatentConfig", "TextLatentSpace", "LatentCache"]

log = logging.getLogger(__name__)

_T5_TYPES = ("t5", "mt5", "umt5")


@dataclasses.dataclass(kw_only=True)
class TextLatentConfig:
    """Frozen text encoder that defines the continuous text space."""

    name_or_path: str = "t5-small"
    """Hugging Face hub id or local directory (tokenizer + encoder), e.g. tools/models/all-MiniLM-L6-v2."""
    max_len: int = 64
    """L: fixed number of token positions per text (EOS included)."""
    sigma_lat: float = 0.2
    """Global scale: latents are encoder states divided by it."""
    device: str = "cpu"
    """Device the frozen encoder runs on."""
    batch_size: int = 64
    """Texts per encoder call in encode_texts."""

    def validate(self) -> None:
        """Check values; raises ConfigError naming the key."""
        config_check(bool(self.name_or_path), "name_or_path", self.name_or_path, "must be a hub id or a directory")
        config_check(self.max_len >= 3, "max_len", self.max_len, "must be >= 3")
        config_check(self.sigma_lat > 0, "sigma_lat", self.sigma_lat, "must be positive")
        config_check(self.batch_size > 0, "batch_size", self.batch_size, "must be positive")


class TextLatentSpace:
    """Tokenizer + frozen encoder (eval mode, no grad); see the module docstring for conventions."""

    def __init__(self, cfg: TextLatentConfig) -> None:
        from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel

        cfg.validate()
        self.cfg = cfg
        src = cfg.name_or_path
        if Path(src).exists() and not Path(src).is_dir():
            raise ValueError(f"TextLatentSpace: {src} is a file; give a model directory or a hub id")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(src)
            model_type = AutoConfig.from_pretrained(src).model_type
            model_cls = T5EncoderModel if model_type in _T5_TYPES else AutoModel
            self.encoder = model_cls.from_pretrained(src)
        except OSError as exc:
            raise OSError(f"TextLatentSpace: cannot load text encoder {src!r}: {exc}") from exc
        self.model_type = model_type
        self.encoder.to(cfg.device).eval().requires_grad_(False)
        tok = self.tokenizer
        self.bos_id: int | None = tok.cls_token_id if model_type not in _T5_TYPES else None
        eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if eos is None:
            raise ValueError(f"TextLatentSpace: tokenizer of {src!r} has neither an EOS nor a SEP token")
        self._eos_id = int(eos)
        self._pad_id = int(tok.pad_token_id) if tok.pad_token_id is not None else self._eos_id
        log.info("text latent space %s (%s): d=%d V=%d L=%d eos=%d", src, model_type, self.dim,
                 self.vocab_size, cfg.max_len, self._eos_id)

    # ------------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """d: width of the latents."""
        c = self.encoder.config
        return int(getattr(c, "d_model", None) or c.hidden_size)

    @property
    def vocab_size(self) -> int:
        """V: usable token ids (``len(tokenizer)``; t5-small: 32100)."""
        return len(self.tokenizer)

    @property
    def eos_id(self) -> int:
        """Id that ends a text and pads the tail (T5 ``</s>``, BERT ``[SEP]``)."""
        return self._eos_id

    @property
    def pad_id(self) -> int:
        """The tokenizer's own padding id (not used for padding here: the tail is EOS)."""
        return self._pad_id

    @property
    def special_ids(self) -> set[int]:
        """The ids that are not text: EOS, padding and (where the tokenizer has one) BOS."""
        return {self._eos_id, self._pad_id} | ({self.bos_id} if self.bos_id is not None else set())

    @property
    def max_len(self) -> int:
        """L."""
        return self.cfg.max_len

    @property
    def device(self) -> torch.device:
        """Device of the frozen encoder."""
        return next(self.encoder.parameters()).device

    # ------------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Texts -> ``(B, L)`` long ids, cut to fit, EOS-terminated and EOS-padded."""
        if isinstance(texts, str):
            raise TypeError("TextLatentSpace.tokenize expects a list of strings, got one string")
        return self.ids_from_tokens(self.tokenizer(list(texts), add_special_tokens=False)["input_ids"])

    def ids_from_tokens(self, rows: list[list[int]]) -> torch.Tensor:
        """Content token ids per row -> ``(B, L)`` long ids as :meth:`tokenize` lays them out (BOS if the
        encoder has one, the content cut to fit, EOS-terminated and EOS-padded)."""
        length = self.cfg.max_len
        head = [] if self.bos_id is None else [self.bos_id]
        room = length - len(head) - 1
        out = torch.full((len(rows), length), self._eos_id, dtype=torch.long)
        for i, content in enumerate(rows):
            ids = head + list(content[:room]) + [self._eos_id]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def num_tokens(self, texts: list[str]) -> list[int]:
        """Content tokens per text before cutting (to report texts longer than ``L``)."""
        return [len(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    @torch.no_grad()
    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids (B, L)`` -> latents ``(B, L, d)`` = last hidden states / sigma_lat (float32, on the encoder's device).

        Runs under ``torch.no_grad`` (not inference mode), so the result can enter autograd graphs.
        """
        if ids.dim() != 2:
            raise ValueError(f"TextLatentSpace.encode: ids must be (B, L), got {tuple(ids.shape)}")
        ids = ids.to(self.device)
        mask = torch.ones_like(ids)
        states = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, d)
        return states.float() / self.cfg.sigma_lat

    def encode_texts(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ``(ids (B, L), latents (B, L, d))``, encoded in chunks of ``batch_size``."""
        ids = self.tokenize(texts)
        bs = self.cfg.batch_size
        chunks = [self.encode(ids[i: i + bs]) for i in range(0, len(ids), bs)]
        latents = torch.cat(chunks) if chunks else torch.zeros(0, self.cfg.max_len, self.dim, device=self.device)
        return ids, latents

    def decode(self, ids: torch.Tensor) -> list[str]:
        """``ids (B, L)`` -> texts: cut at the first EOS after the content start, specials dropped."""
        if ids.dim() != 2:
            raise ValueError(f"TextLatentSpace.decode: ids must be (B, L), got {tuple(ids.shape)}")
        start = 0 if self.bos_id is None else 1
        texts = []
        for row in ids.tolist():
            body = row[start:]
            if self._eos_id in body:
                body = body[: body.index(self._eos_id)]
            text = self.tokenizer.decode(body, skip_special_tokens=True, clean_up_tokenization_spaces=True)
            texts.append(" ".join(text.split()))
        return texts

    def normalize(self, texts: list[str]) -> list[str]:
        """The text as this space can represent it: ``decode(tokenize(texts))``."""
        return self.decode(self.tokenize(texts))


class LatentCache:
    """Opt-in LRU cache of frozen text latents, in front of a :class:`TextLatentSpace` (drop-in).

    The text encoder is frozen and sees the whole fixed-length row, so a row of token ids always has the
    same latents: ``encode(ids)`` looks every row up by its ids (the key of a normalised text; keying by
    ids means the cache cannot disagree with the tokenizer) and runs the encoder only on the missing rows,
    in one batch. Entries are kept on the CPU (in ``dtype``; float32 is exact) and evicted least recently
    used beyond ``max_bytes`` (and ``max_items``, when given). Every other attribute is the wrapped space's, so
    an ``ElfS2T`` built with ``text_space=LatentCache(TextLatentSpace(cfg))`` trains exactly as before, without
    re-encoding the targets it has seen (``hits`` / ``misses`` count rows)::

        space = LatentCache(TextLatentSpace(cfg.text), max_bytes=2 << 30)
        x = space.encode(space.tokenize(texts))    # (B, L, d), as TextLatentSpace.encode

    Memory: ``L * d * 4`` bytes per entry in float32 (L 24, d 384: 37 KB; L 64, d 512: 131 KB; L 128, d 512:
    262 KB), bounded per process by ``max_bytes`` (default 1 GiB: about 28,000 mini_synth targets, 4,000 at
    L 128 x d 512, where a corpus of LibriSpeech's size gets few hits anyway), in one preallocated slab
    (:class:`~elfs2t.tensor_lru.TensorLRU`) whose pages are touched only as entries arrive.
    """

    def __init__(self, space: TextLatentSpace, max_bytes: int = DEFAULT_MAX_BYTES, dtype: torch.dtype = torch.float32,
                 max_items: Optional[int] = None) -> None:
        self.space = space
        self.dtype = dtype
        try:
            self._store = TensorLRU(max_bytes=max_bytes, max_items=max_items)
        except ValueError as exc:
            raise ValueError(f"LatentCache: {str(exc).split(': ', 1)[1]}") from exc
        self.hits = 0
        self.misses = 0

    @property
    def max_bytes(self) -> int:
        """The budget in bytes."""
        return self._store.max_bytes

    @property
    def nbytes(self) -> int:
        """Bytes held now (latents and keys)."""
        return self._store.nbytes

    def __getattr__(self, name: str):
        # Only called for attributes not found on the cache itself: delegate to the wrapped space.
        if name == "space":
            raise AttributeError(name)
        return getattr(self.space, name)

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        """Drop every entry (and the counters)."""
        self._store.clear()
        self.hits = self.misses = 0

    @torch.no_grad()
    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids (B, L)`` -> latents ``(B, L, d)`` float32 on the encoder's device, from the cache where possible."""
        if ids.dim() != 2:
            raise ValueError(f"LatentCache.encode: ids must be (B, L), got {tuple(ids.shape)}")
        rows = ids.detach().to("cpu", torch.long)
        keys = [r.numpy().tobytes() for r in rows]
        found = [self._store.get(k) for k in keys]  # views of the cache's rows, valid until the next put
        missing = [i for i, x in enumerate(found) if x is None]
        new = self.space.encode(rows[missing]).to("cpu", self.dtype) if missing else None
        for j, i in enumerate(missing):
            found[i] = new[j]
        out = torch.stack(found)  # a copy, made before the puts below reuse rows
        for j, i in enumerate(missing):
            self._store.put(keys[i], new[j])
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return out.to(self.space.device, torch.float32)

    def encode_texts(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ``(ids (B, L), latents (B, L, d))`` through the cache."""
        ids = self.space.tokenize(texts)
        return ids, self.encode(ids)
