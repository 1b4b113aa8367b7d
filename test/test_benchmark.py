"""Benchmarks: each entry point runs on tiny random models / synthetic data and prints its columns; the
analytical FLOPs match torch's FLOP counter; the measuring helpers measure."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from lhotse import CutSet
from torch.utils.flop_counter import FlopCounterMode

from elfs2t.bench import flops as F
from elfs2t.bench.common import PeakMemory, collate, fixed_batches, format_table, load_utterances, synthetic_utterances
from elfs2t.bin import benchmark
from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser
from feature_fixtures import make_feature_cuts

DATA = ["--feat-dim", "16", "--num-synthetic", "4", "--batch-size", "2", "--min-duration", "0.5", "--max-duration", "1.0"]
TINY = ["--size", "tiny", "--text-len", "8", *DATA]


def _table_rows(text: str) -> dict[str, dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(head, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]
    return {r[head[0]]: r for r in rows}


def test_decode_benchmark_prints_every_system_side_by_side(tmp_path, capsys):
    assert benchmark.main(["decode", *TINY, "--steps", "1", "2", "--latency-utts", "1", "--encoder", "random:tiny",
                           "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "load average" in out
    rows = _table_rows(out)
    for col in ("utt/s", "RTFx dec", "RTFx e2e", "lat ms b=1", "lat e2e ms", "peak mem MB", "GFLOP/utt", "x utt/s"):
        assert col in next(iter(rows.values())), col
    names = set(rows)
    assert {f"elf-s2t random-tiny-{k} flow{n}_g{g}_prior" for k in ("full", "self") for n in (1, 2) for g in (1, 2)} <= names
    assert "ar random-tiny greedy" in names and any(n.startswith("encoder whisper-random-tiny_trim") for n in names)
    assert rows["ar random-tiny greedy"]["x utt/s"] == "1.00"  # the default baseline: the first AR system
    assert rows["ar random-tiny beam4"]["decoding"] == "beam4"  # --ar-beams 1 4 by default
    assert rows["elf-s2t random-tiny-self flow2_g2_prior"]["cache"] == "yes"
    assert rows["elf-s2t random-tiny-full flow2_g2_prior"]["cache"] == "no"
    # prefix caching saves FLOPs; guidance doubles the sampling rows; steps add forwards
    gflop = {n: float(r["GFLOP/utt"]) for n, r in rows.items() if n.startswith("elf")}
    assert gflop["elf-s2t random-tiny-self flow2_g2_prior"] < gflop["elf-s2t random-tiny-full flow2_g2_prior"]
    assert gflop["elf-s2t random-tiny-full flow2_g1_prior"] < gflop["elf-s2t random-tiny-full flow2_g2_prior"]
    assert gflop["elf-s2t random-tiny-full flow1_g1_prior"] < gflop["elf-s2t random-tiny-full flow2_g1_prior"]
    for name in ("decode.md", "decode.json", "speed_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "decode.json").read_text())
    assert len(saved["rows"]) == len(rows) and all(r["utt_s"] > 0 for r in saved["rows"])
    ar = {r["system"]: r for r in saved["rows"] if r.get("family") == "ar"}
    # the same number of tokens (a random LM never ends), over 4 rows per utterance instead of 1
    assert ar["ar random-tiny greedy"]["gflop_utt"] < ar["ar random-tiny beam4"]["gflop_utt"]
    assert saved["matched"] == [] and saved["frontier"] == [] and "matched accuracy" not in out  # nothing scored


def test_decode_benchmark_times_every_strategy_by_its_tag(tmp_path, capsys):
    """Random models get a CTC weight when a strategy reads the draft; flow and refine run at every step count and
    guidance, draft / readout / rescore once, unguided; the rescoring has no FLOP count."""
    assert benchmark.main(["decode", *TINY, "--kinds", "self", "--no-ar", "--strategies", "flow", "refine", "draft",
                           "readout", "rescore", "--steps", "1", "--latency-utts", "1", "--baseline", "elf",
                           "--read-levels", "1", "0.3", "--draft-beams", "0", "2", "--out-dir", str(tmp_path)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    label = "elf-s2t random-tiny-self"
    # the read levels multiply the flow's rows only, the draft beams the draft's
    assert set(rows) == {f"{label} {t}" for t in ("flow1_g1_prior", "flow1_g2_prior", "flow1_g1_prior_read0.3",
                                                 "flow1_g2_prior_read0.3", "refine1_g1_t0.8", "refine1_g2_t0.8",
                                                 "draft", "draft_beam2", "readout_prior",
                                                 "rescore_k0.95_l0.05-0.2_d4")}
    assert {n: r["decoding"] for n, r in rows.items()} == {n: n.split()[-1] for n in rows}
    assert rows[f"{label} draft"]["steps"] == "-" and rows[f"{label} flow1_g2_prior"]["steps"] == "1"
    assert rows[f"{label} rescore_k0.95_l0.05-0.2_d4"]["GFLOP/utt"] == "-"
    saved = json.loads((tmp_path / "decode.json").read_text())["rows"]
    g = {r["decoding"]: r["gflop_utt"] for r in saved if "gflop_utt" in r}
    # the draft (a forward, the token head over the audio slots) and the text encoder come on top of the steps
    assert g["refine1_g1_t0.8"] > g["flow1_g1_prior"] > g["readout_prior"] > 0 and g["draft"] > 0
    assert all(float(r["utt/s"]) > 0 for r in rows.values())
    assert (tmp_path / "speed_accuracy.png").stat().st_size > 0


def test_decode_benchmark_repeats_report_the_fastest_pass(tmp_path):
    """--repeats N times N passes per system; utt/s is the fastest pass's, every pass is kept in decode.json."""
    assert benchmark.main(["decode", *TINY, "--kinds", "self", "--no-ar", "--steps", "1", "--latency-utts", "1",
                           "--baseline", "elf", "--repeats", "3", "--out-dir", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "decode.json").read_text())["rows"]
    assert rows and all(len(r["pass_seconds"]) == 3 for r in rows)
    for r in rows:  # 4 synthetic utterances
        assert r["seconds"] == min(r["pass_seconds"]) and r["utt_s"] == pytest.approx(4 / min(r["pass_seconds"]))


