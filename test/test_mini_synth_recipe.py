"""egs/mini_synth end to end (stages 0-7) on a tiny corpus with the shipped configs shrunk to a few steps:
every model (ELF-S2T, AR baseline, Whisper zero-shot), both tasks, the comparison table and the analysis."""
import json
import os
from pathlib import Path

import pytest
from lhotse import CutSet

from test_recipe_skeleton import copy_recipe, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~25 python start-ups, real tiny.en / base encoders and Whisper decoding (~3-4 min)
def test_mini_synth_stages_0_to_7(tmp_path):
    recipe = copy_recipe("mini_synth", tmp_path)
    os.symlink(ROOT / "tools", tmp_path / "tools")  # the configs name ../../tools/models/...
    args = ["--num-train", "16", "--num-dev", "3", "--num-test", "3", "--num-test-unseen", "3", "--nj", "2",
            "--train-threads", "1", "--train-jobs", "2", "--models", "elf ar whisper", "--elf-init", "text", "--decode-opts", "decode.strategy=flow decode.flow.steps=2;decode.strategy=draft",
            "--ar-decode-opts", "decode.beam_size=1", "--decode-sets", "test test_unseen",
            "--train-opts", "train.max_steps=2 train.valid_every=0 train.save_every=2 train.log_every=1"]
    r = run(recipe, *args, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    exp = recipe / "exp"
    for task, metric in (("asr", "WER"), ("st", "BLEU")):
        for model in ("elf", "ar"):
            results = list((exp / f"{task}_{model}").glob(f"decode_*/{task}_test/result.txt"))
            assert results, (task, model)
        assert list(exp.glob(f"whisper_*/decode_*/{task}_test/result.txt")), task
    # --asr-decode-opts (default: the rescored draft) decodes ASR only, after the --decode-opts settings
    assert list((exp / "asr_elf").glob("decode_rescore*/asr_test/result.txt"))
    assert not list((exp / "st_elf").glob("decode_rescore*"))
    table = (exp / "results.md").read_text()
    for needle in ("asr_test", "st_test_unseen", "ELF-S2T", "AR", "Whisper"):
        assert needle in table, needle
    assert "WER" in r.stdout and "BLEU" in r.stdout  # the table is printed
    assert "training st_elf in the background" in r.stderr  # --train-jobs 2: both tasks at once
    assert "trained exp/st_elf" in (exp / "st_elf" / "train.out").read_text()
    assert (exp / "asr_elf" / "analysis" / "report.md").is_file()
    for model in ("elf", "ar"):  # the default speed perturbation: both ASR models train on both sets
        cfg = (exp / f"asr_{model}" / "config.yaml").read_text()
        assert "/asr_train/cuts.jsonl.gz" in cfg and "/asr_train_sp/cuts.jsonl.gz" in cfg, model
    sp_ids = [c.id for c in CutSet.from_file(recipe / "data" / "manifests" / "cuts_asr_train_sp.jsonl.gz")]
    assert len(sp_ids) == 16 and all(i.endswith(("_sp0.9", "_sp1.1")) for i in sp_ids)
    assert len(list(recipe.glob("dump/*/asr_train_sp/cuts.jsonl.gz"))) == 1
    reliance = list((exp / "asr_elf" / "analysis").rglob("reliance.md"))
    assert reliance and "zero" in reliance[0].read_text()
    # stage 5 recorded each model's own setting; elfs2t.load decodes the test audio with it as stage 5 did
    import elfs2t
    from elfs2t.inference.setting import read_setting
    from elfs2t.textfile import read_text

    assert read_setting(exp / "asr_elf")[0] == ["decode.strategy=rescore"]  # --asr-decode-opts' default
    assert read_setting(exp / "st_elf")[0] == ["decode.strategy=draft"] and read_setting(exp / "asr_ar")[1] == "beam1"
    flacs = sorted((recipe / "corpus" / "LibriSpeech" / "test-clean").rglob("*.flac"))
    got = {t.id: t.text for t in elfs2t.load(exp / "asr_elf").transcribe(flacs)}
    assert got == read_text(exp / "asr_elf" / f"decode_{read_setting(exp / 'asr_elf')[1]}" / "asr_test" / "text")
    # a re-run skips every finished stage (per model for stages 3-6)
    r = run(recipe, *args, "--stage", "3", timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "already done" in r.stderr
    timing = json.loads(next((exp / "asr_elf").glob("decode_*/asr_test/timing.json")).read_text())
    assert timing["num_utts"] == 3
