"""Sentence grammars for mini_synth: English (ASR) and German with aligned English (S2TT).

Both take a ``random.Random`` and return text with normal casing and punctuation; everything is
deterministic given the generator state.

English structures: transitive / intransitive statements with prepositional phrases and time
adverbials, questions (yes/no and wh-), spelled numbers up to 999, reported speech ("that" clauses),
adverbial subordinate clauses, possessives and contractions (apostrophes, as in LibriSpeech).

German structures: transitive and intransitive main clauses (weak and mixed adjective declension in
nominative, accusative and dative), verb-second inversion after an adverbial, plural subjects with
numbers (strong declension), predicates, negation, yes/no and wh-questions, verb-final "dass" clauses and
"weil" clauses. Each German sentence comes with its English translation.
"""
from __future__ import annotations

import random
import re

from elfs2t.data.mini_synth import lexicon_de as de
from elfs2t.data.mini_synth import lexicon_en as en

__all__ = ["english_sentence", "german_pair", "librispeech_text", "article"]


# ---------------------------------------------------------------------------------------------
# English
# ---------------------------------------------------------------------------------------------
def article(word: str) -> str:
    """English indefinite article for the word that follows it."""
    return "an" if word[0].lower() in "aeiou" else "a"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _np(rng: random.Random, nouns, plural: bool = False, definite: bool | None = None) -> str:
    """An English noun phrase: determiner, optional adjective, noun."""
    sg, pl = rng.choice(nouns)
    noun = pl if plural else sg
    words = [rng.choice(en.ADJECTIVES), noun] if rng.random() < 0.6 else [noun]
    if definite is None:
        definite = plural or rng.random() < 0.7
    det = "the" if definite else article(words[0])
    return " ".join([det, *words])


def _subject(rng: random.Random) -> tuple[str, bool]:
    """(subject phrase, is plural): a name or a person / animal noun phrase."""
    if rng.random() < 0.3:
        return rng.choice(en.NAMES), False
    plural = rng.random() < 0.25
    return _np(rng, en.PEOPLE + en.ANIMALS, plural=plural), plural


def _pp(rng: random.Random) -> str:
    place = rng.choice(en.PLACES)
    adj = f"{rng.choice(en.ADJECTIVES)} " if rng.random() < 0.3 else ""
    return f"{rng.choice(en.PREPOSITIONS)} the {adj}{place}"


def _clause_past(rng: random.Random) -> str:
    """A simple past-tense clause without final punctuation."""
    subj, _ = _subject(rng)
    if rng.random() < 0.55:
        verb = rng.choice(en.TRANSITIVE)[2]
        obj = _np(rng, en.THINGS + en.ANIMALS + en.PEOPLE, plural=rng.random() < 0.2)
        return f"{subj} {verb} {obj}"
    verb = rng.choice(en.INTRANSITIVE)[2]
    tail = rng.choice([_pp(rng), rng.choice(en.ADVERBS), f"{rng.choice(en.ADVERBS)} {_pp(rng)}"])
    return f"{subj} {verb} {tail}"


def _en_statement(rng: random.Random) -> str:
    text = _clause_past(rng)
    r = rng.random()
    if r < 0.35:
        text += f" {_pp(rng)}"
    elif r < 0.6:
        text += f" {rng.choice(en.TIMES)}"
    return _cap(text) + "."


def _en_question(rng: random.Random) -> str:
    kind = rng.randrange(4)
    subj, plural = _subject(rng)
    if kind == 0:
        base = rng.choice(en.TRANSITIVE)[0]
        return f"Did {subj} {base} {_np(rng, en.THINGS + en.ANIMALS, definite=True)}?"
    if kind == 1:
        wh = rng.choice(["Where", "Why", "When", "How"])
        return f"{wh} did {subj} {rng.choice(en.INTRANSITIVE)[0]}?"
    if kind == 2:
        be = "are" if plural else "is"
        return f"Why {be} {subj} so {rng.choice(en.ADJECTIVES)}?"
    return f"Can you see {_np(rng, en.THINGS + en.ANIMALS, definite=True)} {_pp(rng)}?"


