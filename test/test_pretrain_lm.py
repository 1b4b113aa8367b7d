"""AR baseline path: stage-3 causal-LM pre-training (pretrain_lm), its HF output as ar.lm, and stages 4-6
of the AR model through the entry points (train, decode with timing annotations, results table row)."""
import json
from pathlib import Path

import pytest
import torch
import yaml

from elfs2t.bin import decode as decode_bin
from elfs2t.bin import pretrain_lm as pretrain_bin
from elfs2t.bin import score as score_bin
from elfs2t.bin import train as train_bin
from elfs2t.config import load_config
from elfs2t.models.ar import ArConfig, ArSpeechLM
from elfs2t.models.text_lm import PretrainLmConfig, TextLm, TextLmConfig
from elfs2t.results import collect_results, format_results_table
from elfs2t.train.exp_dir import ExpDirError
from feature_fixtures import make_feature_cuts

SENTENCES = ["the cat sat on the mat", "a dog ran home", "we didn't see the bird", "the bird flew away"]
TINY = ["model.layers=2", "model.hidden=32", "model.heads=2", "batch_size=4", "optim.name=adamw", "optim.lr=0.01",
        "optim.warmup_steps=1", "optim.ema_decay=0.5", "train.log_every=5", "train.valid_every=10",
        "train.save_every=10", "train.progress=false", "num_samples=2"]


@pytest.fixture(scope="module")
def lm_exp(tmp_path_factory):
    """A tiny LM pre-trained for 10 steps, then resumed to 30 (one module-wide run)."""
    tmp = tmp_path_factory.mktemp("lm")
    text = tmp / "train_text.txt"
    text.write_text("\n".join(SENTENCES * 4) + "\n")
    exp = tmp / "exp" / "lm_text"
    assert pretrain_bin.main(["--exp-dir", str(exp), "--text", str(text), *TINY, "train.max_steps=10"]) == 0
    first = json.loads((exp / "summary.json").read_text())
    assert pretrain_bin.main(["--exp-dir", str(exp), "--text", str(text), *TINY, "train.max_steps=30"]) == 0
    return tmp, text, exp, first


def test_encode_targets_by_hand(tmp_path):
    from elfs2t.models.ar import train_bpe_tokenizer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(train_bpe_tokenizer(SENTENCES, tmp_path / "tok", vocab_size=300)))
    lm = TextLm(TextLmConfig(layers=1, hidden=16, heads=2, lowercase=True), tok)
    inputs, targets = lm.encode(["A DOG ran home", "the cat"])
    ids = tok(["a dog ran home", "the cat"], add_special_tokens=False)["input_ids"]
    n = len(ids[0]) + 1
    assert inputs.shape == targets.shape == (2, n)
    assert inputs[0].tolist() == [lm.bos, *ids[0]] and targets[0].tolist() == [*ids[0], lm.eos]
    k = len(ids[1])
    assert inputs[1, : k + 1].tolist() == [lm.bos, *ids[1]] and (inputs[1, k + 1:] == lm.pad).all()
    assert targets[1, : k + 1].tolist() == [*ids[1], lm.eos] and (targets[1, k + 1:] == -100).all()
    loss, stats = lm({"text": ["a dog ran home", "the cat"]})
    assert stats["num_tokens"] == len(ids[0]) + len(ids[1]) + 2
    assert abs(stats["loss"] - torch.log(torch.tensor(float(len(tok)))).item()) < 1.0  # near-uniform at init


def test_pretraining_learns_resumes_and_writes_hf(lm_exp):
    _, _, exp, first = lm_exp
    summary = json.loads((exp / "summary.json").read_text())
    assert first["step"] == 10 and summary["step"] == 30  # the second run continued, it did not restart
    assert summary["train_loss"] < first["train_loss"]
    assert (exp / "tokenizer" / "tokenizer.json").is_file() and (exp / "hf" / "config.json").is_file()
    assert sorted(p.name for p in exp.glob("checkpoint-*.pt")) == ["checkpoint-20.pt", "checkpoint-30.pt"]
    log = (exp / "train.log").read_text()
    assert "training stopped by max_steps at step 10" in log and "training stopped by max_steps at step 30" in log
    # the exported LM holds the EMA weights of the last checkpoint
    state = torch.load(exp / "last.pt", map_location="cpu", weights_only=False)
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(exp / "hf")
    emb = hf.get_input_embeddings().weight
    assert torch.allclose(emb, state["ema"]["shadow"]["lm.model.embed_tokens.weight"])
    assert not torch.allclose(emb, state["model"]["lm.model.embed_tokens.weight"])


def test_hf_output_is_an_ar_lm(lm_exp):
    _, _, exp, _ = lm_exp
    model = ArSpeechLM(ArConfig(lm=str(exp / "hf"), feat_dim=8, stack=2, lowercase=True))
    assert model.count_tokens("we didn't see the bird") >= 1
    # the BPE round-trips the contraction exactly (the reason it is the default tokenizer)
    ids = model.tokenize(["we didn't see the bird"])[0]
    assert model.tokenizer.decode(ids) == "we didn't see the bird"


