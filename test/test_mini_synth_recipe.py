"""egs/mini_synth end to end (stages 0-7) on a tiny corpus with the shipped configs shrunk to a few steps:
every model (ELF-S2T, AR baseline, Whisper zero-shot), every task (ASR, S2TT, the joint model of both), the
generalisation sets, the comparison table and the analysis."""
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from lhotse import CutSet

from conftest import ROOT, copy_recipe, run


@pytest.mark.slow  # ~60 python start-ups, real tiny.en / base encoders, Whisper decoding (~11 min on 2 busy cores)
@pytest.mark.timeout(2400)  # recipe runs of up to 900 + 900 + 300 s: the suite's 900 s is too tight on a loaded machine
def test_mini_synth_stages_0_to_7(tmp_path):
    recipe = copy_recipe("mini_synth", tmp_path)
    os.symlink(ROOT / "tools", tmp_path / "tools")  # the configs name ../../tools/models/...
    (recipe / "conf" / "decode" / "flow2.yaml").write_text("decode: {strategy: flow, flow: {steps: 2}}\n")
    args = ["--num-train", "16", "--num-dev", "3", "--num-test", "3", "--num-test-unseen", "3", "--num-test-gen", "2",
            "--num-test-gen-unseen", "0", "--nj", "2", "--train-threads", "1", "--train-jobs", "2",
            "--models", "elf ar whisper", "--elf-init", "text",
            "--decode-confs", "conf/decode/flow2.yaml conf/decode/draft.yaml",  # the last: recorded
            "--ar-decode-confs", "conf/decode/beam1.yaml",
            "--decode-sets", "test test_unseen gen_test gen_test_unseen", "--whisper-sets", "test gen_test",
            "--noise-snrs", "5",
            "--train-opts", "train.max_steps=2 train.valid_every=0 train.save_every=2 train.log_every=1"]
    r = run(recipe, *args, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    exp = recipe / "exp"
    for task, metric in (("asr", "WER"), ("st", "BLEU")):
        for model in ("elf", "ar"):
            results = list((exp / f"{task}_{model}").glob(f"decode_*/{task}_test/result.txt"))
            assert results, (task, model)
        assert list(exp.glob(f"whisper_*/decode_*/{task}_test/result.txt")), task
    # --asr-decode-confs (default: the rescored draft and the flow at the fused draft's slots with g 1) decodes ASR
    # only, before the --decode-confs settings
    assert list((exp / "asr_elf").glob("decode_rescore*/asr_test/result.txt"))
    assert (exp / "asr_elf" / "decode_flow4_g1_ctc_beam4_lm0.5_b2_read0.3" / "asr_test" / "result.txt").is_file()
    assert not list((exp / "st_elf").glob("decode_rescore*")) and not list((exp / "st_elf").glob("decode_flow4*"))
    # the generalisation sets (seen voices only here: the unseen-voice one is skipped with a log line)
    for model in ("asr_elf", "asr_ar", "st_elf", "st_ar"):
        assert list((exp / model).glob("decode_*/*_gen_test/result.txt")), model
    assert not list(exp.glob("*/decode_*/*_gen_test_unseen")) and "skipping set asr_gen_test_unseen" in r.stderr
    assert (recipe / "corpus" / "gen" / "README.txt").is_file()
    # --noise-snrs 5: a white-noise copy of each test set (the same ids), cached, decoded and scored by every model
    manifests = recipe / "data" / "manifests"
    for task in ("asr", "st"):
        noisy = CutSet.from_file(manifests / f"cuts_{task}_test_snr5.jsonl.gz")
        assert [c.id for c in noisy] == [c.id for c in CutSet.from_file(manifests / f"cuts_{task}_test.jsonl.gz")]
        assert all(Path(c.recording.sources[0].source).parent.name == f"{task}_test_snr5" for c in noisy)
        for model in ("elf", "ar"):
            assert list((exp / f"{task}_{model}").glob(f"decode_*/{task}_test_snr5/result.txt")), (task, model)
    assert (exp / ".done" / "noise" / "asr_test_snr5" / "stage2").is_file()
    table = (exp / "results.md").read_text()
    for needle in ("asr_test", "st_test_unseen", "asr_gen_test", "st_gen_test", "st_test_snr5", "ELF-S2T", "AR",
                   "Whisper"):
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
    assert len(list(recipe.glob("dump/*/asr_train/cuts.jsonl.gz"))) == 1  # by the ASR encoder only, not S2TT's too
    reliance = list((exp / "asr_elf" / "analysis").rglob("reliance.md"))
    assert reliance and "zero" in reliance[0].read_text()
    # stage 5 recorded each model's own setting; elfs2t.load decodes the test audio with it as stage 5 did
    import elfs2t
    from elfs2t.inference.setting import read_setting
    from elfs2t.textfile import read_text

    for task in ("asr", "st"):  # the last --decode-confs; stage 4 wrote each ELF-S2T model's trigram of its texts
        assert read_setting(exp / f"{task}_elf")[0] == ["decode.strategy=draft"], task
        assert (exp / f"{task}_elf" / "ngram.json").is_file() and not (exp / f"{task}_ar" / "ngram.json").exists()
    assert read_setting(exp / "asr_ar")[1] == "beam1"
    flacs = sorted((recipe / "corpus" / "LibriSpeech" / "test-clean").rglob("*.flac"))
    got = {t.id: t.text for t in elfs2t.load(exp / "asr_elf").transcribe(flacs)}
    assert got == read_text(exp / "asr_elf" / f"decode_{read_setting(exp / 'asr_elf')[1]}" / "asr_test" / "text")

    # the joint task and the cascade added later: their own stages run, the finished ones of the other tasks are
    # skipped (their markers record the single tasks' inputs only; stage 7's analysis of every decode would stop
    # the run as stale, so this one ends at stage 6)
    r = run(recipe, *args, "--stage", "3", "--stop-stage", "6", "--tasks", "asr st joint cascade",
            "--mt-decode-opts", "sampler.steps=2", timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    for done in (r"stage 4 \(training \(asr, model elf_s2t\) -> exp/asr_elf\)", r"stage 5 \(decoding st_test by st_ar with beam1\)",
                 r"stage 5 \(Whisper zero-shot decoding \(asr st\) \[whisper\]\)"):
        assert re.search(f"{done}: already done", r.stderr), done
    for model in ("elf", "ar"):  # one experiment each, both tasks decoded with their task tokens
        cfg = yaml.safe_load((exp / f"joint_{model}" / "config.yaml").read_text())
        assert cfg[model]["tasks"] == ["asr", "st:en"], model
        assert [d["target"] for d in cfg["data"]["train"]] == ["transcript", "translation:en"]
        asr_de = sorted((exp / f"joint_{model}").glob("decode_*/asr_de_test"))
        assert asr_de and json.loads((asr_de[0] / "timing.json").read_text())["task"] == "asr", model
        assert "normalizer: strip_accents" in (asr_de[0] / "result.txt").read_text()  # MiniLM has no umlauts
        st = sorted((exp / f"joint_{model}").glob("decode_*/st_test/result.txt"))
        assert st and "BLEU" in st[0].read_text(), model
    assert read_setting(exp / "joint_elf")[0] == ["decode.strategy=draft"]  # the last --decode-confs, both tasks
    assert (recipe / "data" / "token_list" / "de_en" / "sp.model").is_file()
    assert list(exp.glob("whisper_*/decode_transcribe_de*/asr_de_test/result.txt"))
    # the cascade: the joint models' German transcripts (and the references) translated by the text ELF
    assert "training stopped by max_steps at step 2" in (exp / "mt_elf" / "train.log").read_text()
    for model in ("elf", "ar"):
        cascade = sorted((exp / f"cascade_{model}").glob("decode_*_mt/st_test/result.txt"))
        assert cascade and "BLEU" in cascade[0].read_text(), model
        assert json.loads((cascade[0].parent / "timing.json").read_text())["model"] == "cascade"
    assert "BLEU" in (exp / "mt_elf" / "decode_ref_mt" / "st_test" / "result.txt").read_text()
    table = (exp / "results.md").read_text()
    for needle in ("asr_de_test", "joint_elf", "joint_ar", "cascade_elf", "mt_elf"):
        assert needle in table, needle
    # run again with a second AR decoding config: the joint and cascade stages of ELF-S2T are skipped (their markers
    # record their inputs), and so is AR's first config; the new one decodes every AR experiment, and the scoring
    # and the cascade's translation of the German transcripts take in the new decodes
    r = run(recipe, *[a if a != "conf/decode/beam1.yaml" else "conf/decode/beam1.yaml conf/decode/beam4.yaml"
                      for a in args], "--stage", "5", "--stop-stage", "6", "--tasks", "asr st joint cascade",
            "--mt-decode-opts", "sampler.steps=2", timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    for tag, conf in (("joint_elf", "draft"), ("joint_ar", "beam1"), ("asr_ar", "beam1")):  # markers per set
        assert re.search(rf"stage 5 \(decoding \w+ by {tag} with {conf}\): already done", r.stderr), (tag, conf)
    assert "stage 6 (scoring asr_elf): already done" in r.stderr
    for again in ("stage 5: decoding asr_test by asr_ar with beam4", "stage 5: decoding st_test by joint_ar with beam4",
                  "stage 6 (scoring asr_ar): its inputs changed since it was done",
                  "stage 5 (translation of the joint models' German transcripts (and of the references) [cascade]): "
                  "its inputs changed"):
        assert again in r.stderr, again
    for model in ("asr_ar", "st_ar", "joint_ar"):
        assert sorted(d.name for d in (exp / model).glob("decode_*") if d.is_dir()) == ["decode_beam1", "decode_beam4"]
    assert read_setting(exp / "asr_ar")[1] == "beam4"  # the last config is the model's setting
    assert list((exp / "cascade_ar").glob("decode_beam4_mt/st_test/result.txt"))
    assert "beam4" in (exp / "results.md").read_text()
    timing = json.loads(next((exp / "asr_elf").glob("decode_*/asr_test/timing.json")).read_text())
    assert timing["num_utts"] == 3


def test_mini_synth_run_sh_options(tmp_path):
    """run.sh parses, documents every option in --help, and rejects an unknown --models entry early."""
    import re
    import subprocess

    run_sh = Path(__file__).resolve().parents[1] / "egs" / "mini_synth" / "run.sh"
    assert subprocess.run(["bash", "-n", str(run_sh)], capture_output=True).returncode == 0
    r = subprocess.run([str(run_sh), "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    head = run_sh.read_text().split("help_message=", 1)[0]
    options = [m.group(1).replace("_", "-") for m in re.finditer(r"^([a-z_][a-z0-9_]*)=", head, re.M)]
    assert {"models", "tasks", "ar-decode-opts", "asr-whisper", "st-whisper", "whisper-beam"} <= set(options)
    assert not [o for o in options if not re.search(rf"^\s+--{o}\b", r.stdout, re.M)]
    # the --models / --tasks checks come before any stage (in a copy: a regression would run stage 7 there)
    recipe = copy_recipe("mini_synth", tmp_path)
    bad = run(recipe, "--stage", "7", "--stop-stage", "7", "--models", "elf gpt")
    assert bad.returncode != 0 and "unknown model 'gpt'" in bad.stderr
    # two decoding configs of one experiment with one name would share its decode folder and stage-5 marker
    bad = run(recipe, "--stage", "7", "--stop-stage", "7", "--asr-decode-confs", "conf/decode/draft.yaml")
    assert bad.returncode != 0 and "--asr-decode-confs: two decoding configs named draft.yaml" in bad.stderr
    bad = run(recipe, "--stage", "7", "--stop-stage", "7", "--noise-snrs", "10 loud")
    assert bad.returncode != 0 and "--noise-snrs: 'loud' is no SNR in dB" in bad.stderr
    assert not (recipe / "exp" / ".done").exists()  # refused before any stage
