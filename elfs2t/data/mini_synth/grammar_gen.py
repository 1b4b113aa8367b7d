"""The generalisation grammars of mini_synth: the training lexicons in structures the training grammars never produce.

A decoder that has learned the training grammar as a language model instead of reading the audio shows itself
on these sentences (the ``test_gen`` splits). Every function takes a ``random.Random`` and returns
``(text, structure)``; English gives the sentence, German a ``(German, English)`` pair. The words come from
the same lexicons as :mod:`~elfs2t.data.mini_synth.grammar`; the plan keeps only sentences whose words all occur
in the corpus' training sentences (:func:`~elfs2t.data.mini_synth.plan.plan_corpus`).

English structures (the training grammar: one adjective per noun phrase, times and places after the clause,
adverbs after intransitive verbs, clauses joined by subordinators only):

``coordination``      two past-tense clauses joined by "and"
``two_adjectives``    a noun phrase with two adjectives ("the old red dog")
``two_pps``           a transitive clause with two place phrases after its object
``fronted_time``      the time first ("Yesterday the farmer found a key")
``fronted_pp``        the place first ("Behind the house the dog slept quietly")
``adverb_verb``       an adverb before a transitive verb ("The dog quietly watched the cat")
``pp_subject``        a subject modified by a place phrase ("The man near the river saw the dog")

German structures (the training grammar: one adjective, one place phrase, "dass" and "weil" clauses apart, no
two main clauses in one sentence, only times before the verb, "nicht" only in plain statements):

``two_adjectives``    "der alte rote Hund" / "the old red dog" (weak or mixed endings on both adjectives)
``two_pps``           "im Garten neben dem Haus" / "in the garden next to the house"
``fronted_pp``        the place phrase first, verb second ("Im Garten schläft der Hund.")
``dass_weil``         a "dass" clause followed by a "weil" clause
``time_negation``     a fronted time in a negated sentence ("Heute sieht der Hund den Ball nicht.")
``two_clauses``       two main clauses joined by a comma ("Der Hund schläft, die Katze spielt.")
"""
from __future__ import annotations

import random

from elfs2t.data.mini_synth import lexicon_de as de
from elfs2t.data.mini_synth import lexicon_en as en
from elfs2t.data.mini_synth.grammar import (
    _DEF, _INDEF, _MIXED, _WEAK, _adj_stem, _cap, _clause_past, _de_np, _de_pp, _join, _lower_first,
    _np, _pp, _subject, article,
)

__all__ = ["EN_GEN_STRUCTURES", "DE_GEN_STRUCTURES", "english_gen_sentence", "german_gen_pair"]


# ---------------------------------------------------------------------------------------------
# English
# ---------------------------------------------------------------------------------------------
def _en_transitive(rng: random.Random, subj: str, adverb: str = "") -> str:
    verb = rng.choice(en.TRANSITIVE)[2]
    obj = _np(rng, en.THINGS + en.ANIMALS + en.PEOPLE)
    return _join(subj, adverb, verb, obj)


def _en_coordination(rng: random.Random) -> str:
    return f"{_cap(_clause_past(rng))} and {_lower_first(_clause_past(rng))}."


def _en_two_adjectives(rng: random.Random) -> str:
    sg, pl = rng.choice(en.PEOPLE + en.ANIMALS)
    plural = rng.random() < 0.25
    first, second = rng.sample(en.ADJECTIVES, 2)
    det = "the" if plural or rng.random() < 0.7 else article(first)
    subj = f"{det} {first} {second} {pl if plural else sg}"
    if rng.random() < 0.5:
        return _cap(_en_transitive(rng, subj)) + "."
    return _cap(f"{subj} {rng.choice(en.INTRANSITIVE)[2]} {_pp(rng)}") + "."


def _en_two_pps(rng: random.Random) -> str:
    subj, _ = _subject(rng)
    return _cap(f"{_en_transitive(rng, subj)} {_pp(rng)} {_pp(rng)}") + "."


def _en_fronted_time(rng: random.Random) -> str:
    return f"{_cap(rng.choice(en.TIMES))} {_lower_first(_clause_past(rng))}."


def _en_fronted_pp(rng: random.Random) -> str:
    subj, _ = _subject(rng)
    verb = rng.choice(en.INTRANSITIVE)[2]
    tail = f" {rng.choice(en.ADVERBS)}" if rng.random() < 0.5 else ""
    return f"{_cap(_pp(rng))} {_lower_first(subj)} {verb}{tail}."


def _en_adverb_verb(rng: random.Random) -> str:
    subj, _ = _subject(rng)
    return _cap(_en_transitive(rng, subj, rng.choice(en.ADVERBS))) + "."


def _en_pp_subject(rng: random.Random) -> str:
    sg, pl = rng.choice(en.PEOPLE + en.ANIMALS)
    plural = rng.random() < 0.25
    subj = f"the {pl if plural else sg} {_pp(rng)}"
    return _cap(_en_transitive(rng, subj)) + "."


EN_GEN_STRUCTURES = {
    "coordination": _en_coordination, "two_adjectives": _en_two_adjectives, "two_pps": _en_two_pps,
    "fronted_time": _en_fronted_time, "fronted_pp": _en_fronted_pp, "adverb_verb": _en_adverb_verb,
    "pp_subject": _en_pp_subject,
}
"""English generalisation structures by name (drawn with equal weight)."""


def english_gen_sentence(rng: random.Random) -> tuple[str, str]:
    """One English sentence in a structure the training grammar never produces, and the structure's name."""
    name = rng.choice(sorted(EN_GEN_STRUCTURES))
    return EN_GEN_STRUCTURES[name](rng), name