def test_decode_bench_config_checks_steps_and_strategies():
    from elfs2t.bench.decode import DecodeBenchConfig
    from elfs2t.config import ConfigError

    with pytest.raises(ConfigError, match=r"^steps=\[0, 4\]: must be >= 1"):
        DecodeBenchConfig(steps=[0, 4]).validate()
    with pytest.raises(ConfigError, match=r"^strategies="):
        DecodeBenchConfig(strategies=["flow", "mask"]).validate()
    with pytest.raises(ConfigError, match=r"^strategies="):
        DecodeBenchConfig(strategies=[]).validate()
    with pytest.raises(ConfigError, match=r"^t_start="):
        DecodeBenchConfig(strategies=["refine"], t_start=1.0).validate()
    with pytest.raises(ConfigError, match=r"^ar_beams=\[1, 1\]: must be distinct beam sizes >= 1"):
        DecodeBenchConfig(ar_beams=[1, 1]).validate()
    with pytest.raises(ConfigError, match=r"^ar_beams=\[0\]"):
        DecodeBenchConfig(ar_beams=[0]).validate()
    with pytest.raises(ConfigError, match=r"^read_levels=\[1.5\]: must be distinct signal levels in \[0, 1\]"):
        DecodeBenchConfig(read_levels=[1.5]).validate()
    with pytest.raises(ConfigError, match=r"^draft_beams=\[4, -1\]: must be distinct beam widths >= 0 \(0: greedy\)"):
        DecodeBenchConfig(draft_beams=[4, -1]).validate()
    with pytest.raises(ConfigError, match=r"^draft_lm=\[0.5, 2.0\]: must be a weight > 0 and a bonus, with a beam"):
        DecodeBenchConfig(draft_beams=[0], draft_lm=[0.5, 2.0], elf_exps=["exp/asr_elf"]).validate()
    with pytest.raises(ConfigError, match=r"^draft_lm=\[0.5, 2.0\]: fuses a trained experiment's n-gram"):
        DecodeBenchConfig(draft_beams=[4], draft_lm=[0.5, 2.0]).validate()
    with pytest.raises(ConfigError, match=r"^repeats=0: must be >= 1"):
        DecodeBenchConfig(repeats=0).validate()
    DecodeBenchConfig(steps=[4], strategies=["rescore", "draft"]).validate()


