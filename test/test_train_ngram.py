"""python -m elfs2t.bin.train_ngram: an experiment's n-gram of its training texts, found by decoding (the draft's LM
fusion), carried by export and loaded with the exported model; a folder without training data is refused."""
import shutil

import pytest
import yaml

from conftest import SPOKEN
from elfs2t.bin import decode as decode_bin
from elfs2t.bin import export as export_bin
from elfs2t.bin import train_ngram as ngram_bin
from elfs2t.text.ngram import NgramLM

pytestmark = pytest.mark.slow  # the tiny trained model of conftest.py


def test_train_ngram_decode_and_export(tiny_asr, tmp_path, capsys):
    exp = tmp_path / "exp"
    shutil.copytree(tiny_asr.exp, exp)
    assert ngram_bin.main(["--exp-dir", str(exp), "--order", "2"]) == 0
    out = capsys.readouterr().out
    assert f"order 2, {len(SPOKEN)} training texts" in out and "floor over" in out
    lm = NgramLM.load(exp / "ngram.json")
    assert lm.order == 2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_asr.minilm))
    ids = tok(["the cat sat on the mat", "mat the on sat cat the"], add_special_tokens=False)["input_ids"]
    assert lm.sentence_logprob(ids[0]) > lm.sentence_logprob(ids[1]) + 5  # a training sentence, then shuffled
    assert ngram_bin.main(["--exp-dir", str(exp)]) == 0  # kept: a second run does not train it again
    assert "kept (already trained" in capsys.readouterr().out and NgramLM.load(exp / "ngram.json").order == 2

    fused = ["decode.strategy=draft", "decode.draft.beam=4", "decode.draft.lm_weight=0.5", "decode.draft.lm_bonus=1"]
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"train={tiny_asr.feats}", *fused]) == 0
    text = (exp / "decode_draft_beam4_lm0.5_b1" / "train" / "text").read_text().splitlines()
    assert len(text) == len(SPOKEN)

    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"train={tiny_asr.feats}", *fused,
                            "--record-setting"]) == 0
    folder = tmp_path / "exported"
    assert export_bin.main(["--exp-dir", str(exp), "--out", str(folder)]) == 0
    assert (folder / "ngram.json").read_text() == (exp / "ngram.json").read_text()
    import elfs2t

    model = elfs2t.load(folder)
    assert model.model.ngram is not None and model.model.ngram.order == 2


def test_train_ngram_refuses_a_folder_whose_training_set_is_gone(tiny_asr, tmp_path, capsys):
    exp = tmp_path / "exp"
    shutil.copytree(tiny_asr.exp, exp)
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    cfg["data"]["train"][0]["cuts"] = str(tmp_path / "gone" / "cuts.jsonl.gz")
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert ngram_bin.main(["--exp-dir", str(exp)]) == 1
    err = capsys.readouterr().err
    assert "its training set" in err and "gone/cuts.jsonl.gz (data.train) is not there" in err
    assert not (exp / "ngram.json").exists()
