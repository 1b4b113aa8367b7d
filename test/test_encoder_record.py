"""Features of another encoder, mode or dtype never meet a model silently (issue 22 item 4): stage 2 records its
encoder, training keeps the record, decoding and resumed training refuse features whose record differs -- with one
line -- and older folders are read from what they have (plan.json, the features' type)."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import espeak_cuts
from elfs2t.bin import audio_reliance as reliance_bin
from elfs2t.bin import decode as decode_bin
from elfs2t.bin import train as train_bin
from elfs2t.config import load_config
from elfs2t.experiment import ExperimentConfig
from elfs2t.features.cache import CacheConfig, cache_features
from elfs2t.features.record import (EncoderRecord, FeatureMismatchError, check_features, features_record,
                                    read_record, sets_record)
from elfs2t.features.whisper import WhisperFrontEnd
from elfs2t.inference.trained import experiment_encoder
from elfs2t.train.checkpoint import list_checkpoints

TEXTS = ["one two three", "the cat sat", "a dog ran"]
MINILM = Path(__file__).resolve().parents[1] / "tools" / "models" / "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def feats(rand_whisper, tmp_path_factory):
    """trim and pad30 features of the same utterances, from the same random Whisper (same width)."""
    root = tmp_path_factory.mktemp("rec")
    cuts = espeak_cuts(root / "wav", TEXTS)
    for mode in ("trim", "pad30"):
        cache_features(cuts, root / mode, CacheConfig(encoder=str(rand_whisper), mode=mode, batch_size=4))
    return root


def _train(root, exp, train_feats, *extra):
    conf = {
        "elf": {"text": {"name_or_path": str(MINILM), "max_len": 8},
                "denoiser": {"hidden": 16, "depth": 1, "heads": 2, "bottleneck": 8}, "feat_dim": 16, "stack": 2},
        "data": {"train": [{"cuts": str(train_feats / "cuts.jsonl.gz")}], "max_duration": 10.0, "num_buckets": 2},
        "optim": {"name": "adamw", "lr": 1e-3, "warmup_steps": 1},
        "train": {"max_steps": 2, "log_every": 1, "valid_every": 0, "save_every": 2, "progress": False},
        "decode": {"strategy": "flow", "flow": {"steps": 1}, "max_duration": 20},
    }
    (root / "train.yaml").write_text(yaml.safe_dump(conf))
    return train_bin.main(["--conf", str(root / "train.yaml"), "--exp-dir", str(exp), "--num-valid-examples", "0",
                           *extra])


def test_stage_2_and_training_record_the_encoder(feats, rand_whisper, tmp_path):
    trim, pad = read_record(feats / "trim" / "encoder.json"), read_record(feats / "pad30" / "encoder.json")
    assert (trim.tag, trim.mode, pad.tag, pad.mode) == ("whisper-rand_trim", "trim", "whisper-rand_pad30", "pad30")
    assert trim.fingerprint == pad.fingerprint == WhisperFrontEnd.from_pretrained(str(rand_whisper)).build().fingerprint
    assert trim.differences(pad) == ["tag", "mode"]
    exp = tmp_path / "exp"
    assert _train(tmp_path, exp, feats / "trim") == 0
    assert read_record(exp / "encoder.json") == trim
    runs = json.loads((exp / "run_info.json").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["git"]["commit"] and runs[0]["packages"]["torch"]
    assert runs[0]["hardware"]["cpu_count"] >= 1 and runs[0]["cwd"]
    assert json.loads((exp / "train_data.json").read_text())["num_cuts"] == 3


def test_decoding_refuses_features_of_another_mode(feats, tmp_path, capsys):
    """pad30 features into a model trained on trim features (same width): one line, exit 2, nothing decoded."""
    exp = tmp_path / "exp"
    assert _train(tmp_path, exp, feats / "trim") == 0
    capsys.readouterr()
    pad = feats / "pad30" / "cuts.jsonl.gz"
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"test={pad}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    fp = read_record(feats / "trim" / "encoder.json").fingerprint
    assert err[-1] == (f"decode: error: {pad}: features of whisper-rand_pad30 (dtype float32, weights {fp}), but "
                       f"{exp} was trained on whisper-rand_trim (dtype float32, weights {fp}) (tag, mode differ); cache "
                       f"them with the model's encoder (python -m elfs2t.bin.cache_features --encoder "
                       f"{read_record(feats / 'trim' / 'encoder.json').model} --mode trim --dtype float32)")
    assert not list(exp.glob("decode_*"))
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"test={feats / 'trim' / 'cuts.jsonl.gz'}"]) == 0

    # a folder from before the record: the encoder comes from its training features; pad30 is still refused
    (exp / "encoder.json").unlink()
    assert experiment_encoder(exp, load_config(ExperimentConfig, exp / "config.yaml")).tag == "whisper-rand_trim"
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"test={pad}"]) == 2


def test_audio_reliance_checks_every_set_before_the_first_runs(feats, tmp_path, capsys):
    """A good set first and pad30 features second: refused with one line, exit 2, and the first set not run."""
    exp = tmp_path / "exp"
    assert _train(tmp_path, exp, feats / "trim") == 0
    capsys.readouterr()
    trim, pad = feats / "trim" / "cuts.jsonl.gz", feats / "pad30" / "cuts.jsonl.gz"
    out = tmp_path / "reliance"
    assert reliance_bin.main(["--exp-dir", str(exp), "--set", f"good={trim}", "--set", f"bad={pad}",
                              "--out-dir", str(out), "--audio", "real", "--guidance", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"audio_reliance: error: {pad}: features of whisper-rand_pad30")
    assert not out.exists()


def test_resumed_training_refuses_features_of_another_encoder(feats, tmp_path, capsys):
    """The training features re-cached in pad30 mode at the same path: the resumed run stops with one line and
    changes nothing; a fresh run (--no-resume) may train on them."""
    data = tmp_path / "feats"
    shutil.copytree(feats / "trim", data)
    exp = tmp_path / "exp"
    assert _train(tmp_path, exp, data) == 0
    before = {p.name: p.stat().st_mtime_ns for p in exp.iterdir() if p.is_file()}
    shutil.rmtree(data)
    shutil.copytree(feats / "pad30", data)
    capsys.readouterr()
    assert _train(tmp_path, exp, data, "train.max_steps=4") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"train: error: the training features: features of whisper-rand_pad30 (dtype float32, "
                          f"weights ") and f"but {exp} was trained on whisper-rand_trim" in err
    assert {p.name: p.stat().st_mtime_ns for p in exp.iterdir() if p.is_file()} == before
    assert [s for s, _ in list_checkpoints(exp)] == [2]
    assert _train(tmp_path, exp, data, "--no-resume") == 0
    assert read_record(exp / "encoder.json").mode == "pad30"


def test_training_sets_must_share_one_encoder(feats):
    with pytest.raises(FeatureMismatchError, match=r"pad30/cuts.jsonl.gz: features of whisper-rand_pad30"):
        sets_record([feats / "trim" / "cuts.jsonl.gz", feats / "pad30" / "cuts.jsonl.gz"])


def test_records_of_older_folders(feats, tmp_path):
    """Without encoder.json: plan.json gives tag, mode and width; bare cuts give the features' type."""
    old = tmp_path / "old"
    shutil.copytree(feats / "pad30", old)
    (old / "encoder.json").unlink()
    rec = features_record(old / "cuts.jsonl.gz")
    assert (rec.tag, rec.mode, rec.hidden_size, rec.dtype, rec.fingerprint) == ("whisper-rand_pad30", "pad30", 16, None,
                                                                               None)
    (old / "plan.json").unlink()
    rec = features_record(old / "cuts.jsonl.gz")
    assert (rec.tag, rec.mode, rec.hidden_size) == ("whisper-rand_pad30", "pad30", 16)
    model = EncoderRecord(tag="whisper-rand_pad30", mode="pad30", dtype="float16", fingerprint="x")
    check_features(model, rec, model_where="m", feats_where="f")  # what the old record does not know is not compared
    with pytest.raises(FeatureMismatchError, match="dtype differs"):
        check_features(model, EncoderRecord(tag="whisper-rand_pad30", dtype="float32"), model_where="m", feats_where="f")
