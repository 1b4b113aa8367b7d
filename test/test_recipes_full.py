"""egs/librispeech and egs/covost2 stages 1-6 end to end on tiny fixture corpora with tiny local models (a random
Whisper, the MiniLM latent space, a tiny released-format ELF checkpoint), the shipped paper configs shrunk by
--train-opts overrides; every run.sh option documented in --help; stage 3 offline with a hub id fails clearly."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from lhotse import CutSet

from elfs2t.bin import fetch_elf
from conftest import ROOT, copy_recipe, make_covost_tree, make_librispeech_tree, run

MINILM = ROOT / "tools" / "models" / "all-MiniLM-L6-v2"
FEAT_DIM = 64
TINY_DENOISER = dict(hidden=32, depth=2, heads=2, bottleneck=16)


@pytest.fixture(scope="module")
def tiny_models(module_tmp):
    """A random 2-layer Whisper (d_model 64, 80 mel bins) and a released-format ELF checkpoint of a tiny
    denoiser over the MiniLM latent space (``checkpoint_<step>`` files holding ``ema_params1``)."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser
    from elfs2t.text.latent import TextLatentConfig, TextLatentSpace

    root = module_tmp
    cfg = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=FEAT_DIM, encoder_layers=2, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
                        decoder_ffn_dim=128, pad_token_id=0, bos_token_id=1, eos_token_id=1, decoder_start_token_id=2)
    torch.manual_seed(0)
    whisper = root / "whisper-rand64"
    WhisperModel(cfg).save_pretrained(whisper)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(whisper)

    space = TextLatentSpace(TextLatentConfig(name_or_path=str(MINILM), max_len=16))
    den = ElfDenoiser(DenoiserConfig(latent_dim=space.dim, vocab_size=space.vocab_size, **TINY_DENOISER))
    elf = root / "elf-tiny"
    elf.mkdir()
    params = {n: p.detach() for n, p in den.named_parameters()}  # a released checkpoint holds parameters only
    torch.save({"ema_params1": params, "params": params}, elf / "checkpoint_5")
    torch.save({"ema_params1": params}, elf / "checkpoint_20")  # the highest step is taken
    return {"whisper": whisper, "elf": elf}


def tiny_train_opts() -> str:
    """The paper config (conf/train.yaml) shrunk to CPU size: MiniLM latents, a 2-layer denoiser, 3 steps."""
    den = " ".join(f"elf.denoiser.{k}={v}" for k, v in TINY_DENOISER.items())
    return (f"elf.text.name_or_path={MINILM} elf.text.max_len=16 {den} elf.feat_dim={FEAT_DIM} elf.stack=2 "
            "data.max_duration=2 data.num_buckets=2 train.max_steps=3 train.log_every=1 train.valid_every=0 "
            "train.save_every=3 train.num_workers=0 train.pin_memory=false train.progress=false "
            "optim.warmup_steps=1")


def tiny_ar_opts() -> str:
    """The AR baseline's config (conf/train_ar.yaml) shrunk to CPU size: a 1-layer LM of width 32, 3 steps."""
    return ("ar.layers=1 ar.hidden=32 ar.heads=2 ar.feat_dim=64 ar.stack=2 data.max_duration=2 "
            "data.num_buckets=2 train.max_steps=3 train.log_every=1 train.valid_every=0 train.save_every=3 "
            "train.num_workers=0 train.pin_memory=false train.progress=false optim.warmup_steps=1")


def common_args(models) -> list[str]:
    return ["--nj", "1", "--ngpu", "0", "--encoder", str(models["whisper"]), "--feat-mode", "trim",
            "--feat-batch-size", "2", "--elf-init", str(models["elf"]), "--train-opts", tiny_train_opts(),
            "--decode-opts", "decode.flow.steps=2 decode.max_duration=5"]


def hyp_ids(path: Path) -> list[str]:
    return sorted(line.split(maxsplit=1)[0] for line in path.read_text().splitlines() if line.strip())


