"""Scoring: WER/CER/BLEU/chrF against hand computations, normalisers, missing ids, results table."""
import json

import pytest

from elfs2t.config import ConfigError, structure
from elfs2t.bin.seed_table import main as seed_table_main
from elfs2t.results import collect_results, train_minutes, write_results_table
from elfs2t.seed_table import collect_seed_rows, format_seed_table
from elfs2t.score import ScoreConfig, align, score_files, score_texts
from elfs2t.text.normalize import default_normalize, get_normalizer, load_english_spelling_mapping
from elfs2t.textfile import write_text


def test_wer_two_errors_of_four():
    report, aligns = score_texts({"u": "a b c d"}, {"u": "a x c"}, ScoreConfig(metric="wer"))
    c = report.counts["WER"]
    assert (c.ref_len, c.sub, c.dele, c.ins, c.hits) == (4, 1, 1, 0, 2)
    assert report.scores["WER"] == pytest.approx(50.0)
    assert aligns["align.txt"].splitlines() == [
        "u ref  a b c d",
        "u hyp  a x c ***",
        "u op   C S C D",
        "u #csid 2 1 1 0",
    ]


def test_corpus_wer_pools_counts_and_insertions():
    refs = {"a": "one two", "b": "three four five six"}
    hyps = {"a": "one two extra words", "b": "three four five six"}
    report, _ = score_texts(refs, hyps, ScoreConfig(metric="wer"))
    # 2 insertions over 6 reference words (not the mean of per-utterance rates, 50%).
    assert report.scores["WER"] == pytest.approx(100 * 2 / 6)
    assert report.counts["WER"].ins == 2


def test_cer_by_hand():
    report, _ = score_texts({"u": "abcd"}, {"u": "abd"}, ScoreConfig(metric="cer"))
    assert report.scores["CER"] == pytest.approx(25.0)
    assert align("ab", "xb", unit="char") == [("S", "a", "x"), ("C", "b", "b")]


def test_normalisation_applies_before_wer():
    refs = {"u": "Hello, World! It\u2019s fine."}
    hyps = {"u": "hello world it's FINE"}
    report, _ = score_texts(refs, hyps, ScoreConfig(metric="all"))
    assert report.scores["WER"] == 0.0 and report.scores["CER"] == 0.0
    report_none, _ = score_texts(refs, hyps, ScoreConfig(metric="wer", normalizer="none"))
    assert report_none.scores["WER"] == pytest.approx(100.0)  # every word differs in case/punctuation


def test_default_normalizer_rules():
    assert default_normalize("  Don't  STOP--now! ") == "don't stop now"
    assert default_normalize("'quoted' rock 'n' roll") == "quoted rock n roll"
    assert default_normalize("well-known 3.5 “yes”") == "well known 3 5 yes"
    assert default_normalize("Grüße, STRASSE") == "grüße strasse"
    assert default_normalize("o\u2019clock") == "o'clock"
    assert default_normalize("...") == ""


def test_strip_accents_normalizer_scores_an_uncased_wordpiece_decode_alike():
    """German through MiniLM's tokenizer loses its umlauts (müde -> mude); strip_accents scores both spellings alike
    and keeps the letters that have no accent to strip."""
    norm = get_normalizer("strip_accents")
    assert norm("Der MÜDE Hund schläft; die Straße! Café") == "der mude hund schlaft die straße cafe"
    assert norm("der mude hund schlaft") == norm("Der müde Hund schläft.")
    report, _ = score_texts({"u": "Die Königin schläft."}, {"u": "die konigin schlaft"},
                            ScoreConfig(metric="wer", normalizer="strip_accents"))
    assert report.scores["WER"] == 0.0
    report, _ = score_texts({"u": "Die Königin schläft."}, {"u": "die konigin schlaft"}, ScoreConfig(metric="wer"))
    assert report.scores["WER"] == pytest.approx(200 / 3)


