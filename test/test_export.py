"""python -m elfs2t.bin.export: a portable folder (safetensors, no machine paths, frozen models by reference) that
elfs2t.load uses from any folder in a fresh process -- without unpickling -- with the experiment's hypotheses;
a frozen model with other weights is refused; the AR baseline exports too."""
import json
import os
import subprocess
import sys

import pytest
import yaml

import elfs2t
from conftest import RESCORE, ROOT
from elfs2t.bin import export as export_bin
from elfs2t.config import ConfigError

pytestmark = pytest.mark.slow  # the tiny model of conftest.py (real Whisper tiny.en features), a fresh process


@pytest.fixture(scope="module")
def exported(tiny_asr, tmp_path_factory):
    from elfs2t.bin import score as score_bin
    from elfs2t.inference.setting import read_setting

    scored = tiny_asr.exp / f"decode_{read_setting(tiny_asr.exp)[1]}" / "train"
    assert score_bin.main(["--hyp", str(scored / "text"), "--ref", str(scored / "ref"), "--metric", "wer",
                           "--out-dir", str(scored)]) == 0
    out = tmp_path_factory.mktemp("export") / "my_model"
    assert export_bin.main(["--exp-dir", str(tiny_asr.exp), "--out", str(out)]) == 0
    return out


def test_export_folder_holds_no_machine_paths(tiny_asr, exported):
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "config.yaml", "model.json", "model.safetensors"]
    for name in ("README.md", "config.yaml", "model.json"):
        text = (exported / name).read_text()
        assert str(tiny_asr.root) not in text and str(ROOT) not in text and "/tmp" not in text, name
    meta = json.loads((exported / "model.json").read_text())
    assert meta["weights"] == "EMA weights of step 40" and meta["tasks"] == ["asr"]
    assert meta["encoder"]["tag"] == "whisper-tiny.en_trim" and len(meta["encoder"]["fingerprint"]) == 16
    assert meta["frozen"]["elf.text.name_or_path"]["name"] == "all-MiniLM-L6-v2"
    assert meta["decode_setting"]["overrides"] == RESCORE
    cfg = yaml.safe_load((exported / "config.yaml").read_text())
    assert cfg["elf"]["text"]["name_or_path"] == "all-MiniLM-L6-v2" and cfg["data"]["train"] == []
    assert cfg["decode"]["strategy"] == "rescore" and cfg["decode"]["rescore"]["draws"] == 2  # the setting, applied
    readme = (exported / "README.md").read_text()
    assert f"| train | {meta['decode_setting']['tag']} (this model's setting) | " in readme  # its score
    assert 'elfs2t.load("my_model")' in readme and "steps: 40" in readme and "5 utterances" in readme