@pytest.mark.slow  # ~10 python start-ups, feature caching, 3 training steps, decoding, scoring (~50 s)
def test_librispeech_stages_1_to_7(tmp_path, tiny_models):
    corpus = make_librispeech_tree(tmp_path / "db", parts=("train-clean-100", "dev-clean", "test-clean"))
    recipe = copy_recipe("librispeech", tmp_path)
    args = ["--stage", "1", "--stop-stage", "7", "--train-parts", "train-clean-100",
            "--eval-parts", "dev-clean test-clean", "--speed-perturb", "0.9 1.1", *common_args(tiny_models)]
    r = run(recipe, *args, LIBRISPEECH=str(corpus), HF_HUB_OFFLINE="1")
    assert r.returncode == 0, r.stderr[-4000:]

    tag = "whisper-rand64_trim"
    for s in ("train", "train_sp", "dev_clean", "test_clean"):
        assert (recipe / "dump" / tag / s / "cuts.jsonl.gz").is_file()
    train_ids = [c.id for c in CutSet.from_file(recipe / "dump" / tag / "train" / "cuts.jsonl.gz")]
    sp_ids = [c.id for c in CutSet.from_file(recipe / "dump" / tag / "train_sp" / "cuts.jsonl.gz")]
    assert sorted(sp_ids) == sorted(f"{i}_sp{f}" for i in train_ids for f in ("0.9", "1.1"))  # --per-cut all
    exp = recipe / "exp" / f"train_{tag}_sp"  # the speed-perturbed experiment has a tag of its own
    fetched = json.loads((recipe / "exp" / f"elf_train_{tag}_sp" / "fetch.json").read_text())
    assert fetched["file"].endswith("checkpoint_20") and fetched["loaded"] > 0
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    assert cfg["init"]["denoiser"] == str(tiny_models["elf"])
    assert cfg["data"]["train"] == [
        {"cuts": f"dump/{tag}/train/cuts.jsonl.gz", "target": "transcript", "task": None},
        {"cuts": f"dump/{tag}/train_sp/cuts.jsonl.gz", "target": "transcript", "task": None}]
    assert cfg["data"]["valid"][0]["cuts"] == f"dump/{tag}/dev_clean/cuts.jsonl.gz"
    # the paper settings that the overrides leave alone
    assert cfg["elf"]["flow"]["mu_dec"] == -0.5 and cfg["elf"]["flow"]["p_drop"] == 0.1
    assert cfg["optim"]["name"] == "muon" and cfg["optim"]["lr"] is None and cfg["optim"]["lr_per_256"] == 1e-3
    assert cfg["train"]["dtype"] == "auto" and cfg["decode"]["flow"]["guidance"] == 2.0
    (decode,) = [d for d in exp.glob("decode_*") if d.is_dir()]  # not decode_setting.yaml
    assert decode.name == "decode_flow2_g2_prior"
    for s, part_spk in (("dev_clean", 101), ("test_clean", 102)):
        assert hyp_ids(decode / s / "text") == [f"{part_spk}-10-0000", f"{part_spk}-10-0001"]
        assert re.search(r"^WER:\s*[0-9.]+", (decode / s / "result.txt").read_text(), re.M)
    table = (recipe / "RESULTS.md").read_text()
    assert f"train_{tag}_sp" in table and "test_clean" in table and "dev_clean" in table and "WER" in table

    # stage 7: the error analysis of both decoded sets, the audio reliance of the first
    report = (exp / "analysis" / "report.md").read_text()
    assert "dev_clean" in report and "test_clean" in report
    assert (exp / "analysis" / "audio_reliance" / "dev_clean" / "reliance.md").is_file()

    r = run(recipe, *args, LIBRISPEECH=str(corpus), HF_HUB_OFFLINE="1")  # re-run: every stage skipped (stage 5 per set)
    assert r.returncode == 0 and len(re.findall(r"already done", r.stderr)) == 8, r.stderr[-2000:]

    # the AR baseline's stage 3: the SentencePiece vocabulary of the lower-cased training transcripts
    r = run(recipe, "--stage", "3", "--stop-stage", "3", "--model", "ar", "--ar-vocab-size", "60", *args[4:],
            LIBRISPEECH=str(corpus), HF_HUB_OFFLINE="1")
    assert r.returncode == 0, r.stderr[-4000:]
    vocab = recipe / "data" / "token_list" / "train_bpe60"
    text = (recipe / "data" / "token_list" / "train_bpe60.txt").read_text()
    assert (vocab / "sp.model").is_file() and text == text.lower() and text.strip()