def test_whisper_english_normalizer_with_mapping(tmp_path):
    mapping = tmp_path / "english.json"
    mapping.write_text(json.dumps({"colour": "color"}))
    norm = get_normalizer("whisper_en", mapping)
    assert norm("Mr. Smith's colour costs twenty five dollars, um.") == "mister smith is color costs $25"
    assert load_english_spelling_mapping(mapping) == ({"colour": "color"}, str(mapping))
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        get_normalizer("whisper_en", bad)
    with pytest.raises(ValueError, match="unknown normalizer 'nope'"):
        get_normalizer("nope")


def test_bleu_identical_is_100_and_known_value():
    refs = {"1": "The cat sat on the mat.", "2": "A quick brown fox jumps."}
    report, _ = score_texts(refs, dict(refs), ScoreConfig(metric="bleu"))
    assert report.scores["BLEU"] == pytest.approx(100.0)
    assert report.scores["chrF"] == pytest.approx(100.0)
    assert "case:mixed" in report.signatures["BLEU"] and "tok:13a" in report.signatures["BLEU"]
    assert "case:lc" in report.signatures["BLEU_lc"]
    # Hand computation: precisions 4/5, 3/4, 2/3, 1/2, no brevity penalty -> (0.2)^(1/4).
    report, _ = score_texts({"u": "a b c d e"}, {"u": "a b c d f"}, ScoreConfig(metric="bleu"))
    assert report.scores["BLEU"] == pytest.approx(100 * 0.2 ** 0.25, abs=1e-6)


def test_bleu_cased_vs_lowercased():
    refs = {"u": "The Cat Sat On The Mat"}
    hyps = {"u": "the cat sat on the mat"}
    report, _ = score_texts(refs, hyps, ScoreConfig(metric="bleu"))
    assert report.scores["BLEU_lc"] == pytest.approx(100.0)
    assert report.scores["BLEU"] < 50.0
    assert report.scores["chrF_lc"] == pytest.approx(100.0) and report.scores["chrF"] < 100.0


def test_missing_hypotheses_scored_as_empty_and_reported(tmp_path):
    write_text(tmp_path / "ref", {"u1": "a b c d", "u2": "e f", "u3": "g"})
    write_text(tmp_path / "hyp", {"u1": "a b c d", "zz": "stray"})
    out = tmp_path / "test_set"
    report = score_files(tmp_path / "hyp", tmp_path / "ref", out, ScoreConfig(metric="all"))
    assert report.missing == ["u2", "u3"] and report.extra == ["zz"]
    assert report.num_utts == 3
    assert report.scores["WER"] == pytest.approx(100 * 3 / 7)  # 3 deletions over 7 words
    text = (out / "result.txt").read_text()
    assert "missing_hyps: 2 (scored as empty hypotheses) e.g. u2 u3" in text
    assert "extra_hyps: 1 (no reference, not scored) e.g. zz" in text
    assert "WER: 42.86 %" in text and "# elfs2t scoring: test_set" in text
    assert "u3 hyp  ***" in (out / "align.txt").read_text()
    data = json.loads((out / "result.json").read_text())
    assert data["counts"]["WER"]["dele"] == 3 and data["missing"] == ["u2", "u3"]
    assert (out / "align_char.txt").is_file()


def test_refs_from_cuts_manifest(tmp_path):
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
    from lhotse.audio import AudioSource

    cuts = []
    for i, (src, tgt) in enumerate([("hallo welt", "hello world"), ("guten tag", "good day")]):
        rec = Recording(id=f"r{i}", sources=[AudioSource(type="file", channels=[0], source="x.wav")],
                        sampling_rate=16000, num_samples=16000, duration=1.0)
        sup = SupervisionSegment(id=f"c{i}", recording_id=rec.id, start=0, duration=1.0, text=src,
                                 language="de", custom={"translated_text": {"en": tgt}})
        cuts.append(MonoCut(id=f"c{i}", start=0, duration=1.0, channel=0, recording=rec, supervisions=[sup]))
    manifest = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    write_text(tmp_path / "hyp", {"c0": "hello world", "c1": "good day"})
    report = score_files(tmp_path / "hyp", manifest, tmp_path / "st", ScoreConfig(metric="wer"), ref_target="translation:en")
    assert report.scores["WER"] == 0.0
    report = score_files(tmp_path / "hyp", manifest, tmp_path / "asr", ScoreConfig(metric="wer"))
    assert report.scores["WER"] == pytest.approx(100.0)
    with pytest.raises(ConfigError, match="translation:<tgt>"):
        score_files(tmp_path / "hyp", manifest, tmp_path / "x", ScoreConfig(), ref_target="french")
    with pytest.raises(ValueError, match="only applies to a cuts manifest"):
        score_files(tmp_path / "hyp", tmp_path / "hyp", tmp_path / "x", ScoreConfig(), ref_target="transcript")


