"""mini_synth: grammar, voices, synthesis, both corpus layouts read back by Lhotse, determinism, resume."""
from __future__ import annotations

import csv
import json
import logging
import random
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording
from lhotse.recipes.librispeech import prepare_librispeech

from elfs2t.bin import make_mini_synth
from elfs2t.data.mini_synth import lexicon_de, lexicon_en, voices
from elfs2t.data.mini_synth.generate import (
    COVOST_SPLITS, GEN_DIR, LIBRISPEECH_PARTS, MARKER, english_layout, generate_mini_synth, german_layout,
)
from elfs2t.data.mini_synth.grammar import article, english_sentence, german_pair, librispeech_text
from elfs2t.data.mini_synth.plan import GEN_SPLITS, SPLITS, plan_corpus
from elfs2t.data.mini_synth.synth import SynthJob, resample, synthesize
from elfs2t.data.mini_synth.writers import COVOST_HEADER, CV_HEADER

SEED = 3
SIZES = {"train": 12, "dev": 4, "test": 4, "test_unseen": 4}
KWARGS = dict(seed=SEED, num_train=12, num_dev=4, num_test=4, num_test_unseen=4, nj=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate_mini_synth(tmp_path_factory.mktemp("mini_synth_a"), **KWARGS)


@pytest.fixture(scope="module")
def corpus_again(tmp_path_factory) -> Path:
    """A second generation with the same seed and sizes (determinism; mutated by the resume test)."""
    return generate_mini_synth(tmp_path_factory.mktemp("mini_synth_b"), **KWARGS)


@pytest.fixture(scope="module")
def corpus_with_gen(tmp_path_factory) -> Path:
    """The same corpus with the generalisation sets (seen and unseen voices)."""
    return generate_mini_synth(tmp_path_factory.mktemp("mini_synth_gen"), **KWARGS, num_test_gen=3,
                               num_test_gen_unseen=2)


def _all_files(root: Path) -> dict[str, bytes]:
    """Every file outside the generalisation corpus, audio included."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and GEN_DIR not in p.relative_to(root).parts}


def _read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _text_files(root: Path) -> dict[str, bytes]:
    files = list(root.rglob("*.trans.txt")) + list(root.rglob("*.tsv"))
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


# ---------------------------------------------------------------------------------------------
# grammar
# ---------------------------------------------------------------------------------------------
def test_english_helpers():
    assert lexicon_en.number_words(7) == "seven"
    assert lexicon_en.number_words(42) == "forty two"
    assert lexicon_en.number_words(100) == "one hundred"
    assert lexicon_en.number_words(205) == "two hundred and five"
    assert lexicon_en.number_words(999) == "nine hundred and ninety nine"
    with pytest.raises(ValueError, match="1000"):
        lexicon_en.number_words(1000)
    assert article("old") == "an" and article("red") == "a"
    assert librispeech_text("It's an old cat, isn't it?") == "IT'S AN OLD CAT ISN'T IT"
    assert librispeech_text("Anna's  dog slept.") == "ANNA'S DOG SLEPT"


def test_english_grammar_variety_and_spelling():
    rng = random.Random(0)
    sents = [english_sentence(rng) for _ in range(2000)]
    assert len(set(sents)) > 1950
    words = set()
    for s in sents:
        assert s[0].isupper() and s[-1] in ".?", s
        t = librispeech_text(s)
        assert re.fullmatch(r"[A-Z']+( [A-Z']+)*", t), t
        words.update(t.split())
        for a, w in re.findall(r"\b(a|an) (\w+)", s.lower()):
            assert a == article(w), s
    assert 300 <= len(words) <= 600
    assert any(s.endswith("?") for s in sents) and any("'" in s for s in sents)
    assert any(" that " in s for s in sents) and any("hundred" in s for s in sents)


_DE_NOUNS = {n.de: n for n in lexicon_de.ANIMATE + lexicon_de.THINGS}
_DE_PLURALS = {n.de_pl: n for n in lexicon_de.ANIMATE + lexicon_de.THINGS}
_DE_PLACES = {p.de: p for p in lexicon_de.PLACES}


def _next_noun(tokens: list[str], i: int):
    """The lexicon noun (or place) that the determiner at ``i`` introduces, with its number."""
    for tok in tokens[i + 1: i + 3]:
        if tok in _DE_PLACES:
            return _DE_PLACES[tok].gender, "sg"
        if tok in _DE_NOUNS and tok not in _DE_PLURALS:
            return _DE_NOUNS[tok].gender, "sg"
        if tok in _DE_PLURALS and tok not in _DE_NOUNS:
            return _DE_PLURALS[tok].gender, "pl"
        if tok in _DE_NOUNS:  # same form in singular and plural (Lehrer, Mädchen, ...)
            return _DE_NOUNS[tok].gender, "?"
    return None


def test_german_agreement_and_alignment():
    rng = random.Random(1)
    pairs = [german_pair(rng) for _ in range(1500)]
    assert len(set(pairs)) > 1400
    checked = 0
    for de_s, en_s in pairs:
        assert de_s[0].isupper() and en_s[0].isupper(), (de_s, en_s)
        assert de_s[-1] == en_s[-1] and de_s[-1] in ".?", (de_s, en_s)
        tokens = de_s.rstrip(".?").replace(",", "").split()
        for i, tok in enumerate(tokens):
            noun = _next_noun(tokens, i)
            if noun is None:
                continue
            gender, number = noun
            if tok == "das":
                assert gender == "n" and number != "pl", de_s
            elif tok == "einen":
                assert gender == "m", de_s
            elif tok == "eine":
                assert gender == "f", de_s
            elif tok == "dem":
                assert gender in "mn", de_s
            elif tok == "im":
                assert gender in "mn", de_s
            elif tok == "ein":
                adj = tokens[i + 1]
                assert gender in "mn", de_s
                if adj not in _DE_NOUNS:  # mixed declension: ein alter Mann / ein altes Kind
                    assert adj.endswith("er" if gender == "m" else "es"), de_s
            else:
                continue
            checked += 1
        # every German lexicon noun has its English counterpart in the translation
        en_words = set(re.findall(r"[a-z]+", en_s.lower()))
        for tok in tokens:
            if tok in _DE_NOUNS and tok not in _DE_PLURALS:
                assert _DE_NOUNS[tok].en in en_words, (de_s, en_s)
            if tok in _DE_PLACES:
                assert _DE_PLACES[tok].en in en_words, (de_s, en_s)
        for num_de, num_en in lexicon_de.NUMBERS:
            assert (num_de in de_s.lower().split()) == (num_en in en_words), (de_s, en_s)
        if ", dass " in de_s:  # verb-final subordinate clause
            last = tokens[-1]
            assert any(last in (v.de, v.de_pl) for v in lexicon_de.TRANSITIVE + lexicon_de.INTRANSITIVE), de_s
    assert checked > 500


def test_hand_checked_german_examples():
    """The declension tables on fixed phrases (computed by hand)."""
    from elfs2t.data.mini_synth import grammar

    assert grammar._DEF["acc"]["m"] == "den" and grammar._WEAK["acc"]["m"] == "en"
    assert grammar._adj_stem("müde") + grammar._WEAK["dat"]["f"] == "müden"
    assert grammar._adj_stem("alt") + grammar._MIXED["nom"]["m"] == "alter"
    assert grammar._adj_stem("leise") + grammar._MIXED["acc"]["n"] == "leises"


# ---------------------------------------------------------------------------------------------
# voices, planning, synthesis
# ---------------------------------------------------------------------------------------------
def test_voice_pools_are_disjoint():
    assert not set(voices.VARIANTS_SEEN) & set(voices.VARIANTS_UNSEEN)
    rng = random.Random(0)
    seen = voices.make_speakers("en", seen=True, count=40, rng=rng)
    unseen = voices.make_speakers("en", seen=False, count=10, rng=rng, first_id=900)
    assert {s.variant for s in seen} == set(voices.VARIANTS_SEEN)  # every variant used
    assert not {s.voice for s in seen} & {s.voice for s in unseen}
    assert len({s.speaker_id for s in seen + unseen}) == 50
    with pytest.raises(ValueError, match="fr"):
        voices.make_speakers("fr", seen=True, count=1, rng=rng)


def test_plan_is_deterministic_and_splits_distinct():
    a, b, c = plan_corpus(0, SIZES), plan_corpus(0, SIZES), plan_corpus(1, SIZES)
    assert a.utts == b.utts and a.speakers == b.speakers
    assert [u.text for u in a.utts["en"]["train"]] != [u.text for u in c.utts["en"]["train"]]
    for task in ("en", "de"):
        train = {u.text for u in a.utts[task]["train"]}
        evals = [u.text for s in ("dev", "test", "test_unseen") for u in a.utts[task][s]]
        assert not train & set(evals) and len(set(evals)) == len(evals)
        assert all(u.speaker.seen for s in ("train", "dev", "test") for u in a.utts[task][s])
        assert not any(u.speaker.seen for u in a.utts[task]["test_unseen"])
    with pytest.raises(ValueError, match="test_unseen"):
        plan_corpus(0, {"train": 1, "dev": 1, "test": 1})


def test_resample_keeps_frequency_and_length():
    sr = 22050
    t = np.arange(sr) / sr  # 1 s
    x = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    for sr_out in (16000, 48000):
        y = resample(x, sr, sr_out)
        assert y.dtype == np.float32 and len(y) == sr_out
        spec = np.abs(np.fft.rfft(y))
        assert abs(np.argmax(spec) * sr_out / len(y) - 1000.0) < 1.5
        assert abs(np.abs(y).max() - 0.5) < 0.02
    # a tone above the new Nyquist frequency is removed
    hi = np.sin(2 * np.pi * 9000.0 * t)
    assert np.abs(resample(hi, sr, 16000)).max() < 1e-3


def test_synthesize_respects_duration_limits():
    short = synthesize(SynthJob(text="Ja.", voice="de+m1", rate=175, pitch=50, path=Path("x.flac"), sample_rate=16000))
    assert len(short) == 16000 and np.abs(short).max() > 0.01  # padded to 1 s, not silent
    text = "The lucky old farmer carried the heavy wooden basket across the golden field after dinner."
    long_ = synthesize(SynthJob(text=text, voice="en-us+m3", rate=120, pitch=50, path=Path("x.flac"),
                                sample_rate=16000, max_s=3.0))
    assert 1.5 < len(long_) / 16000 <= 3.0


# ---------------------------------------------------------------------------------------------
# generated corpus
# ---------------------------------------------------------------------------------------------
def test_librispeech_layout_reads_back(corpus):
    parts = list(LIBRISPEECH_PARTS.values())
    manifests = prepare_librispeech(corpus_dir=corpus / "LibriSpeech", dataset_parts=parts)
    assert set(manifests) == set(parts)
    layout = english_layout(plan_corpus(SEED, SIZES), corpus)
    for split, part in LIBRISPEECH_PARTS.items():
        recs, sups = manifests[part]["recordings"], manifests[part]["supervisions"]
        expected = {lu.utt_id: (utt.text, path) for utt, lu, path in layout[split]}
        assert len(recs) == len(sups) == SIZES[split] == len(expected)
        for sup in sups:
            text, path = expected[sup.recording_id]
            assert sup.text == librispeech_text(text)
            rec = recs[sup.recording_id]
            assert rec.sampling_rate == 16000
            info = sf.info(str(path))
            assert abs(rec.duration - info.duration) <= 0.05 and abs(sup.duration - rec.duration) <= 0.05
            assert 1.0 - 1e-6 <= rec.duration <= 6.0 + 1e-6
            assert sup.speaker == sup.recording_id.split("-")[0]
    marker = json.loads((corpus / "LibriSpeech" / "dev-clean" / MARKER).read_text())
    for rel, dur in marker["durations"].items():
        assert abs(sf.info(str(corpus / rel)).duration - dur) <= 0.05
    assert "test-other" in (corpus / "README.txt").read_text()


def test_covost_and_common_voice_tsvs(corpus):
    cv_header, cv_rows = _read_tsv(corpus / "cv" / "de" / "validated.tsv")
    cov_header, cov_rows = _read_tsv(corpus / "covost" / "covost_v2.de_en.tsv")
    assert tuple(cv_header) == CV_HEADER and tuple(cov_header) == COVOST_HEADER
    assert len(cov_rows) == len(cv_rows) == sum(SIZES.values())
    assert {r["split"] for r in cov_rows} <= set(COVOST_SPLITS)
    assert sum(r["split"] in ("train", "train_covost") for r in cov_rows) == SIZES["train"]
    for split in ("dev", "test", "test_unseen"):
        assert sum(r["split"] == split for r in cov_rows) == SIZES[split]
    cv_by_path = {r["path"]: r for r in cv_rows}
    layout = german_layout(plan_corpus(SEED, SIZES), corpus, SEED)
    planned = {clip.path: utt for split in SPLITS for utt, clip, _ in layout[split]}
    for row in cov_rows:
        utt = planned[row["path"]]
        assert (row["sentence"], row["translation"]) == (utt.text, utt.translation)  # aligned pair
        assert cv_by_path[row["path"]]["sentence"] == row["sentence"]
        assert cv_by_path[row["path"]]["client_id"] == row["client_id"] == utt.speaker.client_id
        rec = Recording.from_file(corpus / "cv" / "de" / "clips" / row["path"])
        assert rec.sampling_rate == 48000 and 0.95 <= rec.duration <= 6.1


def test_unseen_voices_not_in_training(corpus):
    ls = corpus / "LibriSpeech"
    train_spk = {p.name for p in (ls / "train-clean-100").iterdir() if p.is_dir()}
    unseen_spk = {p.name for p in (ls / "test-other").iterdir() if p.is_dir()}
    assert unseen_spk and not train_spk & unseen_spk
    plan = plan_corpus(SEED, SIZES)
    for task in ("en", "de"):
        train_voices = {u.speaker.voice for s in ("train", "dev", "test") for u in plan.utts[task][s]}
        unseen_voices = {u.speaker.voice for u in plan.utts[task]["test_unseen"]}
        assert not train_voices & unseen_voices
        assert {v.partition("+")[2] for v in unseen_voices} <= set(voices.VARIANTS_UNSEEN)
    _, rows = _read_tsv(corpus / "covost" / "covost_v2.de_en.tsv")
    train_clients = {r["client_id"] for r in rows if r["split"].startswith("train")}
    assert not train_clients & {r["client_id"] for r in rows if r["split"] == "test_unseen"}


def test_same_seed_is_byte_identical(corpus, corpus_again):
    a, b = _text_files(corpus), _text_files(corpus_again)
    assert a and a == b
    assert (corpus / "README.txt").read_text() == (corpus_again / "README.txt").read_text()


def test_gen_sets_change_no_file_of_the_other_splits(corpus, corpus_with_gen):
    a, b = _all_files(corpus), _all_files(corpus_with_gen)
    assert any(k.endswith(".flac") for k in a) and any(k.endswith(".mp3") for k in a)
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []  # byte-identical, audio included
    assert not (corpus / GEN_DIR).exists() and (corpus_with_gen / GEN_DIR / "README.txt").is_file()


def test_gen_corpus_reads_back_with_the_real_preparation(corpus_with_gen, tmp_path):
    from elfs2t.data.covost2 import prepare_covost2
    from elfs2t.data.librispeech import prepare_librispeech_cuts
    from elfs2t.data.dataset import target_text

    gen = corpus_with_gen / GEN_DIR
    plan = plan_corpus(SEED, {**SIZES, "test_gen": 3, "test_gen_unseen": 2})
    asr = prepare_librispeech_cuts(gen / "LibriSpeech", tmp_path, parts=["test-clean", "test-other"],
                                   set_names={"test-clean": "asr_gen_test", "test-other": "asr_gen_test_unseen"})
    st = prepare_covost2(gen / "cv" / "de", gen / "covost" / "covost_v2.de_en.tsv", "de", "en", tmp_path,
                         splits=["test", "test_unseen"], prefix="st_gen")
    for split, name in zip(GEN_SPLITS, ("gen_test", "gen_test_unseen")):
        expected = sorted(librispeech_text(u.text) for u in plan.utts["en"][split])
        assert sorted(c.supervisions[0].text for c in asr[f"asr_{name}"]) == expected
        pairs = sorted((target_text(c, "transcript"), target_text(c, "translation:en")) for c in st[f"st_{name}"])
        assert pairs == sorted((u.text, u.translation) for u in plan.utts["de"][split])
    # speakers: seen voices in test_gen, unseen ones in test_gen_unseen, as in the main corpus' test sets
    seen = {str(s.speaker_id) for s in plan.speakers["en"] if s.seen}
    train_spk = {p.name for p in (corpus_with_gen / "LibriSpeech" / "train-clean-100").iterdir() if p.is_dir()}
    assert {c.supervisions[0].speaker for c in asr["asr_gen_test"]} <= seen and train_spk <= seen
    assert not {c.supervisions[0].speaker for c in asr["asr_gen_test_unseen"]} & seen
    clips = {c.id for c in st["st_gen_test"]} | {c.id for c in st["st_gen_test_unseen"]}
    assert all(int(c.rsplit("_", 1)[1]) >= 20_000_000 for c in clips)  # never a clip name of the main corpus


def test_resume_skips_finished_parts_and_redoes_interrupted(corpus_again, caplog):
    root = corpus_again
    flacs = sorted((root / "LibriSpeech").rglob("*.flac"))
    mtimes = {p: p.stat().st_mtime_ns for p in flacs}
    with caplog.at_level(logging.INFO, logger="elfs2t.data.mini_synth.generate"):
        generate_mini_synth(root, **KWARGS)
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 8
    assert {p: p.stat().st_mtime_ns for p in flacs} == mtimes
    # simulate a run killed while writing dev-clean: no marker, a missing file, a stray temp file;
    # and a test-clean marker written for another plan
    dev = root / "LibriSpeech" / "dev-clean"
    test_marker = root / "LibriSpeech" / "test-clean" / MARKER
    data = json.loads(test_marker.read_text())
    test_marker.write_text(json.dumps({**data, "hash": "another plan"}))
    (dev / MARKER).unlink()
    victim = sorted(dev.rglob("*.flac"))[0]
    victim.unlink()
    stray = victim.with_name(f".{victim.name}.999.tmp")
    stray.write_bytes(b"partial")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="elfs2t.data.mini_synth.generate"):
        generate_mini_synth(root, **KWARGS)
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 6
    assert victim.is_file() and not stray.exists() and (dev / MARKER).is_file()
    assert json.loads(test_marker.read_text())["hash"] == data["hash"]
    redone = [dev, test_marker.parent]
    others = [p for p in flacs if not any(d in p.parents for d in redone)]
    assert others and all(p.stat().st_mtime_ns == mtimes[p] for p in others)
    assert all(p.stat().st_mtime_ns != mtimes[p] for p in flacs if test_marker.parent in p.parents)


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="nj"):
        generate_mini_synth(tmp_path, nj=0)
    with pytest.raises(ValueError, match="sizes"):
        generate_mini_synth(tmp_path, num_train=-1)


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        make_mini_synth.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--output-dir", "--seed", "--num-train", "--num-dev", "--num-test", "--num-test-unseen",
                "--num-test-gen", "--num-test-gen-unseen", "--nj"):
        assert opt in out
