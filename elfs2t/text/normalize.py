"""Text normalisation applied to references and hypotheses before WER/CER scoring (docs/design.md §7).

Normalisers, chosen by name (``score.normalizer`` / ``--normalizer``):

``default``
    The elfs2t normaliser, language-neutral and documented here exactly:

    1. Unicode NFKC; typographic apostrophes (U+2019, U+2018, U+02BC, U+0060, U+00B4) become ``'``;
    2. lower-case (``str.lower``);
    3. an apostrophe *between two letters or digits* is kept (``don't``, ``o'clock``, ``l'homme``);
       every other apostrophe, and every Unicode punctuation (P*) or symbol (S*) character, becomes a
       space (so ``well-known`` -> ``well known``, ``"yes!"`` -> ``yes``, ``3.5`` -> ``3 5``);
    4. whitespace runs collapse to one space, leading/trailing whitespace is stripped.

    Letters with diacritics are kept (German, French ... are scored on their own spelling).
``strip_accents``
    ``default``, then every combining mark removed after Unicode NFD (``ü`` -> ``u``, ``é`` -> ``e``; ``ß``, ``ø``
    and other letters stay), and NFC again. For hypotheses from an uncased English WordPiece space (MiniLM, BERT)
    that strips accents itself: German ``müde`` can only come back as ``mude``. Use it for every system on
    such a set, so all are scored alike.
``whisper_en``
    Whisper's English normaliser (``transformers``' ``EnglishTextNormalizer``: contractions expanded,
    numbers written as digits, fillers removed, British -> American spellings). The spelling mapping
    (the ``english.json`` of the Whisper normalisers, ~1.7k entries) is read from an explicit path, else
    from an installed package that ships it (``whisper_normalizer`` or ``whisper``); when none is found
    a warning says so and spellings are left as they are (the rest of the normaliser still applies).
``whisper_basic``
    Whisper's language-neutral ``BasicTextNormalizer`` (lower-case, bracketed text and symbols removed).
``none``
    Whitespace collapsing only (for case- and punctuation-sensitive scoring).
"""
from __future__ import annotations

import importlib.resources
import json
import logging
import re
import unicodedata
from pathlib import Path
from typing import Callable, Optional

log = logging.getLogger(__name__)

__all__ = ["NORMALIZERS", "default_normalize", "strip_accents_normalize", "get_normalizer",
           "load_english_spelling_mapping"]

Normalizer = Callable[[str], str]

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_SPACES = re.compile(r"\s+")
# Package resources that hold Whisper's British -> American spelling mapping.
SPELLING_MAPPING_RESOURCES = (("whisper_normalizer", "normalizers/english.json"), ("whisper", "normalizers/english.json"))


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def default_normalize(text: str) -> str:
    """The elfs2t scoring normaliser (see the module docstring for the exact rules)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    out = []
    n = len(text)
    for i, ch in enumerate(text):
        if ch == "'":
            inside = 0 < i < n - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
            out.append(ch if inside else " ")
        elif unicodedata.category(ch)[0] in "PS":
            out.append(" ")
        else:
            out.append(ch)
    return _collapse("".join(out))


def strip_accents_normalize(text: str) -> str:
    """``default_normalize``, then the combining marks removed (see the module docstring)."""
    decomposed = unicodedata.normalize("NFD", default_normalize(text))
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn"))


def _no_normalize(text: str) -> str:
    return _collapse(text)


def load_english_spelling_mapping(path: Optional[str | Path] = None) -> tuple[dict[str, str], str]:
    """Whisper's spelling mapping and where it came from (``"none"`` when not found).

    ``path`` (a JSON object ``{british: american}``) wins; otherwise the packages listed in
    ``SPELLING_MAPPING_RESOURCES`` are tried.
    """
    if path is not None:
        path = Path(path)
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the English spelling mapping: {exc}") from exc
        if not isinstance(mapping, dict):
            raise ValueError(f"{path}: the English spelling mapping must be a JSON object")
        return mapping, str(path)
    for package, resource in SPELLING_MAPPING_RESOURCES:
        try:
            ref = importlib.resources.files(package).joinpath(resource)
            if ref.is_file():
                return json.loads(ref.read_text(encoding="utf-8")), f"{package}/{resource}"
        except (ModuleNotFoundError, FileNotFoundError, json.JSONDecodeError):
            continue
    log.warning(
        "whisper_en normaliser: no English spelling mapping found (install whisper-normalizer or pass "
        "a path); British spellings are not mapped to American ones"
    )
    return {}, "none"


def _whisper_en(spelling_mapping: Optional[str | Path]) -> Normalizer:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    mapping, _ = load_english_spelling_mapping(spelling_mapping)
    norm = EnglishTextNormalizer(mapping)
    return lambda text: _collapse(norm(text))


def _whisper_basic(_: Optional[str | Path]) -> Normalizer:
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    norm = BasicTextNormalizer()
    return lambda text: _collapse(norm(text))


# name -> factory(spelling_mapping_path) -> normaliser
NORMALIZERS: dict[str, Callable[[Optional[str | Path]], Normalizer]] = {
    "default": lambda _: default_normalize,
    "strip_accents": lambda _: strip_accents_normalize,
    "whisper_en": _whisper_en,
    "whisper_basic": _whisper_basic,
    "none": lambda _: _no_normalize,
}


def get_normalizer(name: str, spelling_mapping: Optional[str | Path] = None) -> Normalizer:
    """The normaliser called ``name`` (one of :data:`NORMALIZERS`)."""
    try:
        factory = NORMALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown normalizer {name!r}; choose one of {sorted(NORMALIZERS)}") from None
    return factory(spelling_mapping)