def test_exported_model_loads_elsewhere_in_a_fresh_process(tiny_asr, exported, tmp_path):
    """From another working directory, with torch.load and pickle disabled: the same hypotheses as the
    experiment folder gives (the frozen models found by name under tools/models)."""
    expected = [t.text for t in elfs2t.load(tiny_asr.exp).transcribe(tiny_asr.wavs)]
    script = (
        "import json, pickle, sys, torch\n"
        "def refuse(*a, **k): raise AssertionError('unpickling')\n"
        "torch.load = pickle.load = pickle.loads = refuse\n"
        "import elfs2t\n"
        f"model = elfs2t.load({str(exported)!r})\n"
        f"print(json.dumps([t.text for t in model.transcribe({[str(w) for w in tiny_asr.wavs]!r})]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.splitlines()[-1]) == expected


def test_a_frozen_model_with_other_weights_is_refused(tiny_asr, exported, tmp_path):
    """An encoder of the right shape but other weights (here: tiny.en with one tensor changed) is refused, naming
    both fingerprints; so is a text encoder folder with other weights."""
    import shutil

    from safetensors.torch import load_file, save_file

    other = tmp_path / "whisper-tiny.en"
    shutil.copytree(tiny_asr.encoder, other)
    weights = load_file(other / "model.safetensors")
    name = next(k for k in weights if "encoder.layers.0" in k and k.endswith("fc1.weight"))
    weights[name] = weights[name] * 1.01
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    meta = json.loads((exported / "model.json").read_text())
    from elfs2t.inference.model import build_encoder  # noqa: F401  (the check under test)

    with pytest.raises(ConfigError) as err:
        elfs2t.load(exported, encoder=str(other))
    fp = meta["encoder"]["fingerprint"]
    assert str(err.value).startswith(f"encoder {other}: its weights (fingerprint ")
    assert str(err.value).endswith(f"are not those the model was trained with ('whisper-tiny.en', fingerprint {fp})")

    text = tmp_path / "all-MiniLM-L6-v2"
    shutil.copytree(tiny_asr.minilm, text)
    weights = load_file(text / "model.safetensors")
    key = next(k for k in weights if k.endswith("embeddings.word_embeddings.weight"))
    weights[key] = weights[key] * 1.01
    save_file(weights, text / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ConfigError, match=r"elf.text.name_or_path .*all-MiniLM-L6-v2: its weights \(fingerprint "):
        elfs2t.load(exported, text_model=str(text))
    env_models = tmp_path  # ELFS2T_MODELS finds the (changed) copies by name before tools/models
    os.environ["ELFS2T_MODELS"] = str(env_models)
    try:
        with pytest.raises(ConfigError, match="its weights"):
            elfs2t.load(exported)
    finally:
        del os.environ["ELFS2T_MODELS"]


def test_ar_baseline_exports_with_its_tokenizer(tiny_asr, tmp_path):
    """An AR model (a fresh LM on its stage-3 SentencePiece vocabulary, as the recipes train it) exports its tokenizer
    and LM structure and decodes the same after loading the folder; beam n-best lists are ranked, the first one its
    text."""
    from elfs2t.bin import train as train_bin
    from text_fixtures import make_vocab

    vocab = make_vocab(tmp_path / "token_list", [c.supervisions[0].text for c in tiny_asr.cuts], vocab_size=60)
    conf = {
        "model": "ar",
        "ar": {"tokenizer": str(vocab), "layers": 1, "hidden": 32, "heads": 2, "feat_dim": 384, "stack": 4,
               "max_text_tokens": 12, "lowercase": True},
        "data": {"train": [{"cuts": str(tiny_asr.feats)}], "max_duration": 4.0, "num_buckets": 2},
        "optim": {"name": "adamw", "lr": 3e-3, "warmup_steps": 2, "ema_decay": 0.5},
        "train": {"max_steps": 6, "log_every": 3, "valid_every": 0, "save_every": 3, "progress": False},
        "decode": {"beam_size": 3, "max_new_tokens": 8, "max_duration": 20},
    }
    (tmp_path / "ar.yaml").write_text(yaml.safe_dump(conf))
    exp = tmp_path / "exp" / "asr_ar"
    assert train_bin.main(["--conf", str(tmp_path / "ar.yaml"), "--exp-dir", str(exp), "--num-valid-examples", "0"]) == 0
    assert export_bin.main(["--exp-dir", str(exp), "--out", str(tmp_path / "ar_model")]) == 0
    assert (tmp_path / "ar_model" / "lm" / "tokenizer.json").is_file()
    assert yaml.safe_load((tmp_path / "ar_model" / "config.yaml").read_text())["ar"]["tokenizer"] == "lm"
    a = elfs2t.load(exp).transcribe(tiny_asr.wavs[:3], nbest=3)
    b = elfs2t.load(tmp_path / "ar_model").transcribe(tiny_asr.wavs[:3], nbest=3)
    assert [t.text for t in a] == [t.text for t in b]
    for t in b:
        assert t.nbest[0].text == t.text and 1 <= len(t.nbest) <= 3
        scores = [h.score for h in t.nbest]
        assert scores == sorted(scores, reverse=True)
    with pytest.raises(ConfigError) as err:
        elfs2t.load(exp).transcribe(tiny_asr.wavs[0], word_times=True)
    assert str(err.value) == ("model=ar: has no alignment to time words with (CTM); ELF-S2T trained with the "
                              "auxiliary CTC (elf.ctc_weight > 0) has")
