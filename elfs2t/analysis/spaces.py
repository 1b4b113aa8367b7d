"""Word representations for the error analysis: text-encoder latents (in and out of context) and token embeddings.

Three spaces (names used in every report):

``latent_ctx``
    The text-encoder latent space of the model (:class:`elfs2t.text.latent.TextLatentSpace`, ``x = E(ids) /
    sigma_lat``): the sentence is encoded as the model sees a text (``[CLS]`` for BERT-like encoders, content,
    EOS, EOS padding up to ``L``) and the latents of the word's tokens are averaged. A sentence longer than
    ``L`` is encoded with a longer EOS tail instead of being cut (the encoder's attention is over the whole
    fixed-length row, so sentences that fit are encoded exactly as in training).
``latent_word``
    The same, with the word encoded alone (a one-word text): no context.
``token_emb``
    A token embedding of the model, averaged over the word's tokens. ELF-S2T: the columns of the token
    head's unembedding ``U`` (``d x V``, :meth:`elfs2t.models.denoiser.ElfDenoiser.token_logits`); AR baseline:
    the rows of the LM's input embedding. Context-free.

Words are the *normalised* words of the scoring normaliser, and sentences are those words joined by single
spaces; the tokens of each word are found from the tokenizer's character offsets (a fast tokenizer is
needed). A word that yields no token (possible for symbols a vocabulary lacks) gets a NaN vector and is
left out of every distance. For ``token_emb`` a word is tokenized as it appears inside a sentence
(``" " + word``: the ``Ġword`` / ``▁word`` form of byte-level BPE and SentencePiece vocabularies).
"""
from __future__ import annotations

import logging
import math
from typing import Optional

import torch
from tqdm import tqdm

from elfs2t.text.latent import TextLatentSpace

__all__ = ["SPACES", "word_token_spans", "LatentWords", "TokenEmbedding", "WordSpaces"]

log = logging.getLogger(__name__)

SPACES = ("latent_ctx", "latent_word", "token_emb")


def word_token_spans(tokenizer, words: list[str], prefix: str = "") -> tuple[list[int], list[list[int]]]:
    """Tokenize ``prefix + " ".join(words)`` once; returns the token ids and, per word, its token positions.

    A token belongs to the word whose characters it covers; a zero-width token (or one made of the space
    before a word, like SentencePiece's lone ``▁``) belongs to the next word.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"word_token_spans needs a fast tokenizer (character offsets); "
                        f"{getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)!r} is not one")
    text = prefix + " ".join(words)
    owner = [-1] * len(text)  # character -> word index (-1: a space or the prefix)
    pos = len(prefix)
    for w, word in enumerate(words):
        owner[pos: pos + len(word)] = [w] * len(word)
        pos += len(word) + 1
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: list[list[int]] = [[] for _ in words]
    for t, (a, b) in enumerate(enc["offset_mapping"]):
        w = next((owner[c] for c in range(a, min(b, len(text))) if owner[c] >= 0), -1)
        if w < 0:  # no word character inside: the token leads into the next word
            w = next((owner[c] for c in range(a, len(text)) if owner[c] >= 0), -1)
        if w >= 0:
            spans[w].append(t)
    return list(enc["input_ids"]), spans


def _mean_rows(table: torch.Tensor, rows: list[int], dim: int) -> torch.Tensor:
    if not rows:
        return torch.full((dim,), math.nan)
    return table[rows].mean(0)


class LatentWords:
    """Word vectors in a model's text latent space (``latent_ctx`` and ``latent_word``, see the module docstring)."""

    def __init__(self, space: TextLatentSpace, source: str = "") -> None:
        self.space = space
        self.source = source or space.cfg.name_or_path
        self.dim = space.dim
        self._cache: dict[tuple[str, ...], torch.Tensor] = {}  # sentences already encoded (several sets, one vocabulary)

    def sentences(self, sentences: list[list[str]], progress: bool = False) -> list[torch.Tensor]:
        """Per sentence (a list of words) a ``(n_words, d)`` float32 CPU tensor of in-context word vectors."""
        keys = [tuple(s) for s in sentences]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if todo:
            self._cache.update(zip(todo, self._encode([list(k) for k in todo], progress)))
        return [self._cache[k] for k in keys]

    def _encode(self, sentences: list[list[str]], progress: bool) -> list[torch.Tensor]:
        space = self.space
        head = [] if space.bos_id is None else [space.bos_id]
        enc = [word_token_spans(space.tokenizer, words) for words in sentences]
        # row length: L, or longer for a sentence that does not fit; a batch holds rows of one length only
        lengths = [max(space.max_len, len(head) + len(e[0]) + 1) for e in enc]
        order = sorted(range(len(sentences)), key=lambda i: lengths[i])
        out: list[Optional[torch.Tensor]] = [None] * len(sentences)
        bs = space.cfg.batch_size
        chunks: list[list[int]] = []
        for i in order:
            if chunks and len(chunks[-1]) < bs and lengths[chunks[-1][0]] == lengths[i]:
                chunks[-1].append(i)
            else:
                chunks.append([i])
        for chunk in tqdm(chunks, desc="encode sentences", unit="batch", disable=not progress):
            length = lengths[chunk[0]]
            ids = torch.full((len(chunk), length), space.eos_id, dtype=torch.long)
            for r, i in enumerate(chunk):
                row = head + enc[i][0] + [space.eos_id]
                ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
            latents = space.encode(ids).float().cpu()  # (b, length, d)
            for r, i in enumerate(chunk):
                spans = enc[i][1]
                out[i] = torch.stack([_mean_rows(latents[r], [len(head) + p for p in s], self.dim) for s in spans]) \
                    if spans else torch.zeros(0, self.dim)
        return out  # type: ignore[return-value]

    def words(self, words: list[str], progress: bool = False) -> torch.Tensor:
        """``(n, d)``: each word encoded alone (out of context)."""
        if not words:
            return torch.zeros(0, self.dim)
        return torch.cat(self.sentences([[w] for w in words], progress=progress))