def test_config_validation():
    with pytest.raises(ConfigError, match="normalizer='fancy'"):
        structure(ScoreConfig, {"normalizer": "fancy"})
    with pytest.raises(ConfigError, match="bleu_tokenize='nope'"):
        structure(ScoreConfig, {"bleu_tokenize": "nope"})


def _result_tree(root, exp, inference, set_name, hyps, refs, metric, timing=None):
    d = root / "exp" / exp / f"decode_{inference}" / set_name
    write_text(root / "tmp_ref", refs)
    write_text(root / "tmp_hyp", hyps)
    score_files(root / "tmp_hyp", root / "tmp_ref", d, ScoreConfig(metric=metric))
    if timing is not None:
        (d / "timing.json").write_text(json.dumps(timing))


def _log(path, lines):
    """A train.log of (HH:MM:SS, message) lines on one day, in the trainer's format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"2025-01-01 {t},000 INFO elfs2t.train.trainer: {msg}\n" for t, msg in lines))


def test_train_minutes_by_hand(tmp_path):
    _log(tmp_path / "a" / "train.log", [
        # invocation 1: steps 25..100 in 180 s; the first 25 steps (before the first line) take 60 s more
        ("10:00:00", "step 25 epoch 0: loss=1.0"), ("10:00:30", "step 25 validation: valid_loss=1"),
        ("10:01:00", "step 50 epoch 0: loss=1.0"), ("10:03:00", "training stopped by max_minutes at step 100 (epoch 0)"),
        # invocation 2, resumed at step 100: 125 -> 150 in 30 s, + 30 s for 100 -> 125
        ("11:00:00", "step 125 epoch 1: loss=0.5"), ("11:00:30", "training stopped by max_steps at step 150 (epoch 1)"),
    ])
    assert train_minutes(tmp_path / "a") == pytest.approx((240 + 60) / 60)
    _log(tmp_path / "b" / "train.log", [
        # a run killed after step 50 (no stop line: 25 -> 50 in 40 s, + 40 s before), then a resumed one whose
        # start step is unknown (it resumed from a checkpoint): only its own span counts
        ("09:00:00", "step 25 epoch 0: loss=1"), ("09:00:40", "step 50 epoch 0: loss=1"),
        ("09:10:00", "step 25 epoch 0: loss=1"), ("09:11:00", "training stopped by max_steps at step 75 (epoch 0)"),
    ])
    assert train_minutes(tmp_path / "b") == pytest.approx((80 + 60) / 60)
    assert train_minutes(tmp_path / "none") is None


def _recipe_with_three_models(root):
    """exp/ of a recipe with ELF-S2T (3 decodes), AR (1) and Whisper zero-shot (2 sets), as stages 3-6 leave it."""
    hyps, refs = {"a": "x y", "b": "p q r"}, {"a": "x z", "b": "p q r"}
    elf_timing = {"audio_seconds": 30.0, "decode_seconds": 2.0, "model": "elf_s2t", "steps": 4, "guidance": 1.0,
                  "params": 3_456_789, "encoder": "whisper-tiny.en_trim", "encoder_rtfx": 60.0,
                  "reader": "flow from noise"}
    _result_tree(root, "asr_elf", "flow4_g1_ctc", "asr_test", hyps, refs, "wer", elf_timing)
    # written before stage 5 annotated timing.json: settings from decode_config.yaml, then from the tag
    _result_tree(root, "asr_elf", "flow16_g2_ctc", "asr_test", hyps, hyps, "wer", {"audio_seconds": 30.0, "decode_seconds": 6.0})
    (root / "exp/asr_elf/decode_flow16_g2_ctc/asr_test/decode_config.yaml").write_text(
        "strategy: flow\nflow: {steps: 16, guidance: 2.0}\nrefine: {steps: 1, guidance: 1.0}\nbeam_size: 1\n")
    _result_tree(root, "asr_elf", "flow8_g1.5_sde1_ctc", "asr_test", hyps, refs, "wer")
    (root / "exp/asr_elf/config.yaml").write_text("model: elf_s2t\ninit: {denoiser: exp/elf_text}\n")
    _log(root / "exp/asr_elf/train.log", [("10:00:00", "step 25 epoch 0: l=1"), ("10:06:00", "step 50 epoch 0: l=1"),
                                          ("10:06:00", "training stopped by max_minutes at step 50 (epoch 0)")])
    _log(root / "exp/elf_text/train.log", [("09:00:00", "step 50 epoch 0: l=1"), ("09:03:00", "training stopped by max_minutes at step 100 (epoch 0)")])
    _result_tree(root, "asr_ar", "beam4", "asr_test", hyps, hyps, "wer",
                 {"audio_seconds": 30.0, "decode_seconds": 1.0, "model": "ar", "beam_size": 4, "params": 2_000_000})
    (root / "exp/asr_ar/config.yaml").write_text("model: ar\nar: {lm: exp/lm_text/hf}\n")
    # stage 5 dumps the whole DecodeConfig, ELF-S2T's defaults included: not AR settings
    (root / "exp/asr_ar/decode_beam4/asr_test/decode_config.yaml").write_text(
        "strategy: flow\nflow: {steps: 32, guidance: 1.0}\nbeam_size: 4\n")
    _log(root / "exp/asr_ar/train.log", [("10:00:00", "step 25 epoch 0: l=1"), ("10:03:00", "training stopped by max_steps at step 50 (epoch 0)")])
    _log(root / "exp/lm_text/train.log", [("08:00:00", "step 50 epoch 0: l=1"), ("08:01:30", "training stopped by max_steps at step 100 (epoch 0)")])
    (root / "exp/lm_text/hf").mkdir()
    whisper = {"audio_seconds": 30.0, "decode_seconds": 3.0, "model": "whisper", "beam_size": 1, "params": 29_551_872,
               "encoder": "whisper-tiny.en_pad30", "encoder_rtfx": 5.0}
    _result_tree(root, "whisper_tiny.en", "transcribe_beam1", "asr_test", hyps, refs, "wer", whisper)
    _result_tree(root, "asr_elf", "flow4_g1_ctc_audiozero", "asr_test", hyps, refs, "wer", dict(elf_timing, audio="zero"))
    _result_tree(root, "whisper_base", "translate_de_beam1", "st_test", hyps, refs, "bleu", dict(whisper, encoder="whisper-base_pad30"))


def test_results_table_with_all_three_model_kinds(tmp_path):
    _recipe_with_three_models(tmp_path)
    rows = collect_results(tmp_path)
    assert [(r.set_name, r.model, r.inference) for r in rows] == [
        ("asr_test", "elf_s2t", "flow4_g1_ctc"), ("asr_test", "elf_s2t", "flow8_g1.5_sde1_ctc"),
        ("asr_test", "elf_s2t", "flow16_g2_ctc"), ("asr_test", "ar", "beam4"),
        ("asr_test", "whisper", "transcribe_beam1"), ("st_test", "whisper", "translate_de_beam1")]
    elf4, elf8, elf16, ar, wh, st = rows
    assert (elf4.steps, elf4.guidance, elf8.steps, elf8.guidance, elf16.steps, elf16.guidance) == ("4", "1", "8", "1.5", "16", "2")
    assert elf4.metrics["WER"] == pytest.approx(20.0) and elf16.metrics["WER"] == 0.0
    assert elf4.rtfx == pytest.approx(15.0) and elf4.rtfx_e2e == pytest.approx(1 / (1 / 15 + 1 / 60))
    assert elf8.rtfx is None and elf8.model == "elf_s2t"  # kind from the exp's config.yaml
    assert (elf4.train_minutes, elf4.pretrain_minutes) == (pytest.approx(12.0), pytest.approx(6.0))
    assert (ar.beam_size, ar.train_minutes, ar.pretrain_minutes) == ("4", pytest.approx(6.0), pytest.approx(3.0))
    assert wh.train_minutes is None and wh.rtfx_e2e == pytest.approx(1 / (1 / 10 + 1 / 5))
    assert "BLEU" in st.metrics and "WER" not in st.metrics
    diagnostics = [r for r in collect_results(tmp_path, include_diagnostics=True) if r not in rows]
    assert [r.inference for r in diagnostics] == ["flow4_g1_ctc_audiozero"]  # left out of the comparison
    text = write_results_table(tmp_path, tmp_path / "RESULTS.md").read_text()
    assert text.index("### asr_test") < text.index("### st_test")
    asr = text[text.index("### asr_test"):text.index("### st_test")]
    header = next(line for line in asr.splitlines() if line.startswith("| model"))
    assert header == ("| model | exp | decoding | tokens from | steps | g | beam | WER (%) | RTFx | RTFx e2e | params (M) | "
                      "encoder | train (min) | pre-train (min) | utts |")
    assert ("| ELF-S2T | asr_elf | flow4_g1_ctc | flow from noise | 4 | 1 |  | 20.00 | 15.0 | 12.0 | 3.46 | "
            "whisper-tiny.en_trim | 12.0 | 6.0 | 2 |" in asr.splitlines())
    assert "| AR | asr_ar | beam4 |  |  |  | 4 | 0.00 | 30.0 |  | 2.00 |  | 6.0 | 3.0 | 2 |" in asr.splitlines()
    assert ("| Whisper zero-shot | whisper_tiny.en | transcribe_beam1 | Whisper's decoder |  |  | 1 | 20.00 | 10.0 | 3.3 | "
            "29.55 | whisper-tiny.en_pad30 | zero-shot |  | 2 |") in asr.splitlines()
    st_header = next(line for line in text[text.index("### st_test"):].splitlines() if line.startswith("| model"))
    assert "BLEU | BLEU_lc | chrF | chrF_lc" in st_header and "WER" not in st_header


def test_seed_table_means_and_each_run(tmp_path, capsys):
    """Two runs of a recipe: per system and set the mean, then each run's value; a system of one run only shows it."""
    refs = {"a": "w x y z", "b": "p q r s"}
    one, two = tmp_path / "seed1", tmp_path / "seed2"
    elf = {"audio_seconds": 30.0, "decode_seconds": 2.0, "model": "elf_s2t", "reader": "flow from noise"}
    # run 1: 1 error in 8 words (12.5 %), run 2: 2 errors (25 %); Whisper decoded in run 1 only
    _result_tree(one, "asr_elf", "flow4_g1_ctc", "asr_test", {"a": "w x y z", "b": "p q r t"}, refs, "wer", elf)
    _result_tree(two, "asr_elf", "flow4_g1_ctc", "asr_test", {"a": "w x y", "b": "p q r t"}, refs, "wer",
                 dict(elf, decode_seconds=3.0))
    _result_tree(one, "whisper_base", "transcribe_beam1", "asr_test", refs, refs, "wer", {"model": "whisper"})
    _result_tree(two, "st_elf", "draft", "st_test", {"a": "w x y z"}, {"a": "w x y z"}, "bleu", {"model": "elf_s2t"})
    rows, metric_of = collect_seed_rows([one, two])
    assert metric_of == {"asr_test": "WER", "st_test": "BLEU"}
    assert [(r.first.exp, r.first.inference) for r in rows] == [
        ("asr_elf", "flow4_g1_ctc"), ("st_elf", "draft"), ("whisper_base", "transcribe_beam1")]
    assert rows[0].scores["asr_test"] == [12.5, 25.0] and rows[0].mean("asr_test") == pytest.approx(18.75)
    assert rows[2].scores["asr_test"] == [0.0, None] and rows[1].scores["st_test"] == [None, 100.0]
    text = format_seed_table([one, two], ["seed 1", "seed 2"])
    assert "1. seed 1; 2. seed 2" in text and "### WER" in text and "### BLEU" in text
    assert "| ELF-S2T | asr_elf | flow4_g1_ctc | flow from noise | 18.75 (12.50, 25.00) | 12 (15, 10) |" in text
    assert "| whisper_base | transcribe_beam1 | Whisper's decoder | 0.00 (0.00, -) |" in text
    assert seed_table_main([str(one), str(two), "--out", str(tmp_path / "seeds.md")]) == 0
    assert (tmp_path / "seeds.md").read_text() == format_seed_table([one, two], [str(one), str(two)])
    assert seed_table_main([str(one), str(tmp_path / "nothing")]) == 1
    assert "nothing: no exp/ folder" in capsys.readouterr().err
    assert seed_table_main([str(one), str(two), "--labels", "x"]) == 2