@pytest.mark.slow  # st, source asr on the same features, the joint AR and ELF-S2T (~2 min)
def test_covost2_stages_1_to_6_st_and_source_asr(tmp_path, tiny_models):
    cv_dir, tsv = make_covost_tree(tmp_path / "db")
    # a second dev clip: the training-time validation loader needs as many cuts as sampler buckets (2)
    shutil.copy(cv_dir / "clips" / "d.mp3", cv_dir / "clips" / "e.mp3")
    with open(cv_dir / "validated.tsv", "a") as f:
        f.write("spk_1\te.mp3\tDanke schön.\t2\t0\t\t\t\n")
    with open(tsv, "a") as f:
        f.write("e.mp3\tDanke schön.\tThank you.\tspk_1\tdev\n")
    recipe = copy_recipe("covost2", tmp_path)
    env = dict(COMMONVOICE=str(cv_dir.parent), COVOST=str(tsv.parent), HF_HUB_OFFLINE="1")
    args = ["--src-lang", "de", "--tgt-lang", "en", *common_args(tiny_models)]
    r = run(recipe, "--stage", "1", "--stop-stage", "6", *args, **env)
    assert r.returncode == 0, r.stderr[-4000:]
    tag = "whisper-rand64_trim"
    exp = recipe / "exp" / f"de_en_st_train_{tag}"
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    assert cfg["data"]["train"] == [
        {"cuts": f"dump/{tag}/de_en_train/cuts.jsonl.gz", "target": "translation:en", "task": None}]
    (decode,) = [d for d in exp.glob("decode_*") if d.is_dir()]
    assert hyp_ids(decode / "de_en_test" / "text") == ["d"] and hyp_ids(decode / "de_en_dev" / "text") == ["c", "e"]
    assert (decode / "de_en_test" / "ref").read_text().split(maxsplit=1)[1].strip() == "How are you?"
    result = (decode / "de_en_test" / "result.txt").read_text()
    assert re.search(r"^BLEU:", result, re.M) and re.search(r"^chrF:", result, re.M)

    # source-language ASR on the same cached features plus speed-perturbed copies: stage 2 runs again for the
    # copies alone (its marker is per encoder tag and perturbation), then a separate experiment, scored with WER
    r = run(recipe, "--stage", "2", "--stop-stage", "6", "--task", "asr", "--speed-perturb", "1.1", *args, **env)
    assert r.returncode == 0, r.stderr[-4000:]
    sp = [c.id for c in CutSet.from_file(recipe / "dump" / tag / "de_en_train_sp" / "cuts.jsonl.gz")]
    train = [c.id for c in CutSet.from_file(recipe / "dump" / tag / "de_en_train" / "cuts.jsonl.gz")]
    assert sorted(sp) == sorted(f"{i}_sp1.1" for i in train)
    asr = recipe / "exp" / f"de_en_asr_train_{tag}_sp"
    assert yaml.safe_load((asr / "config.yaml").read_text())["data"]["train"] == [
        {"cuts": f"dump/{tag}/de_en_train/cuts.jsonl.gz", "target": "transcript", "task": None},
        {"cuts": f"dump/{tag}/de_en_train_sp/cuts.jsonl.gz", "target": "transcript", "task": None}]
    (decode,) = [d for d in asr.glob("decode_*") if d.is_dir()]
    assert (decode / "de_en_test" / "ref").read_text().split(maxsplit=1)[1].strip() == "Wie geht es?"
    assert re.search(r"^WER:", (decode / "de_en_test" / "result.txt").read_text(), re.M)
    table = (recipe / "RESULTS.md").read_text()
    assert f"de_en_st_train_{tag}" in table and f"de_en_asr_train_{tag}_sp" in table and "BLEU" in table

    # one model for both tasks with task tokens: the AR baseline (stage 3: the SentencePiece vocabulary of both
    # targets) and ELF-S2T (stage 4 only: the same overrides, elf.tasks); the translation decoded as <set>, the
    # transcript as <set>_asr
    swap = {tiny_train_opts(): tiny_ar_opts(), "decode.flow.steps=2 decode.max_duration=5": "decode.beam_size=2 "
            "decode.max_new_tokens=8 decode.max_duration=5"}
    assert set(swap) <= set(args), "common_args changed: update the AR swap"
    ar_args = [swap.get(a, a) for a in args]
    r = run(recipe, "--stage", "3", "--stop-stage", "6", "--model", "ar", "--task", "joint", "--ar-vocab-size", "40",
            *ar_args, **env)
    assert r.returncode == 0, r.stderr[-4000:]
    vocab = recipe / "data" / "token_list" / "de_en_joint_bpe40"
    assert (vocab / "sp.model").is_file() and json.loads((vocab / "subword.json").read_text())["lines"] == 4
    joint = recipe / "exp" / f"de_en_joint_train_ar_{tag}"
    cfg = yaml.safe_load((joint / "config.yaml").read_text())
    assert cfg["model"] == "ar" and cfg["ar"]["tasks"] == ["asr", "st:en"] and cfg["ar"]["tokenizer"] == str(
        vocab.relative_to(recipe))
    assert [d["target"] for d in cfg["data"]["train"]] == ["transcript", "translation:en"]
    (decode,) = [d for d in joint.glob("decode_*") if d.is_dir()]
    assert (decode / "de_en_test_asr" / "ref").read_text().split(maxsplit=1)[1].strip() == "Wie geht es?"
    assert (decode / "de_en_test" / "ref").read_text().split(maxsplit=1)[1].strip() == "How are you?"
    assert re.search(r"^WER:", (decode / "de_en_test_asr" / "result.txt").read_text(), re.M)
    assert re.search(r"^BLEU:", (decode / "de_en_test" / "result.txt").read_text(), re.M)
    r = run(recipe, "--stage", "4", "--stop-stage", "4", "--task", "joint", *args, **env)
    assert r.returncode == 0, r.stderr[-4000:]
    cfg = yaml.safe_load((recipe / "exp" / f"de_en_joint_train_{tag}" / "config.yaml").read_text())
    assert cfg["elf"]["tasks"] == ["asr", "st:en"] and len(cfg["data"]["valid"]) == 2

    r = run(recipe, "--task", "mt", "--stage", "4", *args, **env)
    assert r.returncode == 1 and "--task must be st, asr or joint" in r.stderr
    r = run(recipe, "--model", "gpt", "--stage", "4", *args, **env)
    assert r.returncode == 1 and "--model must be elf or ar" in r.stderr