class TokenEmbedding:
    """Word vectors from a token embedding table ``(V, d)``: the mean of the word's token rows.

    ``ids (K,)``: the token ids of the table's rows when it holds only some (a token head restricted to a
    shortlist, :meth:`elfs2t.models.denoiser.ElfDenoiser.restrict_head`); a word with a token outside them
    gets a NaN row, like a word without tokens. None: row ``i`` is token id ``i``.
    """

    def __init__(self, tokenizer, weight: torch.Tensor, source: str, ids: Optional[torch.Tensor] = None) -> None:
        if weight.dim() != 2:
            raise ValueError(f"token embedding {source}: expected a (V, d) table, got shape {tuple(weight.shape)}")
        if ids is not None and len(ids) != weight.shape[0]:
            raise ValueError(f"token embedding {source}: {len(ids)} row ids for a table of {weight.shape[0]} rows")
        self.tokenizer = tokenizer
        self.weight = weight.detach().float().cpu()
        self.source = source
        self.dim = self.weight.shape[1]
        self.row_of = None if ids is None else {int(t): r for r, t in enumerate(ids.tolist())}

    def words(self, words: list[str], progress: bool = False) -> torch.Tensor:
        """``(n, d)`` word vectors (NaN rows for words without tokens)."""
        out = torch.empty(len(words), self.dim)
        for i, word in enumerate(tqdm(words, desc="token embeddings", unit="word", disable=not progress)):
            ids, spans = word_token_spans(self.tokenizer, [word], prefix=" ")
            rows = [ids[p] for p in spans[0]]
            if self.row_of is not None:
                if not all(r in self.row_of for r in rows):
                    out[i] = float("nan")  # a token the restricted table does not hold
                    continue
                rows = [self.row_of[r] for r in rows]
            elif any(r >= self.weight.shape[0] for r in rows):
                raise ValueError(f"token embedding {self.source}: token ids {rows} of {word!r} exceed the table size "
                                 f"{self.weight.shape[0]} (tokenizer and model do not match)")
            out[i] = _mean_rows(self.weight, rows, self.dim)
        return out


class WordSpaces:
    """The spaces one model offers: the latent space (always) and a token embedding (when the model has one)."""

    def __init__(self, latent: LatentWords, token: Optional[TokenEmbedding] = None, model_type: str = "") -> None:
        self.latent = latent
        self.token = token
        self.model_type = model_type

    @property
    def names(self) -> list[str]:
        """Names of the available spaces, in :data:`SPACES` order."""
        return [s for s in SPACES if s != "token_emb" or self.token is not None]

    def describe(self) -> dict[str, str]:
        """Space name -> where its vectors come from (for the report)."""
        out = {"latent_ctx": f"{self.latent.source} (in context)", "latent_word": f"{self.latent.source} (word alone)"}
        if self.token is not None:
            out["token_emb"] = self.token.source
        return out
