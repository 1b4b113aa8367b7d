"""Stages 4-6 through their entry points on tiny cached-feature sets: train, resume, decode, score."""
import json
import re

import pytest
import torch

from elfs2t.bin import decode as decode_bin
from elfs2t.bin import score as score_bin
from elfs2t.bin import train as train_bin
from conftest import MINILM, write_conf
from feature_fixtures import make_feature_cuts

TEXTS = ["the cat sat", "a dog ran far", "the dog sat", "a cat ran", "the bird flew away", "a bird sat"]


@pytest.fixture(scope="module")
def trained(module_tmp):
    tmp = module_tmp
    make_feature_cuts(tmp / "feats", TEXTS)
    conf = write_conf(tmp, tmp / "feats" / "cuts.jsonl.gz")
    exp = tmp / "exp" / "elf"
    assert train_bin.main(["--conf", str(conf), "--exp-dir", str(exp), "--num-valid-examples", "2"]) == 0
    return tmp, conf, exp


def test_training_writes_exp_dir(trained):
    _, _, exp = trained
    for name in ("config.yaml", "config.hash", "cmd.txt", "train.log", "last.pt"):
        assert (exp / name).exists(), name
    log = (exp / "train.log").read_text()
    assert "REF:" in log  # decoded dev examples in the log
    # validations log the WER of the configured strategy and of decode.valid_strategies (the learning curves)
    assert re.search(r"step 3 validation: .*examples_wer=[0-9.]+ wer_readout=[0-9.]+", log)


def test_word_spaces_of_the_trained_model(trained, caplog):
    from elfs2t.analysis.sources import load_spaces

    _, _, exp = trained
    with caplog.at_level("INFO", logger="elfs2t.analysis.sources"):
        spaces = load_spaces(exp, "some/encoder")  # ELF-S2T always uses its own latent space
    assert f"{exp}: ELF-S2T uses its own latent space {MINILM}; --text-space some/encoder is not used for it" \
        in caplog.text
    assert spaces.model_type == "elf_s2t" and spaces.token.source == "ELF token head unembedding U (d x V), step 6"
    assert spaces.latent.dim == spaces.token.dim  # the unembedding lives in the latent space


def test_unknown_valid_strategy_is_a_config_error():
    from elfs2t.config import ConfigError, structure
    from elfs2t.experiment import DecodeConfig

    with pytest.raises(ConfigError, match=r"^valid_strategies=\['mask'\]: must be among"):
        structure(DecodeConfig, {"valid_strategies": ["mask"]})


def test_rerun_resumes_and_config_change_is_refused(trained, capsys):
    tmp, conf, exp = trained
    # finished run: a re-run resumes at max_steps and does nothing more
    assert train_bin.main(["--conf", str(conf), "--exp-dir", str(exp)]) == 0
    assert sorted(p.name for p in exp.glob("checkpoint-*.pt")) == ["checkpoint-3.pt", "checkpoint-6.pt"]
    assert train_bin.main(["--conf", str(conf), "--exp-dir", str(exp), "elf.denoiser.depth=3"]) == 1
    assert "elf.denoiser.depth: 2 -> 3" in capsys.readouterr().err


def test_decode_and_score(trained):
    tmp, _, exp = trained
    cuts = tmp / "feats" / "cuts.jsonl.gz"
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"dev={cuts}", "decode.flow.steps=1"]) == 0
    out = exp / "decode_flow1_g1.5_prior" / "dev"
    hyps = (out / "text").read_text().splitlines()
    assert len(hyps) == len(TEXTS)
    assert json.loads((out / "timing.json").read_text())["num_utts"] == len(TEXTS)
    assert score_bin.main(["--hyp", str(out / "text"), "--ref", str(out / "ref"), "--metric", "all",
                           "--out-dir", str(out)]) == 0
    assert "WER" in (out / "result.txt").read_text()


def test_a_named_decode_config_decodes_as_its_overrides_do(trained, capsys):
    """--decode-conf conf/decode/<name>.yaml: the same decoding, tag and recorded setting as its decode.* overrides
    on the command line; command-line overrides go after the file's; an unknown key is one line naming it, exit 2."""
    tmp, _, exp = trained
    cuts = tmp / "feats" / "cuts.jsonl.gz"
    conf = tmp / "flow1.yaml"
    conf.write_text("decode:\n  strategy: flow\n  flow: {steps: 1, guidance: 3}\n")
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"dev={cuts}", "decode.strategy=flow",
                            "decode.flow.steps=1", "decode.flow.guidance=1"]) == 0
    plain = (exp / "decode_flow1_g1_prior" / "dev" / "text").read_text()
    (exp / "decode_flow1_g1_prior" / "dev" / "text").unlink()
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"dev={cuts}", "--decode-conf", str(conf),
                            "decode.flow.guidance=1", "--record-setting"]) == 0
    assert (exp / "decode_flow1_g1_prior" / "dev" / "text").read_text() == plain
    from elfs2t.inference.setting import read_setting

    assert read_setting(exp) == (["decode.strategy=flow", "decode.flow.steps=1", "decode.flow.guidance=3",
                                  "decode.flow.guidance=1"], "flow1_g1_prior")
    (exp / "decode_setting.yaml").unlink()  # the module's other tests decode with the config's own setting
    capsys.readouterr()
    conf.write_text("decode: {strategy: flow, flow: {stpes: 1}}\n")
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"dev={cuts}", "--decode-conf", str(conf)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"decode: error: {conf}: unknown config key(s) ['decode.flow.stpes']") and err.count("\n") == 1


def test_decode_refuses_model_overrides(trained, capsys):
    tmp, _, exp = trained
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"dev={tmp}/feats/cuts.jsonl.gz", "elf.stack=4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("decode: error: only decode.* keys can be overridden") and err.count("\n") == 1


def test_a_training_run_repeats_itself_from_its_seed(trained):
    """train.seed fixes the initial weights (and with them, on a step budget, the whole run): two runs of one
    config end with identical weights; another seed starts elsewhere."""
    from elfs2t.train.checkpoint import load_checkpoint

    tmp, conf, _ = trained

    def weights(name, *overrides):
        exp = tmp / "exp" / name
        assert train_bin.main(["--conf", str(conf), "--exp-dir", str(exp), "train.max_steps=2", *overrides]) == 0
        return load_checkpoint(exp / "last.pt")["model"]

    first, again, other = weights("seed_a"), weights("seed_b"), weights("seed_c", "train.seed=5")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