@pytest.mark.slow  # a new recipe from egs/TEMPLATE, its example local/prepare.py layout, every stage (~2 min)
def test_new_recipe_from_template_stages_1_to_7(tmp_path, tiny_models):
    """Every stage of a recipe made from egs/TEMPLATE with ELF-S2T and the AR baseline; a decoding config added
    after stage 5 is decoded alone and scored and analysed with the first; a decoding config with an unknown key
    stops stage 5 with one line naming it."""
    from elfs2t.inference.setting import read_setting

    egs = tmp_path / "egs"
    r = subprocess.run([str(ROOT / "utils" / "new_recipe.sh"), "--egs-dir", str(egs), "my_corpus"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    recipe = egs / "my_corpus"
    corpus = tmp_path / "corpus"  # the template's example layout: <split>/text + <split>/wav/<utt>.wav
    for split, texts in (("train", ["hello world", "good morning", "see you"]), ("dev", ["thank you", "yes"]),
                         ("eval", ["good night", "no", "maybe later"])):
        (corpus / split / "wav").mkdir(parents=True)
        lines = []
        for i, text in enumerate(texts):
            utt = f"{split}{i}"
            sf.write(corpus / split / "wav" / f"{utt}.wav", np.full(3200 + 800 * i, 0.05, np.float32), 16000)
            lines.append(f"{utt} {text}")
        (corpus / split / "text").write_text("\n".join(lines) + "\n")
    env = dict(CORPUS=str(corpus), HF_HUB_OFFLINE="1")
    args = ["--valid-set", "dev", "--test-sets", "dev eval", "--speed-perturb", "0.9 1.1", *common_args(tiny_models)]
    r = run(recipe, "--stage", "1", "--stop-stage", "7", *args, **env)
    assert r.returncode == 0, r.stderr[-4000:]
    tag = "whisper-rand64_trim"
    assert sorted(p.name for p in (recipe / "dump" / tag).iterdir()) == ["dev", "eval", "train", "train_sp"]
    train_ids = [c.id for c in CutSet.from_file(recipe / "dump" / tag / "train" / "cuts.jsonl.gz")]
    sp_ids = [c.id for c in CutSet.from_file(recipe / "dump" / tag / "train_sp" / "cuts.jsonl.gz")]
    assert sorted(sp_ids) == sorted(f"{i}_sp{f}" for i in train_ids for f in ("0.9", "1.1"))  # a copy per factor
    fetched = json.loads((recipe / "exp" / f"elf_train_{tag}_sp" / "fetch.json").read_text())
    assert fetched["file"].endswith("checkpoint_20") and fetched["loaded"] > 0
    done = recipe / "exp" / ".done"
    assert (done / "stage1").is_file() and (done / f"{tag}_sp" / "stage2").is_file()
    exp = recipe / "exp" / f"train_{tag}_sp"
    assert (done / exp.name / "stage3").is_file() and all(
        (done / exp.name / "decode_flow32" / s / "stage5").is_file() for s in ("dev", "eval"))
    decode = exp / "decode_flow2_g2_prior"  # conf/decode/flow32.yaml with --decode-opts decode.flow.steps=2
    for s in ("dev", "eval"):
        assert re.search(r"^WER:", (decode / s / "result.txt").read_text(), re.M), s
    assert read_setting(exp)[1] == "flow2_g2_prior"
    assert (exp / "analysis" / "report.md").is_file() and (exp / "analysis" / "audio_reliance" / "dev" / "reliance.md").is_file()

    # a second decoding config after stage 5 ran: only it is decoded; stage 6 takes in both decodes (stage 7 alike)
    (recipe / "conf" / "decode" / "flow_g1.yaml").write_text("decode: {strategy: flow, flow: {steps: 2, guidance: 1}}\n")
    r = run(recipe, "--stage", "5", "--stop-stage", "6", *args, "--decode-confs",
            "conf/decode/flow32.yaml conf/decode/flow_g1.yaml", **env)
    assert r.returncode == 0, r.stderr[-4000:]
    assert all(f"stage 5 (decoding {s} by {exp.name} with flow32): already done" in r.stderr for s in ("dev", "eval"))
    assert all(f"stage 5: decoding {s} by {exp.name} with flow_g1" in r.stderr for s in ("dev", "eval"))
    assert f"stage 6 (scoring {exp.name}): its inputs changed since it was done" in r.stderr
    assert sorted(d.name for d in exp.glob("decode_*") if d.is_dir()) == ["decode_flow2_g1_prior", "decode_flow2_g2_prior"]
    assert (exp / "decode_flow2_g1_prior" / "eval" / "result.txt").is_file()
    assert read_setting(exp) == (["decode.strategy=flow", "decode.flow.steps=2", "decode.flow.guidance=1",
                                  "decode.flow.steps=2", "decode.max_duration=5"], "flow2_g1_prior")  # the last config
    assert "flow2_g1_prior" in (recipe / "RESULTS.md").read_text()
    # a decoding config with an unknown key: the decode's one-line error naming the key and file, exit 2
    (recipe / "conf" / "decode" / "typo.yaml").write_text("decode: {strategy: flow, flow: {stpes: 2}}\n")
    r = run(recipe, "--stage", "5", "--stop-stage", "5", *args, "--decode-confs", "conf/decode/typo.yaml", **env)
    assert r.returncode == 2 and r.stderr.count("error:") == 1, r.stderr[-2000:]
    assert "decode: error: conf/decode/typo.yaml: unknown config key(s) ['decode.flow.stpes']" in r.stderr
    r = run(recipe, "--stage", "5", *args, "--decode-confs", "conf/decode/nothere.yaml", **env)
    assert r.returncode == 1 and "no such decoding config: conf/decode/nothere.yaml" in r.stderr

    # the AR baseline: stage 3 trains the SentencePiece vocabulary of the training targets, then stages 4-7 (its
    # errors measured in the MiniLM latent space)
    ar_args = [tiny_ar_opts() if a == tiny_train_opts() else a for a in args]
    ar_args[ar_args.index("--decode-opts") + 1] = "decode.max_new_tokens=8 decode.max_duration=5"
    r = run(recipe, "--stage", "3", "--model", "ar", "--ar-vocab-size", "30", "--analysis-space", str(MINILM),
            *ar_args, **env)
    assert r.returncode == 0, r.stderr[-4000:]
    assert (recipe / "data" / "token_list" / "train_bpe30" / "sp.model").is_file()
    ar = recipe / "exp" / f"train_ar_{tag}_sp"
    assert (done / ar.name / "stage3").is_file() and (done / ar.name / "decode_beam4" / "eval" / "stage5").is_file()
    assert re.search(r"^WER:", (ar / "decode_beam4" / "eval" / "result.txt").read_text(), re.M)
    assert (ar / "analysis" / "report.md").is_file() and not (ar / "analysis" / "audio_reliance").exists()
    assert f"train_ar_{tag}_sp" in (recipe / "RESULTS.md").read_text()


def declared_options(run_sh: Path) -> list[str]:
    """The option variables a run.sh declares (``name=default`` lines before help_message)."""
    head = run_sh.read_text().split("help_message=", 1)[0]
    return [m.group(1).replace("_", "-") for m in re.finditer(r"^([a-z_][a-z0-9_]*)=", head, re.M)]


@pytest.mark.parametrize("name", ["librispeech", "covost2", "TEMPLATE"])
def test_help_documents_every_option(name):
    syntax = subprocess.run(["bash", "-n", str(ROOT / "egs" / name / "run.sh")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr  # --help exits before bash reads the stage blocks
    r = subprocess.run([str(ROOT / "egs" / name / "run.sh"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    options = declared_options(ROOT / "egs" / name / "run.sh")
    assert {"stage", "encoder", "feat-mode", "elf-init", "train-opts", "decode-opts", "rdzv-endpoint"} <= set(options)
    missing = [o for o in options if not re.search(rf"^\s+--{o}\b", r.stdout, re.M)]
    assert not missing, f"{name}/run.sh --help does not document {missing}"


@pytest.mark.parametrize("name", ["librispeech", "covost2"])
def test_paper_configs_load_with_the_paper_settings(name):
    from elfs2t.config import load_config
    from elfs2t.experiment import ExperimentConfig

    cfg = load_config(ExperimentConfig, ROOT / "egs" / name / "conf" / "train.yaml")
    d = cfg.elf.denoiser
    assert (d.hidden, d.depth, d.heads) == (768, 12, 12) and cfg.elf.feat_dim == 1280
    assert cfg.elf.text.name_or_path == "t5-small" and cfg.init.denoiser == "embedded-language-flows/ELF-B-owt-torch"
    assert (cfg.elf.flow.mu_dec, cfg.elf.flow.p_drop) == (-0.5, 0.1)
    assert cfg.optim.name == "muon" and cfg.optim.lr is None and cfg.optim.lr_per_256 == 1e-3
    assert cfg.train.dtype == "auto" and (cfg.decode.strategy, cfg.decode.flow.steps, cfg.decode.flow.guidance) == ("flow", 32, 2.0)


def test_stage_3_offline_hub_id_fails_clearly(tmp_path, tiny_models):
    recipe = copy_recipe("librispeech", tmp_path)
    r = run(recipe, "--stage", "3", "--stop-stage", "3", "--encoder", str(tiny_models["whisper"]),
            LIBRISPEECH=str(tmp_path), HF_HUB_OFFLINE="1")
    assert r.returncode != 0
    assert "cannot fetch ELF checkpoint 'embedded-language-flows/ELF-B-owt-torch': offline" in r.stderr
    assert "--elf-init" in r.stderr
    assert not list((recipe / "exp").rglob("stage3"))


def test_fetch_elf_entry_point(tmp_path, tiny_models, capsys):
    assert fetch_elf.main(["--source", str(tiny_models["elf"]), "--report", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["file"] == str(tiny_models["elf"] / "checkpoint_20")
    assert "checkpoint_20" in capsys.readouterr().out
    assert fetch_elf.main(["--source", str(tmp_path / "nowhere")]) == 1
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert fetch_elf.main(["--source", str(tmp_path / "empty")]) == 1
    assert "no checkpoint_<step> file" in capsys.readouterr().err
    # --conf: the checkpoint must fit the model of the config (here: a wider denoiser than the checkpoint's)
    conf = ROOT / "egs" / "librispeech" / "conf" / "train.yaml"
    opts = tiny_train_opts().split() + [f"init.denoiser={tiny_models['elf']}"]
    assert fetch_elf.main(["--conf", str(conf), *opts]) == 0
    assert "tensors loaded" in capsys.readouterr().out
    assert fetch_elf.main(["--conf", str(conf), *opts, "elf.denoiser.hidden=48"]) == 1
    assert "does not fit the denoiser" in capsys.readouterr().err
    assert fetch_elf.main(["elf.feat_dim=3"]) == 2  # a config error (usage): exit 2
    assert "need --conf" in capsys.readouterr().err


def test_librispeech_valid_set_must_be_an_eval_set(tmp_path):
    recipe = copy_recipe("librispeech", tmp_path)
    r = run(recipe, "--stage", "2", "--eval-parts", "test-clean", LIBRISPEECH=str(tmp_path))
    assert r.returncode == 1 and "--valid-set dev_clean is not one of the --eval-parts sets (test_clean)" in r.stderr
