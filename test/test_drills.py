"""Bad-input drills (issue 22): each test does what a user did wrong, and checks the one-line error or the counted
skip -- and that nothing was lost. A new drill is a row in one of the tables, or a few lines with the helpers:

* ``RECIPE_DRILLS``: ``run.sh`` options that must stop the recipe with one line, before anything is written.
* ``ENTRY_POINT_CONFIG_ERRORS``: an entry point given a bad config value or option prints the message alone
  and exits 2 (:func:`one_line_error`).
* ``STAGE1_DRILLS``: a corpus row broken one way is skipped and counted by name in the stage-1 report.
* the rest: poisoned folders, stale stage outputs, over-long inputs, caching statistics and workers.

What held before these drills (a kill -9 during caching or training resumes bitwise; corrupt, empty, missing
audio counted) is tested next to the code (test_feature_cache, test_trainer, test_prepare_*).
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from lhotse import CutSet

from _train_fixtures import make_loader, make_model, optim_cfg, train_cfg
from feature_fixtures import make_feature_cuts
from conftest import ROOT, copy_recipe, make_librispeech_tree, process_alive, run, write_conf

PY = sys.executable


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def one_line_error(capsys, prog: str, fragment: str) -> str:
    """The captured stderr must end with one line ``<prog>: error: ...`` holding ``fragment``, without a traceback
    (progress bars of model loading may come before it); returns that line."""
    err = capsys.readouterr().err
    line = err.rstrip("\n").split("\n")[-1]
    assert line.startswith(f"{prog}: error: ") and fragment in line and "Traceback" not in err, err
    return line


# --------------------------------------------------------------------------------------------------------
# run.sh options (issue 22 items 1 and 6): one line on stderr, exit 1, nothing written
# --------------------------------------------------------------------------------------------------------
RECIPE_DRILLS = [
    # (recipe, arguments, the error line's fragment)
    ("mini_synth", ["--force", "yes", "--stage", "2"], "option --force expects true or false, got 'yes'"),
    ("mini_synth", ["--force", "no"], "option --force expects true or false, got 'no'"),
    ("librispeech", ["--download", "maybe"], "option --download expects true or false, got 'maybe'"),
    ("covost2", ["--stop-stage", "1", "stray"], "unexpected argument 'stray'"),
    ("TEMPLATE", ["--stage", "2", "--", "x"], "unexpected argument 'x' after '--'"),
    ("mini_synth", ["--stage", "9"], "--stage 9: there is no such stage (the stages are 0..7)"),
    ("librispeech", ["--stage", "3", "--stop-stage", "1"], "--stage 3 is after --stop-stage 1: no stage would run"),
    ("TEMPLATE", ["--nj", "2", "3"], "unexpected argument '3'"),
    ("TEMPLATE", ["--decode-opts", "decode.flow.steps=2;decode.flow.steps=4"],
     "--decode-opts 'decode.flow.steps=2;decode.flow.steps=4': one list of decode.* overrides"),
    ("mini_synth", ["--ar-decode-opts", "decode.beam=1;decode.beam=4"],
     "a conf/decode/<name>.yaml in --ar-decode-confs"),
]


@pytest.mark.parametrize("recipe,args,fragment", RECIPE_DRILLS, ids=[f"{r}:{' '.join(a)}" for r, a, _ in RECIPE_DRILLS])
def test_recipe_refuses_nonsense_options(tmp_path, recipe, args, fragment):
    folder = copy_recipe(recipe, tmp_path)
    before = _tree(folder)
    r = run(folder, *args, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr
    assert _tree(folder) == before  # no data/, exp/, marker or corpus started


@pytest.mark.slow  # python start-up for the encoder tag (~10 s)
def test_ngpu_without_a_gpu_is_one_line_naming_the_option(tmp_path, rand_whisper):
    """TEMPLATE's default --ngpu 1 on a CPU machine: one line naming --ngpu before stage 2 starts (was a CUDA
    traceback after stage 2 had written plan.json)."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    folder = copy_recipe("TEMPLATE", tmp_path)
    r = run(folder, "--stage", "2", "--encoder", str(rand_whisper), "--feat-mode", "trim", timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == ("cache_features: error: --ngpu 1: no CUDA device is visible on this "
                                                 "machine; use --ngpu 0 (the CPU)")
    assert not (folder / "dump").exists() and not (folder / "exp").exists()


# --------------------------------------------------------------------------------------------------------
# Entry points (item 6): a config error is its message alone, exit 2
# --------------------------------------------------------------------------------------------------------
def _bad_conf(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("model: elf_s2t\nelf: {denoiser: {dpeth: 3}}\n")
    return path


ENTRY_POINT_CONFIG_ERRORS = [
    # (module, argv ({tmp}: tmp_path, {root}: the checkout), the error's fragment)
    ("train", ["--conf", "{tmp}/bad.yaml", "--exp-dir", "{tmp}/exp"], "unknown config key(s) ['elf.denoiser.dpeth']"),
    ("fetch_elf", ["--conf", "{tmp}/bad.yaml"], "unknown config key(s) ['elf.denoiser.dpeth']"),
    ("fetch_elf", ["elf.feat_dim=3"], "overrides ['elf.feat_dim=3'] need --conf"),
    ("pretrain_text", ["--exp-dir", "{tmp}/exp", "--text", "{tmp}/t.txt", "model.nope=1"], "unknown config key(s)"),
    ("cache_features", ["--cuts", "{tmp}/c.jsonl.gz", "--out-dir", "{tmp}/o", "--batch-size", "0"], "batch_size=0"),
    ("cache_features", ["--cuts", "{tmp}/c.jsonl.gz", "--out-dir", "{tmp}/o", "--ngpu", "8", "--encoder",
                        "{root}/tools/models/whisper-tiny.en"], "--ngpu 8: "),
    ("score", ["--hyp", "{tmp}/h", "--ref", "{tmp}/h", "--out-dir", "{tmp}/o", "--conf", "{tmp}/bad.yaml"],
     "unknown config key(s)"),
    ("decode", ["--exp-dir", "{tmp}/exp", "--set", "a={tmp}/c.jsonl.gz", "--decode-conf", "{tmp}/bad_decode.yaml"],
     "bad_decode.yaml: unknown config key(s) ['decode.flow.stpes']"),
]


@pytest.mark.parametrize("module,argv,fragment", ENTRY_POINT_CONFIG_ERRORS,
                         ids=[f"{m}:{' '.join(a)[-30:]}" for m, a, _ in ENTRY_POINT_CONFIG_ERRORS])
def test_config_errors_are_one_line_and_exit_2(tmp_path, capsys, module, argv, fragment):
    import importlib

    if module == "cache_features" and "--ngpu" in argv and torch.cuda.device_count() >= 8:
        pytest.skip("this machine has 8 GPUs")
    _bad_conf(tmp_path)
    (tmp_path / "bad_decode.yaml").write_text("decode: {strategy: flow, flow: {stpes: 4}}\n")
    (tmp_path / "t.txt").write_text("a line\n")
    (tmp_path / "h").write_text("u1 a b\n")
    main = importlib.import_module(f"elfs2t.bin.{module}").main
    assert main([a.format(tmp=tmp_path, root=ROOT) for a in argv]) == 2
    one_line_error(capsys, module, fragment)
    assert not (tmp_path / "exp").exists() and not (tmp_path / "o").exists()


@pytest.mark.slow  # one python start-up
def test_config_error_from_the_command_line(tmp_path):
    """Under ``python -m`` too: the message, no traceback, status 2."""
    _bad_conf(tmp_path)
    r = subprocess.run([PY, "-m", "elfs2t.bin.train", "--conf", str(tmp_path / "bad.yaml"), "--exp-dir",
                        str(tmp_path / "exp")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("train: error: ")


# --------------------------------------------------------------------------------------------------------
# Stage 1 (item 3): each bad row counted by name, the rest kept
# --------------------------------------------------------------------------------------------------------
def _truncate_wav(path: Path) -> None:
    """Cut a PCM wav mid-data, keeping its header (which still declares the whole length)."""
    data = path.read_bytes()
    path.write_bytes(data[: 44 + (len(data) - 44) // 2])


def _truncate_flac(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _template_corpus(root: Path) -> Path:
    """TEMPLATE's example layout: ``<root>/dev/text`` + ``<root>/dev/wav/<id>.wav``, 3 good utterances."""
    wav = root / "dev" / "wav"
    wav.mkdir(parents=True)
    for i in range(3):
        sf.write(wav / f"s{i}-u.wav", 0.1 * np.sin(np.arange(18080) / (5 + i)), 16000, subtype="PCM_16")  # 1.13 s
    (root / "dev" / "text").write_text("".join(f"s{i}-u utterance number {i}\n" for i in range(3)))
    return root


def _template_truncated(root: Path) -> None:
    _truncate_wav(root / "dev" / "wav" / "s1-u.wav")  # header: 1.13 s, data: 0.57 s


def _template_duplicate(root: Path) -> None:
    with open(root / "dev" / "text", "a") as f:
        f.write("s1-u the same id again\n")


def _template_orphan(root: Path) -> None:
    sf.write(root / "dev" / "wav" / "s9-x.wav", np.zeros(1600), 16000)  # no text line names it


def _libri_truncated(corpus: Path) -> None:
    _truncate_flac(next(corpus.rglob("100-10-0001.flac")))


def _libri_duplicate(corpus: Path) -> None:
    trans = next(corpus.rglob("100-10.trans.txt"))
    trans.write_text(trans.read_text() + "100-10-0000 HELLO AGAIN\n")


def _libri_orphan(corpus: Path) -> None:
    folder = next(corpus.rglob("100-10.trans.txt")).parent
    sf.write(folder / "100-10-0007.flac", np.full(3200, 0.1, np.float32), 16000)


STAGE1_DRILLS = [
    # (corpus layout, break it, the reason counted, the example named, cuts kept)
    ("template", _template_truncated, "truncated_audio", "s1-u.wav", ["s0-u", "s2-u"]),
    ("template", _template_duplicate, "duplicate_id", "s1-u (dev/text:4; first at dev/text:2)",
     ["s0-u", "s1-u", "s2-u"]),
    ("template", _template_orphan, "audio_without_transcript", "s9-x.wav", ["s0-u", "s1-u", "s2-u"]),
    ("librispeech", _libri_truncated, "truncated_audio", "100-10-0001.flac", ["100-10-0000"]),
    ("librispeech", _libri_duplicate, "duplicate_id", "100-10-0000 (100-10.trans.txt:3; first at 100-10.trans.txt:1)",
     ["100-10-0000", "100-10-0001"]),
    ("librispeech", _libri_orphan, "audio_without_transcript", "100-10-0007.flac", ["100-10-0000", "100-10-0001"]),
]


@pytest.mark.parametrize("layout,breakage,reason,example,kept", STAGE1_DRILLS,
                         ids=[f"{lay}:{r}" for lay, _, r, _, _ in STAGE1_DRILLS])
def test_stage1_counts_bad_rows_by_name(tmp_path, layout, breakage, reason, example, kept):
    out = tmp_path / "m"
    if layout == "template":
        from elfs2t.bin.prepare_data import run_local

        corpus = _template_corpus(tmp_path / "corpus")
        breakage(corpus)
        sets = run_local(ROOT / "egs" / "TEMPLATE" / "local" / "prepare.py", corpus, out, nj=1)
        cuts, report_file = sets["dev"], out / "report_local.json"
    else:
        from elfs2t.data.librispeech import prepare_librispeech_cuts

        corpus = make_librispeech_tree(tmp_path, parts=("dev-clean",))
        breakage(corpus)
        cuts = prepare_librispeech_cuts(corpus, out, parts=["dev-clean"])["dev_clean"]
        report_file = out / "report_librispeech.json"
    assert sorted(c.id for c in cuts) == kept
    (report,) = json.loads(report_file.read_text())
    assert report["skipped"] == {reason: 1} and report["examples"][reason] == [example]
    assert report["kept"] == len(kept)
    if reason == "duplicate_id":  # the first row of the id is the one kept
        assert next(c for c in cuts if c.id == kept[0] or c.id == kept[1]).supervisions[0].text != "HELLO AGAIN"


def test_local_prepare_returning_a_duplicate_id_is_refused_by_name(tmp_path):
    from elfs2t.bin.prepare_data import run_local

    sf.write(tmp_path / "x.wav", np.full(1600, 0.1, np.float32), 16000)
    script = tmp_path / "prep.py"
    script.write_text(
        "from lhotse import CutSet, Recording\n"
        "from lhotse.supervision import SupervisionSegment\n"
        "def prepare(corpus_dir, output_dir, nj):\n"
        "    cuts = []\n"
        "    for _ in range(2):\n"
        "        cut = Recording.from_file(corpus_dir / 'x.wav').to_cut()\n"
        "        cut.supervisions = [SupervisionSegment(id='x', recording_id='x', start=0, duration=0.1, text='hi',\n"
        "                                               language='en')]\n"
        "        cuts.append(cut)\n"
        "    return {'dev': CutSet(cuts)}\n")
    with pytest.raises(ValueError, match="set 'dev', cut 'x': the id occurs more than once"):
        run_local(script, tmp_path, tmp_path / "m", nj=1)
    assert not (tmp_path / "m" / "cuts_dev.jsonl.gz").exists()


def test_truncated_wav_header_parsing_ignores_streams_and_odd_chunks(tmp_path):
    """WAVs written to a pipe declare no length (0 or 0xFFFFFFFF): not judged truncated."""
    from elfs2t.data.manifests import is_truncated

    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(1600), 16000, subtype="PCM_16")
    assert not is_truncated(path)
    data = bytearray(path.read_bytes())
    pos = data.index(b"data")
    for size in (0xFFFFFFFF, 0):
        data[pos + 4: pos + 8] = struct.pack("<I", size)
        path.write_bytes(bytes(data))
        assert not is_truncated(path)
    data[pos + 4: pos + 8] = struct.pack("<I", 1600 * 2 + 2)  # one sample more than the file holds
    path.write_bytes(bytes(data))
    assert is_truncated(path)


# --------------------------------------------------------------------------------------------------------
# Stale stage outputs (item 2): a marker records its inputs
# --------------------------------------------------------------------------------------------------------
STALE = f"""
set -euo pipefail
stage=0; stop_stage=100; force=false
. {ROOT}/utils/parse_options.sh
. {ROOT}/utils/stage.sh
if stage_begin 1 "data preparation" corpus.txt; then gzip -c corpus.txt > cuts.gz; stage_done 1; fi
if stage_begin 2 "feature caching" cuts.gz -- "mode=trim"; then zcat cuts.gz | wc -l > cached; stage_done 2; fi
"""


def test_changed_input_stops_a_done_stage_instead_of_skipping_it(tmp_path):
    (tmp_path / "t.sh").write_text(STALE)
    (tmp_path / "corpus.txt").write_text("".join(f"utt{i}\n" for i in range(18)))

    def sh(*args):
        return subprocess.run(["bash", "t.sh", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert sh().returncode == 0 and (tmp_path / "cached").read_text().strip() == "18"
    assert sh().stderr.count("already done") == 2  # nothing changed: both skipped
    with open(tmp_path / "corpus.txt", "a") as f:
        f.write("utt18\n")  # one more utterance
    r = sh("--stage", "1", "--stop-stage", "1", "--force")
    assert r.returncode == 0
    r = sh("--stage", "2")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "stage 2 (feature caching) was done with other inputs than now (changed: cuts.gz" in r.stderr
    assert "--force true" in r.stderr and (tmp_path / "cached").read_text().strip() == "18"  # nothing touched
    assert sh("--stage", "2", "--force").returncode == 0 and (tmp_path / "cached").read_text().strip() == "19"
    (tmp_path / "cuts.gz").write_bytes(subprocess.run(["gzip", "-c", "-n", str(tmp_path / "corpus.txt")],
                                                      capture_output=True).stdout)
    assert "already done" in sh("--stage", "2").stderr  # rewritten with the same content: not a change
    (tmp_path / "t.sh").write_text(STALE.replace("mode=trim", "mode=pad30"))
    assert "changed: setting mode;" in sh("--stage", "2").stderr  # a setting, named
    # a stage that only summarises earlier outputs (scoring, analysis) runs again instead of stopping
    (tmp_path / "t.sh").write_text(STALE.replace('stage_begin 2 "feature caching"',
                                                 'stage_begin --redo-when-changed 2 "feature caching"'))
    with open(tmp_path / "corpus.txt", "a") as f:
        f.write("utt19\n")
    assert sh("--stage", "1", "--stop-stage", "1", "--force").returncode == 0
    r = sh("--stage", "2")
    assert r.returncode == 0 and (tmp_path / "cached").read_text().strip() == "20"
    assert "stage 2 (feature caching): its inputs changed since it was done (changed: cuts.gz" in r.stderr
    assert "already done" in sh("--stage", "2").stderr  # its marker now records the new inputs


@pytest.mark.slow  # the librispeech recipe's stages 1-2 with a tiny Whisper, twice (~1 min)
def test_stage2_does_not_reuse_a_cache_of_other_cuts(tmp_path, rand_whisper):
    """The drill of issue 22: redo stage 1 with one more utterance; stage 2 without --force used to skip as
    'already done' and training read 2 cached cuts of a 3-cut manifest."""
    corpus = make_librispeech_tree(tmp_path / "db", parts=("train-clean-100", "dev-clean"))
    folder = copy_recipe("librispeech", tmp_path)
    args = ["--stop-stage", "2", "--train-parts", "train-clean-100", "--eval-parts", "dev-clean", "--nj", "1",
            "--ngpu", "0", "--encoder", str(rand_whisper), "--feat-mode", "trim", "--valid-set", "dev_clean"]
    r = run(folder, *args, LIBRISPEECH=str(corpus))
    assert r.returncode == 0, r.stderr
    cached = folder / "dump" / "whisper-rand_trim" / "train" / "cuts.jsonl.gz"
    assert len(CutSet.from_file(cached)) == 2
    trans = next(corpus.rglob("train-clean-100/**/*.trans.txt"))
    sf.write(trans.parent / "100-10-0002.flac", np.full(4800, 0.1, np.float32), 16000)
    trans.write_text(trans.read_text() + "100-10-0002 ONE MORE\n")
    r = run(folder, "--stage", "1", *args[2:], "--stop-stage", "1", "--force", "true", LIBRISPEECH=str(corpus))
    assert r.returncode == 0, r.stderr
    r = run(folder, "--stage", "2", *args, LIBRISPEECH=str(corpus))
    assert r.returncode == 1 and "changed: data/manifests/cuts_train.jsonl.gz" in r.stderr
    assert len(CutSet.from_file(cached)) == 2  # the old cache is still there, and was not used
    r = run(folder, "--stage", "2", *args, "--force", "true", LIBRISPEECH=str(corpus))
    assert r.returncode == 0, r.stderr
    assert len(CutSet.from_file(cached)) == 3


# --------------------------------------------------------------------------------------------------------
# A failed start never poisons its folder (item 5)
# --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_feats(tmp_path_factory):
    """Cached-feature cuts and a tiny ELF-S2T config over them (test_s2t_pipeline's)."""
    tmp = tmp_path_factory.mktemp("drills")
    texts = ["the cat sat", "a dog ran far", "the dog sat", "a cat ran", "the bird flew away", "a bird sat",
             " ".join(["word"] * 30)]  # the last: longer than the 8 text slots (dropped in training)
    make_feature_cuts(tmp / "feats", texts)
    conf = write_conf(tmp, tmp / "feats" / "cuts.jsonl.gz")
    return tmp, conf


def test_a_mistyped_data_path_leaves_no_config_behind(tiny_feats, tmp_path, capsys):
    from elfs2t.bin import train as train_bin

    _, conf = tiny_feats
    exp = tmp_path / "exp"
    assert train_bin.main(["--conf", str(conf), "--exp-dir", str(exp), "train.max_steps=1",
                           "data.train=[{cuts: dump/nowhere/cuts.jsonl.gz}]"]) == 1
    one_line_error(capsys, "train", "cuts manifest not found: dump/nowhere/cuts.jsonl.gz")
    assert not (exp / "config.yaml").exists()
    assert train_bin.main(["--conf", str(conf), "--exp-dir", str(exp), "train.max_steps=1"]) == 0  # the corrected run


def test_a_config_without_checkpoints_is_replaced_not_refused(tmp_path):
    from elfs2t.train.checkpoint import save_checkpoint
    from elfs2t.train.config import TrainConfig
    from elfs2t.train.exp_dir import ExpDirError, prepare_exp_dir

    exp = tmp_path / "exp"
    prepare_exp_dir(exp, TrainConfig(seed=1), argv=[])  # a run that died before its first checkpoint
    prepare_exp_dir(exp, TrainConfig(seed=2), argv=[])
    assert "seed: 2" in (exp / "config.yaml").read_text()
    save_checkpoint(exp, {"step": 1})
    with pytest.raises(ExpDirError, match="seed: 2 -> 3"):
        prepare_exp_dir(exp, TrainConfig(seed=3), argv=[])


def test_a_failed_caching_start_does_not_block_the_corrected_run(tmp_path, rand_whisper):
    """--ngpu 1 / a CUDA device on a CPU machine failed after plan.json was written; the corrected run was refused
    as 'made from other cuts or another encoder/mode/dtype'."""
    from elfs2t.features.cache import CacheConfig, CacheError, cache_features

    cuts = make_feature_cuts(tmp_path / "src", ["a b", "c d e"])
    for c in cuts:  # audio the encoder can read
        sf.write(tmp_path / f"{c.id}.wav", np.full(int(c.duration * 16000), 0.1, np.float32), 16000)
        c.recording.sources[0].source = str(tmp_path / f"{c.id}.wav")
    out = tmp_path / "dump" / "x"
    if not torch.cuda.is_available():
        with pytest.raises(Exception):
            cache_features(cuts, out, CacheConfig(encoder=str(rand_whisper), device="cuda"))
        assert (out / "plan.json").is_file()  # what the failed start left
    report = cache_features(cuts, out, CacheConfig(encoder=str(rand_whisper)))
    assert report.num_cuts == 2 and not report.skipped
    with pytest.raises(CacheError, match="holds 1 finished shard"):  # once something was made: refused
        cache_features(cuts, out, CacheConfig(encoder=str(rand_whisper), mode="pad30"))


def _fit(exp: Path, resume: bool, max_steps: int):
    from elfs2t.train.trainer import Trainer

    trainer = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=max_steps, save_every=2, keep_last=3), exp,
                      make_loader())
    return trainer.fit(resume=resume)


def test_no_resume_replaces_the_old_checkpoints(tmp_path):
    from elfs2t.train.checkpoint import list_checkpoints, load_latest

    exp = tmp_path / "exp"
    _fit(exp, resume=True, max_steps=6)
    assert [s for s, _ in list_checkpoints(exp)] == [2, 4, 6]
    _fit(exp, resume=False, max_steps=2)  # starts over: the old run's steps 4 and 6 must not survive
    assert [s for s, _ in list_checkpoints(exp)] == [2]
    (exp / "last.pt").write_bytes(b"damaged")
    with pytest.warns(RuntimeWarning, match="last.pt"):
        assert load_latest(exp)["step"] == 2  # the fallback finds the new run's, never the old run's step 6


def test_last_pt_does_not_share_damage_with_the_newest_checkpoint(tmp_path):
    from elfs2t.train.checkpoint import load_checkpoint, save_checkpoint

    newest = save_checkpoint(tmp_path, {"step": 3, "w": torch.ones(4)})
    assert os.stat(newest).st_ino != os.stat(tmp_path / "last.pt").st_ino
    with open(newest, "r+b") as f:  # damage in place (what a hard link would share)
        f.write(b"\0" * 64)
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["w"], torch.ones(4))


def test_a_partial_checkpoint_left_by_a_kill_is_removed_on_the_next_start(tmp_path):
    from elfs2t.train.checkpoint import list_checkpoints

    exp = tmp_path / "exp"
    _fit(exp, resume=True, max_steps=4)
    (exp / "checkpoint-6.pt.tmp").write_bytes(b"half a checkpoint")  # kill -9 during the write of step 6
    (exp / "last.pt.tmp").write_bytes(b"half a copy")
    summary = _fit(exp, resume=True, max_steps=4)  # a restart with nothing left to train: they go all the same
    assert summary["resumed"] and summary["step"] == 4 and not list(exp.glob("*.tmp"))
    assert _fit(exp, resume=True, max_steps=8)["step"] == 8 and [s for s, _ in list_checkpoints(exp)] == [4, 6, 8]


# --------------------------------------------------------------------------------------------------------
# Over-long inputs (item 7): dropped cuts listed; over-long references counted at decoding
# --------------------------------------------------------------------------------------------------------
def test_dropped_cuts_are_listed_in_the_exp_dir_and_counted_in_train_log(tiny_feats, tmp_path, caplog):
    from elfs2t.bin import decode as decode_bin
    from elfs2t.bin import train as train_bin

    tmp, conf = tiny_feats
    exp = tmp_path / "exp"
    assert train_bin.main(["--conf", str(conf), "--exp-dir", str(exp), "train.max_steps=2",
                           "data.max_utt_duration=0.7"]) == 0
    rows = [line.split("\t") for line in (exp / "dropped_cuts.tsv").read_text().splitlines()]
    assert rows[0] == ["set", "cut_id", "reason", "value", "limit"]
    assert rows[1:4] == [["train", "utt1", "too_long_audio", "0.80", "0.7"],  # "a dog ran far": 4 words, 0.8 s
                         ["train", "utt4", "too_long_audio", "0.80", "0.7"],
                         ["train", "utt6", "too_long_audio", "6.00", "0.7"]]
    assert [r[0] for r in rows[4:]] == ["valid"] * 3  # the validation set is the same manifest here
    log_text = (exp / "train.log").read_text()
    assert "training cuts: kept 4, dropped 3 (too_long_audio 3)" in log_text and "dropped_cuts.tsv" in log_text

    exp2 = tmp_path / "exp2"
    assert train_bin.main(["--conf", str(conf), "--exp-dir", str(exp2), "train.max_steps=2"]) == 0
    assert (exp2 / "dropped_cuts.tsv").read_text().splitlines()[1].split("\t")[:3] == ["train", "utt6", "too_long_text"]
    with caplog.at_level("WARNING"):
        assert decode_bin.main(["--exp-dir", str(exp2), "--set", f"dev={tmp}/feats/cuts.jsonl.gz",
                                "decode.flow.steps=1"]) == 0
    (out,) = exp2.glob("decode_*/dev")
    timing = json.loads((out / "timing.json").read_text())
    assert timing["refs_over_max_len"] == 1 and timing["max_text_tokens"] == 6
    assert len((out / "text").read_text().splitlines()) == 7  # still decoded (and scored)
    assert "dev: 1 reference(s) longer than the model's 6 text tokens (e.g. utt6)" in caplog.text


# --------------------------------------------------------------------------------------------------------
# Feature caching statistics and workers (item 8)
# --------------------------------------------------------------------------------------------------------
def _wav_cuts(tmp_path: Path, n: int = 4) -> CutSet:
    from lhotse import MonoCut, Recording, SupervisionSegment

    cuts = []
    for i in range(n):
        path = tmp_path / f"w{i}.wav"
        sf.write(path, 0.1 * np.sin(np.arange(8000 + 1600 * i) / 7), 16000)
        rec = Recording.from_file(path, recording_id=f"w{i}")
        sup = SupervisionSegment(id=f"w{i}", recording_id=rec.id, start=0, duration=rec.duration, text="x")
        cuts.append(MonoCut(id=f"w{i}", start=0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup]))
    return CutSet.from_cuts(cuts)


def test_stats_of_a_resumed_caching_run_describe_the_whole_set(tmp_path, rand_whisper):
    """All shards were finished (by workers that outlived a killed parent) but not merged: the resumed run encodes
    nothing, and its stats.json said 0 audio seconds and RTFx 0."""
    from elfs2t.features.cache import CacheConfig, cache_features

    cuts = _wav_cuts(tmp_path)
    out = tmp_path / "x"
    first = cache_features(cuts, out, CacheConfig(encoder=str(rand_whisper), shard_size=2))
    for name in ("cuts.jsonl.gz", "stats.json", ".done", "feats.scp", "failed.txt"):
        (out / name).unlink()
    again = cache_features(cuts, out, CacheConfig(encoder=str(rand_whisper), shard_size=2))
    stats = json.loads((out / "stats.json").read_text())
    assert again.num_encoded == 0 and stats["audio_seconds"] == pytest.approx(sum(c.duration for c in cuts))
    assert stats["audio_seconds"] == pytest.approx(first.audio_seconds) and stats["rtfx"] > 0
    assert stats["wall_seconds"] == pytest.approx(first.wall_seconds)


def _spawned_workers(pid: int) -> set[int]:
    """The multiprocessing ``spawn`` children of ``pid`` (not its resource tracker)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            for child in (task / "children").read_text().split():
                if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text():
                    out.add(int(child))
        except OSError:
            pass
    return out


@pytest.mark.slow  # three python start-ups (~30 s on 2 loaded cores)
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_caching_workers_do_not_outlive_a_killed_parent(tmp_path, rand_whisper):
    cuts = _wav_cuts(tmp_path, n=8)
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    parent = subprocess.Popen([PY, "-m", "elfs2t.bin.cache_features", "--cuts", str(tmp_path / "cuts.jsonl.gz"),
                               "--out-dir", str(tmp_path / "out"), "--encoder", str(rand_whisper), "--nj", "2",
                               "--shard-size", "1", "--num-threads", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        workers: set[int] = set()
        while time.time() < deadline and len(workers) < 2 and parent.poll() is None:
            workers = _spawned_workers(parent.pid)
            time.sleep(0.2)
        assert len(workers) >= 2, "the workers did not start"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 60
        while time.time() < deadline and any(process_alive(p) for p in workers):
            time.sleep(0.5)
        assert not any(process_alive(p) for p in workers), "a caching worker survived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.slow  # the TEMPLATE recipe's stage-4 start (two python start-ups)
def test_template_stage4_log_names_the_model_it_trains(tmp_path, rand_whisper):
    folder = copy_recipe("TEMPLATE", tmp_path)
    conf = folder / "conf" / "train_ar.yaml"
    conf.write_text(yaml.safe_dump({"model": "ar", "data": {"train": [], "valid": []}}))
    r = run(folder, "--stage", "4", "--stop-stage", "4", "--ngpu", "0", "--encoder", str(rand_whisper),
            "--feat-mode", "trim", "--conf", str(conf), timeout=180)
    assert "stage 4: training (model ar) -> exp/train_ar_whisper-rand_trim" in r.stderr, r.stderr
    assert "ELF-S2T" not in r.stderr