def test_decode_bench_draft_strategies_need_a_ctc_trained_experiment(monkeypatch):
    from types import SimpleNamespace

    from elfs2t.bench import decode
    from elfs2t.bench.models import random_elf_s2t
    from elfs2t.s2t.decoding import DecodingConfig

    model = random_elf_s2t("tiny", prefix_attention="self", feat_dim=16, text_len=8)  # ctc_weight 0
    ecfg = SimpleNamespace(model="elf_s2t", decode=DecodingConfig())
    monkeypatch.setattr(decode, "load_trained_model", lambda exp: (model, ecfg))
    utts = synthetic_utterances(2, feat_dim=16, min_duration=0.5, max_duration=1.0, audio=False)
    cfg = decode.DecodeBenchConfig(elf_exps=["exp/no_ctc"], strategies=["flow", "draft"], steps=[1], no_ar=True)
    with pytest.raises(ValueError, match=r"exp/no_ctc: strategies draft, refine and rescore need .*ctc_weight > 0"):
        decode.run_decode_bench(cfg, utts)


SPOKEN = ["the cat sat on the mat", "a dog ran home", "we did not see the bird", "the bird flew away"]


@pytest.fixture(scope="module")
def trained_pair(module_tmp):
    """``(cuts, elf_exp, ar_exp)``: tiny ELF-S2T (with the CTC draft) and AR experiments trained for 2 steps on the
    random features of 4 cuts -- trained by stage 4, so the benchmark scores them (their accuracy is poor)."""
    import yaml

    from elfs2t.bin import train as train_bin
    from elfs2t.bin import train_subword as subword_bin

    root = module_tmp
    make_feature_cuts(root / "feats", SPOKEN, dim=8)
    cuts = root / "feats" / "cuts.jsonl.gz"
    (root / "text.txt").write_text("".join(s + "\n" for s in SPOKEN * 4))
    vocab = root / "token_list"
    assert subword_bin.main(["--text", str(root / "text.txt"), "--out-dir", str(vocab), "--vocab-size", "40"]) == 0
    data = {"train": [{"cuts": str(cuts)}], "valid": [{"cuts": str(cuts)}], "max_duration": 4.0, "num_buckets": 1}
    train = {"max_steps": 2, "log_every": 1, "valid_every": 0, "save_every": 2, "progress": False}
    confs = {
        "elf": {"model": "elf_s2t", "data": data, "train": train, "optim": {"name": "adamw", "lr": 1e-2},
                "elf": {"text": {"name_or_path": "tools/models/all-MiniLM-L6-v2", "max_len": 12},
                        "denoiser": {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self"},
                        "feat_dim": 8, "stack": 2, "ctc_weight": 1.0, "lowercase": True}},
        "ar": {"model": "ar", "data": data, "train": train, "optim": {"name": "adamw", "lr": 3e-3},
               "ar": {"tokenizer": str(vocab), "layers": 1, "hidden": 32, "heads": 2, "feat_dim": 8, "stack": 2,
                      "lowercase": True, "max_text_tokens": 16},
               "decode": {"max_new_tokens": 8, "max_duration": 100.0}},
    }
    exps = []
    for name, conf in confs.items():
        (root / f"{name}.yaml").write_text(yaml.safe_dump(conf))
        exps.append(root / "exp" / f"asr_{name}")
        assert train_bin.main(["--conf", str(root / f"{name}.yaml"), "--exp-dir", str(exps[-1]),
                               "--num-valid-examples", "0"]) == 0
    return cuts, exps[0], exps[1]


def test_ar_beam_systems_give_stage_5s_hypotheses(trained_pair):
    """``ar_systems`` on a trained AR: the greedy and beam rows decode what stage 5 writes with decode.beam_size."""
    from elfs2t.bench.ar_systems import ar_systems
    from elfs2t.bench.decode import DecodeBenchConfig
    from elfs2t.bin import decode as decode_bin
    from elfs2t.textfile import read_text

    cuts, _, ar_exp = trained_pair
    utts = load_utterances(cuts, audio=False)
    systems = ar_systems(DecodeBenchConfig(ar_exp=str(ar_exp), ar_beams=[1, 3]), 8, torch.float32, 99, True)
    assert [(s.name, s.info["decoding"], s.trained) for s in systems] == [
        ("ar asr_ar greedy", "greedy", True), ("ar asr_ar beam3", "beam3", True)]
    for system, beams in zip(systems, (1, 3)):
        assert decode_bin.main(["--exp-dir", str(ar_exp), "--set", f"asr_test={cuts}", f"decode.beam_size={beams}"]) == 0
        stage5 = read_text(ar_exp / f"decode_beam{beams}" / "asr_test" / "text")
        assert dict(zip((u.id for u in utts), system.run(utts))) == stage5
        assert system.flops(utts) > 0


def test_decode_benchmark_reports_speed_at_matched_accuracy(trained_pair, tmp_path, capsys):
    """Trained ELF-S2T and AR experiments on real references: every system scored, the matched table (each ELF-S2T
    row against an AR row, the ratio of their utt/s), the frontier in the json and the PNG."""
    from PIL import Image

    cuts, elf_exp, ar_exp = trained_pair
    assert benchmark.main(["decode", "--cuts", str(cuts), "--elf-exp", str(elf_exp), "--ar-exp", str(ar_exp),
                           "--ar-beams", "1", "2", "--strategies", "flow", "draft", "--steps", "1", "--batch-size", "2",
                           "--latency-utts", "1", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = _table_rows(out.split("## speed at matched accuracy")[0])
    assert {"ar asr_ar greedy", "ar asr_ar beam2", "elf-s2t asr_elf draft"} <= set(rows)
    assert all(r["WER %"] != "-" for r in rows.values())
    assert rows["ar asr_ar beam2"]["decoding"] == "beam2"
    saved = json.loads((tmp_path / "decode.json").read_text())
    elf = {r["system"]: r for r in saved["rows"] if r["family"] == "elf"}
    ar = {r["system"]: r for r in saved["rows"] if r["family"] == "ar"}
    assert 0 < ar["ar asr_ar greedy"]["gflop_utt"] < ar["ar asr_ar beam2"]["gflop_utt"]
    assert [m["system"] for m in saved["matched"]] == list(elf) and saved["higher_better"] is False
    for m in saved["matched"]:
        assert m["ar_system"] in ar and m["x_utt_s"] == pytest.approx(elf[m["system"]]["utt_s"] / ar[m["ar_system"]]["utt_s"])
        assert (m["ar_score"] <= m["score"]) == (m["match"] == "fastest AR as accurate or better")
    matched = _table_rows(out.split("## speed at matched accuracy")[1])
    assert set(matched) == set(elf) and "x utt/s (ELF/AR)" in next(iter(matched.values()))
    assert saved["frontier"] and set(saved["frontier"]) <= set(elf) | set(ar)
    with Image.open(tmp_path / "speed_accuracy.png") as image:
        assert image.text["Frontier"] == "; ".join(saved["frontier"])


def test_train_benchmark_reports_throughput_data_wait_and_latent_cache(capsys):
    assert benchmark.main(["train", *TINY, "--steps", "2", "--warmup", "1", "--processes", "1"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert set(rows) == {"elf_s2t", "ar", "elf_s2t +latent cache"}
    assert float(rows["elf_s2t"]["text enc %"]) > 0 and rows["ar"]["text enc %"] == "-"
    for row in rows.values():
        assert float(row["samples/s"]) > 0 and float(row["tokens/s"]) > 0
        assert 0 <= float(row["data wait %"]) < 100 and row["scaling"] == "1.00"
    # 4 utterances, 3 steps of 2: the second pass over the data hits the latent cache
    assert float(rows["elf_s2t +latent cache"]["latent hits %"]) > 0


@pytest.mark.slow
def test_train_benchmark_two_processes(capsys):
    assert benchmark.main(["train", *TINY, "--models", "ar", "--no-latent-cache", "--steps", "2", "--warmup", "1",
                           "--processes", "1", "2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(head, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]
    assert [(r["model"], r["procs"]) for r in rows] == [("ar", "1"), ("ar", "2")]
    assert float(rows[1]["samples/s"]) > 0 and float(rows[1]["scaling"]) > 0  # both processes reported


def test_features_benchmark_trim_beats_pad30(capsys):
    assert benchmark.main(["features", *DATA, "--encoders", "random:tiny"]) == 0
    rows = list(_table_rows(capsys.readouterr().out).values())
    assert [r["mode"] for r in rows] == ["pad30", "trim"]
    assert float(rows[1]["trim / pad30"]) > 1.0  # 1 s of audio: 50 frames instead of 1500
    assert float(rows[0]["GFLOP/utt"]) > 10 * float(rows[1]["GFLOP/utt"])


def test_denoiser_flops_match_the_torch_flop_counter():
    """Every matmul term of the formula, checked against FlopCounterMode (which does not count the CPU
    flash-attention kernel: the attention term 4 S_q S_k H per layer is added by hand)."""
    cfg = DenoiserConfig(latent_dim=8, vocab_size=11, hidden=16, depth=2, heads=2, bottleneck=4, freq_dim=8,
                         prefix_attention="self")
    model = ElfDenoiser(cfg).eval()
    b, l_text, c = 3, 5, 7
    p = model.num_prefix_tokens
    z, cond, t, w = torch.randn(b, l_text, 8), torch.randn(b, c, 16), torch.rand(b), torch.ones(b)

    def counted(fn):
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            fn()
        return fc.get_total_flops()

    attn = lambda s_q, s_k: b * cfg.depth * 4 * s_q * s_k * cfg.hidden  # noqa: E731
    s = p + c + l_text
    full = F.denoiser_forward_flops(cfg, b, l_text, c, token_head=True)
    assert full == counted(lambda: model.token_logits(model(z, t, guidance=w, cond=cond).hidden)) + attn(s, s)
    cache = model.cache_condition(cond)
    assert F.denoiser_forward_flops(cfg, b, l_text, c, cached=True) == \
        counted(lambda: model(z, t, guidance=w, cond_cache=cache)) + attn(p + l_text, s)
    assert b * cfg.depth * F.layer_flops(c, c, cfg.hidden, cfg.ffn_width) == \
        counted(lambda: model.cache_condition(cond)) + attn(c, c)
    assert F.elf_generate_flops(cfg, b, l_text, c, steps=4, guidance=2.0, cached=False) == \
        4 * F.denoiser_forward_flops(cfg, 2 * b, l_text, c) + full


def test_ctc_draft_and_text_encoder_flops_by_hand_and_by_the_torch_flop_counter():
    """The draft start's FLOPs: worked out by hand for a small config, then checked against FlopCounterMode
    (attention added by hand: the CPU SDPA kernel is not counted)."""
    from transformers import BertConfig, BertModel, T5Config, T5EncoderModel

    cfg = DenoiserConfig(latent_dim=8, vocab_size=11, hidden=16, depth=2, heads=2, bottleneck=4, freq_dim=8,
                         prefix_attention="self")  # P = 12, F = 8 * 16 // 3 = 42
    l_text, c, n_audio, k = 5, 7, 6, 3  # condition: a task token + 6 audio slots; shortlist of 3 ids
    # one row, uncached S = 12 + 7 + 5 = 24:
    #   input 2*5*(2*8*8 + 8*4 + 4*16) = 2240; layers 2 * [24*(8*16^2 + 6*16*42) + 4*24*24*16] = 365568;
    #   flow head 2*5*16*8 = 1280; scalar embedders 4*(8*16 + 16^2) = 1536  -> forward 370624
    #   token head over the 6 audio slots, K = 3: 2*6*(16*8 + 8*3) = 1824   -> draft 372448
    #   the draft of prefix_attention self runs the condition alone: 2 * [7*(8*16^2 + 6*16*42) + 4*7*7*16] = 91392
    #   token head over the 6 audio slots, K = 3: 2*6*(16*8 + 8*3) = 1824   -> draft 93216 (full: 372448)
    full_cfg = DenoiserConfig(**{**cfg.__dict__, "prefix_attention": "full"})
    assert F.denoiser_forward_flops(cfg, 1, l_text, c) == 370624
    assert F.elf_ctc_draft_flops(cfg, 1, l_text, c, n_audio, vocab=k) == 93216
    assert F.elf_ctc_draft_flops(full_cfg, 1, l_text, c, n_audio, vocab=k) == 372448
    assert F.elf_ctc_draft_flops(full_cfg, 3, l_text, c, n_audio) == 3 * (370624 + 2 * 6 * (16 * 8 + 8 * 11))  # V = 11
    # a draft first (refine, slots: ctc), the text encoder, then the steps and the decoding forward, the condition's
    # cache coming from the draft's pass (one zero row for CFG is left to build); steps 0: the decoding forward alone
    # (the readout)
    assert F.elf_generate_flops(cfg, 1, l_text, c, 0, 1.0, False, vocab=k) == \
        F.denoiser_forward_flops(cfg, 1, l_text, c, token_head=True, vocab=k)
    cache_row = cfg.depth * F.layer_flops(c, c, cfg.hidden, cfg.ffn_width)
    assert cache_row == 91392
    assert F.elf_generate_flops(cfg, 1, l_text, c, 2, 2.0, True, vocab=k, draft_audio=n_audio, text_encoder=99.0) == \
        93216 + 99 + F.elf_generate_flops(cfg, 1, l_text, c, 2, 2.0, True, vocab=k) - cache_row
    assert F.elf_generate_flops(cfg, 1, l_text, c, 0, 1.0, True, vocab=k, draft_audio=n_audio) == \
        93216 + F.denoiser_forward_flops(cfg, 1, l_text, c, cached=True, token_head=True, vocab=k)  # the readout
    # the decoding forward's token head over the shortlist: 2*5*(16*8 + 8*3) instead of 2*5*(16*8 + 8*11)
    assert F.elf_generate_flops(cfg, 1, l_text, c, 1, 1.0, False) - F.elf_generate_flops(cfg, 1, l_text, c, 1, 1.0,
                                                                                       False, vocab=k) == 10 * 8 * 8

    model = ElfDenoiser(cfg).eval()
    b, p = 2, model.num_prefix_tokens
    z, cond, ones = torch.randn(b, l_text, 8), torch.randn(b, c, 16), torch.ones(b)
    vocab = torch.tensor([0, 4, 9])

    def draft(model):
        if model.cfg.prefix_attention == "self":  # as ElfS2T.draft_readout runs it
            hidden = model.condition_hidden(cond)
        else:
            hidden = model(z, ones, self_cond=torch.zeros_like(z), guidance=ones, decode=torch.ones(b, dtype=torch.bool),
                           cond=cond).cond_hidden
        model.token_logits(hidden[:, 1:], vocab)

    for dcfg, s in [(cfg, c), (full_cfg, p + c + l_text)]:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            draft(ElfDenoiser(dcfg).eval())
        attn = b * cfg.depth * 4 * s * s * 16
        assert F.elf_ctc_draft_flops(dcfg, b, l_text, c, n_audio, vocab=k) == fc.get_total_flops() + attn

    # text encoders over L = 5 tokens, one row: BERT 2 * [5*(8*16^2 + 4*16*32) + 4*5*5*16] + pooler 2*16^2 = 44672
    bcfg = BertConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                      max_position_embeddings=16)
    assert F.text_encoder_flops(bcfg, 1, 5, pooler=True) == 44672
    ids = torch.randint(0, 40, (3, 5))
    t5 = dict(vocab_size=40, d_model=16, d_ff=24, d_kv=4, num_heads=3, num_layers=2)  # inner width 3 * 4
    for hf_cfg, cls, inner in [(bcfg, BertModel, 16), (T5Config(**t5), T5EncoderModel, 12),
                               (T5Config(**t5, feed_forward_proj="gated-gelu"), T5EncoderModel, 12)]:
        enc = cls(hf_cfg).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            enc(input_ids=ids, attention_mask=torch.ones_like(ids))
        pooler = getattr(enc, "pooler", None) is not None
        assert F.text_encoder_flops(hf_cfg, 3, 5, pooler) == fc.get_total_flops() + 3 * 2 * 4 * 5 * 5 * inner, cls


def test_ar_beam_search_flops_match_the_torch_flop_counter():
    """The AR's own beam search (and greedy search) through ``generate_ids``: the prompt over B rows, then every
    step over B x K rows; the LM forwards counted by a hook as the benchmark counts them (attention and the audio
    projector added by hand: the CPU SDPA kernel is not counted, the formula leaves the projector out)."""
    from elfs2t.bench.models import random_ar

    model = random_ar("tiny", feat_dim=16, stack=2, max_text_tokens=6)  # H 32, 2 layers
    utts = synthetic_utterances(2, feat_dim=16, min_duration=0.3, max_duration=0.3, audio=False)  # 15 frames
    batch = collate(utts)
    calls = [0]
    model.lm.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
    prompt, h, layers = 8 + 1, 32, 2  # ceil(15 / 2) audio tokens + BOS
    for beams in (1, 3):
        calls[0] = 0
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model.generate_ids(batch, max_new_tokens=5, beam_size=beams)
        assert calls[0] == 5  # a random LM never ends: the prompt, then 4 steps
        attn = 2 * layers * 4 * prompt * prompt * h + 2 * beams * layers * sum(4 * (prompt + i) * h for i in range(1, 5))
        projector = 2 * 2 * (prompt - 1) * (16 * 2) * h
        assert F.ar_search_flops(model.lm.config, 2, prompt, calls[0], beams) == fc.get_total_flops() + attn - projector
    assert F.ar_search_flops(model.lm.config, 2, prompt, 5, 1) == F.ar_greedy_flops(model.lm.config, 2, prompt, 5)


def test_ar_and_whisper_flops_match_the_torch_flop_counter():
    from transformers import LlamaConfig, LlamaForCausalLM, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    lm_cfg = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1)
    lm = LlamaForCausalLM(lm_cfg).eval()
    b, s = 2, 6
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        lm(inputs_embeds=torch.randn(b, s, 16), logits_to_keep=1)
    attn = b * 2 * 4 * s * s * 16
    assert F.ar_greedy_flops(lm_cfg, b, s, steps=1) == fc.get_total_flops() + attn
    wcfg = WhisperConfig(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32, num_mel_bins=80,
                         max_source_positions=1500)
    enc = WhisperEncoder(wcfg).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        enc(torch.randn(1, 80, 3000))
    assert F.whisper_encoder_flops(wcfg, 1, 1500) == fc.get_total_flops() + 2 * 4 * 1500 * 1500 * 16


def test_peak_memory_sees_an_allocation():
    with PeakMemory("cpu") as mem:
        block = np.ones(40_000_000)  # 320 MB touched
        del block
    assert mem.peak_mb is not None and mem.peak_mb > 200


def test_batches_collate_table_and_loading_cuts(tmp_path, monkeypatch):
    utts = synthetic_utterances(5, feat_dim=4, min_duration=0.5, max_duration=2.0, audio=False)
    batches = fixed_batches(utts, 2)
    assert [len(x) for x in batches] == [2, 2, 1]
    durations = [u.duration for x in batches for u in x]
    assert durations == sorted(durations, reverse=True)
    batch = collate(batches[0])
    assert batch["feats"].shape == (2, int(batch["feat_lens"].max()), 4)
    assert batch["feat_lens"].tolist() == [u.feats.shape[0] for u in batches[0]]
    table = format_table([{"a": 1.234, "b": None}], [("a", "A", ".1f"), ("b", "B", "")])
    assert table.splitlines()[2] == "| 1.2 | - |"
    make_feature_cuts(tmp_path, ["a b c", "d e"], dim=4)
    # as stage 2 writes them: the archives' paths relative to the manifest, read from another working directory
    cuts = list(CutSet.from_file(tmp_path / "cuts.jsonl.gz"))
    for cut in cuts:
        cut.features.storage_path = os.path.relpath(cut.features.storage_path, tmp_path)
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = load_utterances(tmp_path / "cuts.jsonl.gz", max_utts=1, audio=False)
    assert len(loaded) == 1 and loaded[0].text == "a b c" and loaded[0].feats.shape == (30, 4)
    with pytest.raises(FileNotFoundError):
        load_utterances(tmp_path / "missing.jsonl.gz")


def test_scale_benchmark_on_a_few_hundred_cuts(tmp_path):
    """The LibriSpeech-960-h simulation, shrunk: every phase measured, the latent cache held to its budget, the
    synthetic corpus deleted afterwards, and the options of ``benchmark scale`` reach the config."""
    from elfs2t.bench.scale import ScaleBenchConfig, run_scale_bench
    from elfs2t.bin.benchmark import get_parser

    work = tmp_path / "corpus"
    cfg = ScaleBenchConfig(num_cuts=300, feat_dim=8, distinct_feats=16, max_duration=60.0, num_buckets=4,
                           sampler_batches=5, batches=3, num_workers=0, cache_mb=1, latent_dim=8,
                           work_dir=work, isolated=False)
    result = run_scale_bench(cfg)
    rows = {r["phase"]: r for r in result["rows"]}
    assert list(rows) == ["imports", "manifest", "sampler", "loader", "latent cache"]
    assert rows["manifest"]["note"].startswith("300 cuts kept, 0 dropped")
    assert rows["loader"]["first_batch_s"] > 0 and "3 batches" in rows["loader"]["note"]
    assert 0 < rows["latent cache"]["cache_gb"] <= rows["latent cache"]["cache_budget_gb"] == 1 / 1024
    assert all(line.endswith("within") for line in result["verdict"]), result["verdict"]
    assert "| latent cache |" in result["table"].replace("  ", " ") and not work.exists()
    args = get_parser().parse_args(["scale", "--num-cuts", "1000", "--num-workers", "0", "--keep"])
    assert (args.num_cuts, args.num_workers, args.keep, args.budget_gb) == (1000, 0, True, 8.0)