def _en_number(rng: random.Random) -> str:
    n = rng.choice([rng.randint(2, 20), rng.randint(21, 99), rng.randint(100, 999)])
    sg_pl = rng.choice(en.THINGS + en.ANIMALS)
    adj = f"{rng.choice(en.ADJECTIVES)} " if rng.random() < 0.5 else ""
    things = f"{en.number_words(n)} {adj}{sg_pl[1]}"
    if rng.random() < 0.5:
        return f"{rng.choice(en.NAMES)} counted {things} {_pp(rng)}."
    return f"There were {things} {_pp(rng)}."


def _en_subordinate(rng: random.Random) -> str:
    if rng.random() < 0.5:
        who = rng.choice(en.NAMES + ("She", "He", "My mother", "The old teacher"))
        return f"{_cap(who)} {rng.choice(en.SAY_VERBS)} that {_lower_first(_clause_past(rng))}."
    conj = rng.choice(en.CONNECTIVES)
    first, second = _clause_past(rng), _clause_past(rng)
    if rng.random() < 0.5:
        return f"{_cap(conj)} {_lower_first(first)}, {_lower_first(second)}."
    return f"{_cap(first)} {conj} {_lower_first(second)}."


def _lower_first(text: str) -> str:
    """Lower-case a leading determiner ("The" -> "the") but keep names and "I"."""
    head, _, rest = text.partition(" ")
    if head in ("The", "A", "An", "She", "He", "My"):
        return f"{head.lower()} {rest}"
    return text


def _en_apostrophe(rng: random.Random) -> str:
    kind = rng.randrange(4)
    name = rng.choice(en.NAMES)
    if kind == 0:
        noun = rng.choice(en.THINGS + en.ANIMALS)[0]
        if rng.random() < 0.5:
            return f"{name}'s {noun} was {rng.choice(en.ADJECTIVES)}."
        return f"{name}'s {noun} {rng.choice(en.INTRANSITIVE)[2]} {_pp(rng)}."
    if kind == 1:
        base = rng.choice(en.TRANSITIVE)[0]
        return f"{name} didn't {base} {_np(rng, en.THINGS + en.ANIMALS + en.PEOPLE)} {rng.choice(en.TIMES)}."
    if kind == 2:
        noun = rng.choice(en.THINGS + en.ANIMALS)[0]
        adj = rng.choice(en.ADJECTIVES)
        return f"It's {article(adj)} {adj} {noun}, isn't it?"
    subj = rng.choice(("I'm", "We're", "They're", "You're"))
    return f"{subj} {rng.choice(['waiting', 'sitting', 'standing', 'working'])} {_pp(rng)}."


_EN_STRUCTURES = (
    (_en_statement, 0.35), (_en_question, 0.15), (_en_number, 0.12), (_en_subordinate, 0.23),
    (_en_apostrophe, 0.15),
)


def english_sentence(rng: random.Random) -> str:
    """One English sentence (normal casing and punctuation) from the ASR grammar."""
    funcs, weights = zip(*_EN_STRUCTURES)
    return rng.choices(funcs, weights=weights)[0](rng)


def librispeech_text(sentence: str) -> str:
    """LibriSpeech transcript spelling: upper case, apostrophes kept, no other punctuation."""
    text = re.sub(r"[^A-Z' ]+", " ", sentence.upper())
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# German with English translations
# ---------------------------------------------------------------------------------------------
_DEF = {  # definite article by case and gender ("pl" = plural)
    "nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
    "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"},
    "dat": {"m": "dem", "f": "der", "n": "dem", "pl": "den"},
}
_WEAK = {  # adjective endings after a definite article
    "nom": {"m": "e", "f": "e", "n": "e", "pl": "en"},
    "acc": {"m": "en", "f": "e", "n": "e", "pl": "en"},
    "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"},
}
_INDEF = {"nom": {"m": "ein", "f": "eine", "n": "ein"}, "acc": {"m": "einen", "f": "eine", "n": "ein"}}
_MIXED = {"nom": {"m": "er", "f": "e", "n": "es"}, "acc": {"m": "en", "f": "e", "n": "es"}}


def _adj_stem(adj: str) -> str:
    """Stem to which endings attach ("müde" + "en" -> "müden", "leise" + "e" -> "leise")."""
    return adj[:-1] if adj.endswith("e") else adj