def test_results_table_survives_bad_timing(tmp_path, caplog):
    _result_tree(tmp_path, "x", "flow4_g1_ctc", "s", {"a": "b"}, {"a": "b"}, "wer")
    (tmp_path / "exp/x/decode_flow4_g1_ctc/s/timing.json").write_text("{not json")
    with caplog.at_level("WARNING"):
        rows = collect_results(tmp_path)
    assert rows[0].rtfx is None and rows[0].steps == "4" and "timing.json" in caplog.text


def test_score_entry_point(tmp_path, capsys):
    from elfs2t.bin.score import main

    write_text(tmp_path / "ref", {"u1": "a b c d"})
    write_text(tmp_path / "hyp", {"u1": "a x c"})
    rc = main(["--hyp", str(tmp_path / "hyp"), "--ref", str(tmp_path / "ref"), "--metric", "wer",
               "--out-dir", str(tmp_path / "exp" / "m" / "decode_g1" / "s")])
    assert rc == 0 and "WER: 50.00 %" in capsys.readouterr().out
    assert main(["--results-table", str(tmp_path)]) == 0
    assert "|  | m | g1 |  |  | 1 |  | 50.00 |" in (tmp_path / "RESULTS.md").read_text()
    (tmp_path / "bad").write_text("u1 a\nu1 b\n")
    assert main(["--hyp", str(tmp_path / "bad"), "--ref", str(tmp_path / "ref"), "--out-dir", str(tmp_path / "o")]) == 1
    assert f"{tmp_path / 'bad'}:2: duplicate utterance id" in capsys.readouterr().err