def test_no_resume_and_changed_config_are_refused(lm_exp, capsys):
    tmp, text, exp, _ = lm_exp
    assert pretrain_bin.main(["--exp-dir", str(exp), "--text", str(text), *TINY, "train.max_steps=30",
                              "--no-resume"]) == 1
    assert "already holds checkpoints" in capsys.readouterr().err
    assert pretrain_bin.main(["--exp-dir", str(exp), "--text", str(text), *TINY, "model.hidden=16"]) == 1
    assert "model.hidden" in capsys.readouterr().err
    assert pretrain_bin.main(["--exp-dir", str(tmp / "x"), "--text", str(tmp / "missing.txt"), *TINY]) == 1
    assert "missing.txt" in capsys.readouterr().err


def test_mini_synth_conf_matches_the_elf_backbone():
    root = Path(__file__).resolve().parents[1] / "egs" / "mini_synth" / "conf"
    lm = load_config(PretrainLmConfig, root / "pretrain_lm.yaml")
    elf = yaml.safe_load((root / "pretrain_text.yaml").read_text())
    den = elf["model"]["denoiser"]
    assert (lm.model.layers, lm.model.hidden, lm.model.heads) == (den["depth"], den["hidden"], den["heads"])
    assert lm.train.max_minutes == elf["train"]["max_minutes"] and lm.batch_size == elf["batch_size"]
    assert lm.optim.name == elf["optim"]["name"]


def test_ar_stages_4_to_6_through_entry_points(lm_exp, tmp_path):
    _, _, exp_lm, _ = lm_exp
    cuts = tmp_path / "feats" / "cuts.jsonl.gz"
    make_feature_cuts(tmp_path / "feats", SENTENCES)
    conf = {
        "model": "ar",
        "ar": {"lm": str(exp_lm / "hf"), "feat_dim": 8, "stack": 2, "lowercase": True, "max_text_tokens": 16},
        "data": {"train": [{"cuts": str(cuts)}], "valid": [{"cuts": str(cuts)}], "max_duration": 2.0, "num_buckets": 2},
        "optim": {"name": "adamw", "lr": 3e-3, "warmup_steps": 2},
        "train": {"max_steps": 6, "log_every": 2, "valid_every": 3, "save_every": 3, "progress": False},
        "decode": {"beam_size": 1, "max_new_tokens": 12, "max_duration": 2.0},
    }
    (tmp_path / "ar.yaml").write_text(yaml.safe_dump(conf))
    exp = tmp_path / "exp" / "asr_ar"
    assert train_bin.main(["--conf", str(tmp_path / "ar.yaml"), "--exp-dir", str(exp), "--num-valid-examples", "0"]) == 0
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"asr_test={cuts}", "decode.beam_size=2"]) == 0
    out = exp / "decode_beam2" / "asr_test"
    timing = json.loads((out / "timing.json").read_text())
    params = sum(p.numel() for p in ArSpeechLM(ArConfig(lm=str(exp_lm / "hf"), feat_dim=8, stack=2)).parameters())
    assert (timing["model"], timing["beam_size"], timing["params"], timing["train_step"]) == ("ar", 2, params, 6)
    assert score_bin.main(["--hyp", str(out / "text"), "--ref", str(out / "ref"), "--metric", "wer",
                           "--out-dir", str(out)]) == 0
    rows = collect_results(tmp_path)
    assert [(r.model, r.beam_size, r.set_name) for r in rows] == [("ar", "2", "asr_test")]
    assert rows[0].train_minutes is not None and rows[0].pretrain_minutes is not None  # from both train.logs
    assert "| AR | asr_ar | beam2 |" in format_results_table(rows)


def test_mini_synth_run_sh_options(tmp_path):
    """run.sh parses, documents every option in --help, and rejects an unknown --models entry early."""
    import re
    import subprocess

    from test_recipe_skeleton import copy_recipe, run

    run_sh = Path(__file__).resolve().parents[1] / "egs" / "mini_synth" / "run.sh"
    assert subprocess.run(["bash", "-n", str(run_sh)], capture_output=True).returncode == 0
    r = subprocess.run([str(run_sh), "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    head = run_sh.read_text().split("help_message=", 1)[0]
    options = [m.group(1).replace("_", "-") for m in re.finditer(r"^([a-z_][a-z0-9_]*)=", head, re.M)]
    assert {"models", "tasks", "ar-decode-opts", "asr-whisper", "st-whisper", "whisper-beam"} <= set(options)
    assert not [o for o in options if not re.search(rf"^\s+--{o}\b", r.stdout, re.M)]
    # the --models / --tasks checks come before any stage (in a copy, and stage 7 only reads exp/)
    bad = run(copy_recipe("mini_synth", tmp_path), "--stage", "7", "--models", "elf gpt", timeout=60)
    assert bad.returncode != 0 and "unknown model 'gpt'" in bad.stderr