def _de_np(rng: random.Random, nouns, case: str, plural: bool = False) -> tuple[str, str, str]:
    """(German NP, English NP, gender key) with a definite or indefinite article and maybe an adjective."""
    noun = rng.choice(nouns)
    key = "pl" if plural else noun.gender
    adj = rng.choice(de.ADJECTIVES) if rng.random() < 0.6 else None
    indefinite = not plural and case in _INDEF and rng.random() < 0.25
    if indefinite:
        det_de, ending = _INDEF[case][key], _MIXED[case][key]
    else:
        det_de, ending = _DEF[case][key], _WEAK[case][key]
    de_words = [det_de]
    en_words = []
    if adj:
        de_words.append(_adj_stem(adj[0]) + ending)
        en_words.append(adj[1])
    de_words.append(noun.de_pl if plural else noun.de)
    en_words.append(noun.en_pl if plural else noun.en)
    det_en = article(en_words[0]) if indefinite else "the"
    return " ".join(de_words), " ".join([det_en, *en_words]), key


def _de_pp(rng: random.Random) -> tuple[str, str]:
    """A dative location phrase: 'im alten Garten' / 'in the old garden'."""
    prep_de, prep_en = rng.choice(de.PREPOSITIONS)
    place = rng.choice(de.PLACES)
    adj = rng.choice(de.ADJECTIVES) if rng.random() < 0.3 else None
    art = _DEF["dat"][place.gender]
    head = "im" if prep_de == "in" and art == "dem" else f"{prep_de} {art}"
    de_adj = f"{_adj_stem(adj[0])}en " if adj else ""
    en_adj = f"{adj[1]} " if adj else ""
    return f"{head} {de_adj}{place.de}", f"{prep_en} the {en_adj}{place.en}"


def _de_core(rng: random.Random, plural: bool) -> dict[str, str]:
    """Pieces of a present-tense clause: subject, verb forms, object / location, in both languages."""
    subj_de, subj_en, _ = _de_np(rng, de.ANIMATE, "nom", plural)
    transitive = rng.random() < 0.55
    verb = rng.choice(de.TRANSITIVE if transitive else de.INTRANSITIVE)
    if transitive:
        obj_de, obj_en, _ = _de_np(rng, de.THINGS + de.ANIMATE, "acc", plural=rng.random() < 0.2)
    else:
        obj_de, obj_en = "", ""
    if not transitive or rng.random() < 0.35:
        pp_de, pp_en = _de_pp(rng)
    else:
        pp_de, pp_en = "", ""
    return {
        "subj_de": subj_de, "subj_en": subj_en,
        "v_de": verb.de_pl if plural else verb.de, "v_en": verb.en_base if plural else verb.en,
        "v_en_base": verb.en_base, "do": "do" if plural else "does",
        "rest_de": " ".join(x for x in (obj_de, pp_de) if x), "rest_en": " ".join(x for x in (obj_en, pp_en) if x),
    }


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _de_statement(rng: random.Random) -> tuple[str, str]:
    c = _de_core(rng, plural=rng.random() < 0.25)
    if rng.random() < 0.3:  # adverbial first: verb second, subject after the verb
        t_de, t_en = rng.choice(de.TIMES)
        return _join(t_de, c["v_de"], c["subj_de"], c["rest_de"]) + ".", _join(
            t_en, c["subj_en"], c["v_en"], c["rest_en"]) + "."
    return _cap(_join(c["subj_de"], c["v_de"], c["rest_de"])) + ".", _cap(
        _join(c["subj_en"], c["v_en"], c["rest_en"])) + "."


def _de_numbers(rng: random.Random) -> tuple[str, str]:
    num_de, num_en = rng.choice(de.NUMBERS)
    adj = rng.choice(de.ADJECTIVES) if rng.random() < 0.7 else None
    adj_de = f"{_adj_stem(adj[0])}e " if adj else ""  # strong plural ending, nom. and acc.
    adj_en = f"{adj[1]} " if adj else ""
    if rng.random() < 0.5:
        noun = rng.choice(de.ANIMATE)
        verb = rng.choice(de.INTRANSITIVE)
        pp_de, pp_en = _de_pp(rng)
        return (f"{_cap(num_de)} {adj_de}{noun.de_pl} {verb.de_pl} {pp_de}.",
                f"{_cap(num_en)} {adj_en}{noun.en_pl} {verb.en_base} {pp_en}.")
    subj_de, subj_en, _ = _de_np(rng, de.ANIMATE, "nom")
    verb = rng.choice(de.TRANSITIVE)
    noun = rng.choice(de.THINGS)
    return (f"{_cap(subj_de)} {verb.de} {num_de} {adj_de}{noun.de_pl}.",
            f"{_cap(subj_en)} {verb.en} {num_en} {adj_en}{noun.en_pl}.")