# ---------------------------------------------------------------------------------------------
# German with English translations
# ---------------------------------------------------------------------------------------------
def _de_np2(rng: random.Random, nouns, case: str) -> tuple[str, str]:
    """A German noun phrase with two adjectives (definite: weak endings; indefinite: mixed), and its English."""
    noun = rng.choice(nouns)
    (a_de, a_en), (b_de, b_en) = rng.sample(de.ADJECTIVES, 2)
    if case in _INDEF and rng.random() < 0.25:
        det_de, ending = _INDEF[case][noun.gender], _MIXED[case][noun.gender]
        det_en = article(a_en)
    else:
        det_de, ending = _DEF[case][noun.gender], _WEAK[case][noun.gender]
        det_en = "the"
    return (f"{det_de} {_adj_stem(a_de)}{ending} {_adj_stem(b_de)}{ending} {noun.de}",
            f"{det_en} {a_en} {b_en} {noun.en}")


def _de_two_adjectives(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:  # the subject has the two adjectives
        subj_de, subj_en = _de_np2(rng, de.ANIMATE, "nom")
        verb = rng.choice(de.INTRANSITIVE)
        pp_de, pp_en = _de_pp(rng)
        return f"{_cap(subj_de)} {verb.de} {pp_de}.", f"{_cap(subj_en)} {verb.en} {pp_en}."
    subj_de, subj_en, _ = _de_np(rng, de.ANIMATE, "nom")
    verb = rng.choice(de.TRANSITIVE)
    obj_de, obj_en = _de_np2(rng, de.THINGS + de.ANIMATE, "acc")
    return f"{_cap(subj_de)} {verb.de} {obj_de}.", f"{_cap(subj_en)} {verb.en} {obj_en}."


def _de_two_pps(rng: random.Random) -> tuple[str, str]:
    subj_de, subj_en, _ = _de_np(rng, de.ANIMATE, "nom")
    verb = rng.choice(de.INTRANSITIVE)
    (a_de, a_en), (b_de, b_en) = _de_pp(rng), _de_pp(rng)
    return f"{_cap(subj_de)} {verb.de} {a_de} {b_de}.", f"{_cap(subj_en)} {verb.en} {a_en} {b_en}."


def _de_clause(rng: random.Random, plural: bool) -> dict[str, str]:
    """Subject, verb and (transitive) object of a short present-tense clause, in both languages (no place)."""
    subj_de, subj_en, _ = _de_np(rng, de.ANIMATE, "nom", plural)
    transitive = rng.random() < 0.5
    verb = rng.choice(de.TRANSITIVE if transitive else de.INTRANSITIVE)
    obj_de, obj_en = _de_np(rng, de.THINGS + de.ANIMATE, "acc")[:2] if transitive else ("", "")
    return {"subj_de": subj_de, "subj_en": subj_en, "v_de": verb.de_pl if plural else verb.de,
            "v_en": verb.en_base if plural else verb.en, "obj_de": obj_de, "obj_en": obj_en}


def _de_fronted_pp(rng: random.Random) -> tuple[str, str]:
    c = _de_clause(rng, plural=rng.random() < 0.25)
    pp_de, pp_en = _de_pp(rng)
    return (_cap(_join(pp_de, c["v_de"], c["subj_de"], c["obj_de"])) + ".",
            _cap(_join(pp_en, c["subj_en"], c["v_en"], c["obj_en"])) + ".")


def _de_dass_weil(rng: random.Random) -> tuple[str, str]:
    c = _de_clause(rng, plural=rng.random() < 0.25)
    main_de, main_en = rng.choice(de.SAY_CLAUSES)
    why_de, why_en = rng.choice(de.REASONS)
    return (f"{main_de}, dass {_join(c['subj_de'], c['obj_de'], c['v_de'])}, {why_de}.",
            f"{main_en} that {_join(c['subj_en'], c['v_en'], c['obj_en'])} {why_en}.")


def _de_time_negation(rng: random.Random) -> tuple[str, str]:
    plural = rng.random() < 0.25
    subj_de, subj_en, _ = _de_np(rng, de.ANIMATE, "nom", plural)
    verb = rng.choice(de.TRANSITIVE)
    noun = rng.choice(de.THINGS + de.ANIMATE)
    t_de, t_en = rng.choice(de.TIMES)
    aux = "do" if plural else "does"
    return (f"{t_de} {verb.de_pl if plural else verb.de} {subj_de} {_DEF['acc'][noun.gender]} {noun.de} nicht.",
            f"{t_en} {subj_en} {aux} not {verb.en_base} the {noun.en}.")


def _de_two_clauses(rng: random.Random) -> tuple[str, str]:
    parts = []
    for _ in range(2):
        subj_de, subj_en, _ = _de_np(rng, de.ANIMATE, "nom")
        verb = rng.choice(de.INTRANSITIVE)
        parts.append((f"{subj_de} {verb.de}", f"{subj_en} {verb.en}"))
    (a_de, a_en), (b_de, b_en) = parts
    return f"{_cap(a_de)}, {b_de}.", f"{_cap(a_en)}, {b_en}."


DE_GEN_STRUCTURES = {
    "two_adjectives": _de_two_adjectives, "two_pps": _de_two_pps, "fronted_pp": _de_fronted_pp,
    "dass_weil": _de_dass_weil, "time_negation": _de_time_negation, "two_clauses": _de_two_clauses,
}
"""German generalisation structures by name (drawn with equal weight)."""


def german_gen_pair(rng: random.Random) -> tuple[tuple[str, str], str]:
    """One (German, English) pair in a structure the training grammar never produces, and the structure's name."""
    name = rng.choice(sorted(DE_GEN_STRUCTURES))
    return DE_GEN_STRUCTURES[name](rng), name