def test_score_help_and_argument_errors(capsys):
    from elfs2t.bin.score import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--ref-target" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--hyp", "x"])
    assert exc.value.code == 2 and "--hyp, --ref and --out-dir go together" in capsys.readouterr().err


def test_whisper_en_without_mapping_warns(monkeypatch, caplog):
    import elfs2t.text.normalize as normalize

    monkeypatch.setattr(normalize, "SPELLING_MAPPING_RESOURCES", (("no_such_package_xyz", "english.json"),))
    with caplog.at_level("WARNING"):
        mapping, source = normalize.load_english_spelling_mapping()
    assert (mapping, source) == ({}, "none") and "no English spelling mapping found" in caplog.text
    assert normalize.get_normalizer("whisper_en")("The colour, um, is fine") == "the colour is fine"
    report, _ = score_texts({"u": "colour"}, {"u": "colour"}, ScoreConfig(normalizer="whisper_en"))
    assert report.normalizer == "whisper_en (spelling mapping: none)"


def test_empty_reference_side(tmp_path):
    report, _ = score_texts({"u": "..."}, {"u": "words here"}, ScoreConfig(metric="wer"))
    assert report.counts["WER"].ref_len == 0 and report.scores["WER"] == float("inf")
    report, _ = score_texts({"u": ""}, {"u": ""}, ScoreConfig(metric="wer"))
    assert report.scores["WER"] == 0.0
    write_text(tmp_path / "ref", {"u": "!"})
    write_text(tmp_path / "hyp", {"u": "x"})
    score_files(tmp_path / "hyp", tmp_path / "ref", tmp_path / "exp" / "a" / "decode_b" / "c", ScoreConfig())
    assert collect_results(tmp_path)[0].metrics["WER"] == float("inf")