def _de_predicate(rng: random.Random) -> tuple[str, str]:
    plural = rng.random() < 0.3
    subj_de, subj_en, _ = _de_np(rng, de.ANIMATE + de.THINGS, "nom", plural)
    adj_de, adj_en = rng.choice(de.ADJECTIVES)
    very = rng.random() < 0.3
    neg = not very and rng.random() < 0.3
    be_de, be_en = ("sind", "are") if plural else ("ist", "is")
    mod_de = "sehr " if very else ("nicht " if neg else "")
    mod_en = "very " if very else ("not " if neg else "")
    return f"{_cap(subj_de)} {be_de} {mod_de}{adj_de}.", f"{_cap(subj_en)} {be_en} {mod_en}{adj_en}."


def _de_negation(rng: random.Random) -> tuple[str, str]:
    plural = rng.random() < 0.25
    subj_de, subj_en, _ = _de_np(rng, de.ANIMATE, "nom", plural)
    verb = rng.choice(de.TRANSITIVE)
    noun = rng.choice(de.THINGS + de.ANIMATE)  # definite object: "nicht" goes to the end
    obj_de = f"{_DEF['acc'][noun.gender]} {noun.de}"
    v_de = verb.de_pl if plural else verb.de
    aux = "do" if plural else "does"
    return (f"{_cap(subj_de)} {v_de} {obj_de} nicht.",
            f"{_cap(subj_en)} {aux} not {verb.en_base} the {noun.en}.")


def _de_question(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(3)
    plural = rng.random() < 0.25
    if kind == 0:  # yes/no: verb first
        c = _de_core(rng, plural)
        return (_cap(_join(c["v_de"], c["subj_de"], c["rest_de"])) + "?",
                _cap(_join(c["do"], c["subj_en"], c["v_en_base"], c["rest_en"])) + "?")
    if kind == 1:
        subj_de, subj_en, _ = _de_np(rng, de.THINGS + de.ANIMATE, "nom", plural)
        be_de, be_en = ("sind", "are") if plural else ("ist", "is")
        return f"Wo {be_de} {subj_de}?", f"Where {be_en} {subj_en}?"
    subj_de, subj_en, _ = _de_np(rng, de.ANIMATE, "nom", plural)
    aux = "do" if plural else "does"
    if rng.random() < 0.5:
        verb = rng.choice(de.TRANSITIVE)
        return (f"Was {verb.de_pl if plural else verb.de} {subj_de}?",
                f"What {aux} {subj_en} {verb.en_base}?")
    verb = rng.choice(de.INTRANSITIVE)
    return f"Warum {verb.de_pl if plural else verb.de} {subj_de}?", f"Why {aux} {subj_en} {verb.en_base}?"


def _de_subordinate(rng: random.Random) -> tuple[str, str]:
    c = _de_core(rng, plural=rng.random() < 0.25)
    if rng.random() < 0.6:  # "dass" clause: the finite verb goes last
        main_de, main_en = rng.choice(de.SAY_CLAUSES)
        return (f"{main_de}, dass {_join(c['subj_de'], c['rest_de'], c['v_de'])}.",
                f"{main_en} that {_join(c['subj_en'], c['v_en'], c['rest_en'])}.")
    why_de, why_en = rng.choice(de.REASONS)
    return (_cap(_join(c["subj_de"], c["v_de"], c["rest_de"])) + f", {why_de}.",
            _cap(_join(c["subj_en"], c["v_en"], c["rest_en"])) + f" {why_en}.")


_DE_STRUCTURES = (
    (_de_statement, 0.3), (_de_numbers, 0.12), (_de_predicate, 0.12), (_de_negation, 0.08),
    (_de_question, 0.16), (_de_subordinate, 0.22),
)


def german_pair(rng: random.Random) -> tuple[str, str]:
    """One (German sentence, English translation) pair, both with normal casing and punctuation."""
    funcs, weights = zip(*_DE_STRUCTURES)
    return rng.choices(funcs, weights=weights)[0](rng)
