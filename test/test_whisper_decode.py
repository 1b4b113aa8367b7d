"""Whisper zero-shot baseline: naming, output files and timing of stage 5, translate / language handling,
30-s truncation, errors; a real check of tools/models/whisper-tiny.en on espeak-ng speech (~6 s)."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from elfs2t.bin import score as score_bin
from elfs2t.bin import whisper_decode as wd_bin
from elfs2t.config import ConfigError
from elfs2t.baselines.whisper_zero_shot import (WhisperDecodeConfig, WhisperZeroShot, decode_whisper, exp_name,
                                             inference_tag)
from elfs2t.results import collect_results, format_results_table

from conftest import ROOT

MODELS = ROOT / "tools" / "models"
SPEECH = ["the quick brown fox jumps over the lazy dog", "we didn't meet a newspaper on sunday",
          "the friendly cat walked in the shop"]


def _cut(root: Path, i: int, audio: np.ndarray, sr: int, text: str, language: str = "en",
         translation: str | None = None) -> MonoCut:
    wav = root / f"u{i}.wav"
    sf.write(wav, audio, sr)
    rec = Recording.from_file(wav, recording_id=f"u{i}")
    custom = {"translated_text": {"en": translation}} if translation else None
    sup = SupervisionSegment(id=f"u{i}", recording_id=rec.id, start=0.0, duration=rec.duration, text=text,
                             language=language, custom=custom)
    return MonoCut(id=f"u{i}", start=0.0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup])


@pytest.fixture(scope="module")
def rand_multilingual(tmp_path_factory):
    """A random 1-layer multilingual Whisper (d_model 16) with whisper-base's tokenizer, generation config
    and feature extractor, saved as a local directory named like a Whisper model."""
    if not (MODELS / "whisper-base" / "tokenizer.json").is_file():
        pytest.skip("tools/models/whisper-base is not installed (tools/install.sh)")
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    base = json.loads((MODELS / "whisper-base" / "config.json").read_text())
    cfg = WhisperConfig(vocab_size=base["vocab_size"], num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        max_target_positions=64, pad_token_id=base["pad_token_id"], bos_token_id=base["bos_token_id"],
                        eos_token_id=base["eos_token_id"], decoder_start_token_id=base["decoder_start_token_id"])
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("m") / "whisper-rand"
    WhisperForConditionalGeneration(cfg).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "generation_config.json"):
        shutil.copy(MODELS / "whisper-base" / name, out / name)
    return out


@pytest.fixture(scope="module")
def noise_cuts(tmp_path_factory):
    """German 'utterances' of noise with English translations: 16 kHz, 8 kHz (resampled), and one of 31 s."""
    root = tmp_path_factory.mktemp("a")
    rng = np.random.default_rng(0)
    cuts = [_cut(root, 0, 0.1 * rng.standard_normal(16000).astype(np.float32), 16000, "hallo welt", "de", "hello world"),
            _cut(root, 1, 0.1 * rng.standard_normal(12000).astype(np.float32), 8000, "guten tag", "de", "good day"),
            _cut(root, 2, 0.1 * rng.standard_normal(31 * 16000).astype(np.float32), 16000, "lang", "de", "long")]
    path = root / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path


def test_names_and_tags():
    assert exp_name("tools/models/whisper-tiny.en/") == "whisper_tiny.en"
    assert exp_name("openai/whisper-large-v3") == "whisper_large-v3"
    assert exp_name("my-asr") == "whisper_my-asr"
    assert inference_tag(WhisperDecodeConfig(model="x")) == "transcribe_beam1"
    assert inference_tag(WhisperDecodeConfig(model="x", task="translate", language="de", beam_size=4)) == "translate_de_beam4"
    with pytest.raises(ConfigError, match="beam_size"):
        WhisperDecodeConfig(model="x", beam_size=0).validate()


def test_translate_writes_stage5_files_and_timing(rand_multilingual, noise_cuts, tmp_path, caplog):
    cfg = WhisperDecodeConfig(model=str(rand_multilingual), task="translate", max_new_tokens=4, max_cuts=2)
    zs = WhisperZeroShot(cfg)
    assert zs.multilingual and zs.encoder_tag == "whisper-rand_pad30"
    from elfs2t.data.dataset import SetSpec, load_sets

    cuts = load_sets([SetSpec(cuts=noise_cuts, target="translation:en")])
    out = tmp_path / "exp" / exp_name(str(rand_multilingual)) / f"decode_{inference_tag(cfg)}" / "st_test"
    with caplog.at_level("WARNING"):
        timing = decode_whisper(zs, cuts, out, show_progress=False)
    assert zs.num_truncated == 1 and "longer than 30 s" in caplog.text
    hyps = (out / "text").read_text().splitlines()
    assert [h.split(" ", 1)[0] for h in hyps] == ["u0", "u1", "u2"]
    assert (out / "ref").read_text().splitlines() == ["u0 hello world", "u1 good day", "u2 long"]
    on_disk = json.loads((out / "timing.json").read_text())
    assert on_disk == timing
    decoder = zs.model.model.decoder
    assert timing["params"] == sum(p.numel() for p in decoder.parameters())  # proj_out is tied to the embeddings
    assert timing["encoder_params"] == sum(p.numel() for p in zs.model.model.encoder.parameters())
    assert (timing["model"], timing["task"], timing["beam_size"], timing["num_utts"]) == ("whisper", "translate", 1, 3)
    assert timing["audio_seconds"] == pytest.approx(1.0 + 1.5 + 31.0)
    assert timing["encoder_seconds"] > 0 and timing["decode_seconds"] > 0
    assert timing["rtfx_e2e"] == pytest.approx(timing["audio_seconds"] / (timing["encoder_seconds"] + timing["decode_seconds"]))
    assert yaml.safe_load((out / "decode_config.yaml").read_text())["task"] == "translate"
    assert len((out / "utt_timing.txt").read_text().splitlines()) == 3


def test_beam_search_and_forced_language_run(rand_multilingual, noise_cuts, tmp_path):
    """Beam search and an explicit language go through transformers' generate (lower-cased output)."""
    exp = tmp_path / "exp" / "whisper_rand"
    assert wd_bin.main(["--model", str(rand_multilingual), "--task", "translate", "--language", "de", "--beam-size", "2",
                        "--max-new-tokens", "3", "--lowercase", "--target", "translation:en",
                        "--set", f"st_test={noise_cuts}", "--exp-dir", str(exp)]) == 0
    out = exp / "decode_translate_de_beam2" / "st_test"
    hyps = [line.split(" ", 1)[1] for line in (out / "text").read_text().splitlines() if " " in line]
    assert all(h == h.lower() for h in hyps)
    assert json.loads((out / "timing.json").read_text())["language"] == "de"


def test_errors(rand_multilingual, noise_cuts, tmp_path, capsys):
    if not (MODELS / "whisper-tiny.en" / "config.json").is_file():
        pytest.skip("tools/models/whisper-tiny.en is not installed")
    with pytest.raises(ConfigError, match="English-only"):
        WhisperZeroShot(WhisperDecodeConfig(model=str(MODELS / "whisper-tiny.en"), task="translate"))
    assert wd_bin.main(["--model", str(tmp_path / "nowhere"), "--set", f"x={noise_cuts}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("whisper_decode: error: ") and "nowhere" in err[-1]
    with pytest.raises(SystemExit) as exc:  # argparse's usage error, as every NAME=CUTS option gives it
        wd_bin.main(["--model", str(rand_multilingual), "--set", "x"])
    assert exc.value.code == 2 and "argument --set: 'x': expected NAME=CUTS" in capsys.readouterr().err
    # a missing second set is refused before the first is decoded
    out = tmp_path / "exp"
    assert wd_bin.main(["--model", str(rand_multilingual), "--exp-dir", str(out), "--set", f"ok={noise_cuts}",
                        "--set", f"x={tmp_path / 'none.jsonl.gz'}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("whisper_decode: error: --set x: ") and "none.jsonl.gz" in err
    assert not out.exists()


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        wd_bin.main(["--help"])
    assert exc.value.code == 0
    assert "exp/whisper_<name>" in capsys.readouterr().out


def test_tiny_en_transcribes_espeak_speech(tmp_path):
    """The offline tiny.en transcribes 3 espeak-ng sentences; stage 6 scores them into a Whisper row."""
    if not (MODELS / "whisper-tiny.en" / "config.json").is_file():
        pytest.skip("tools/models/whisper-tiny.en is not installed")
    cuts = []
    for i, text in enumerate(SPEECH):
        wav = tmp_path / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        audio, sr = sf.read(wav, dtype="float32")
        cuts.append(_cut(tmp_path, i, audio, sr, text.upper()))
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    assert wd_bin.main(["--model", str(MODELS / "whisper-tiny.en"), "--set", f"asr_test={tmp_path / 'cuts.jsonl.gz'}",
                        "--exp-dir", str(tmp_path / "exp" / "whisper_tiny.en")]) == 0
    out = tmp_path / "exp" / "whisper_tiny.en" / "decode_transcribe_beam1" / "asr_test"
    assert score_bin.main(["--hyp", str(out / "text"), "--ref", str(out / "ref"), "--metric", "wer",
                           "--out-dir", str(out)]) == 0
    rows = collect_results(tmp_path)
    assert len(rows) == 1 and rows[0].model == "whisper" and rows[0].encoder == "whisper-tiny.en_pad30"
    assert rows[0].metrics["WER"] < 35.0, (out / "text").read_text()
    assert rows[0].rtfx > rows[0].rtfx_e2e > 0
    assert "| Whisper zero-shot | whisper_tiny.en | transcribe_beam1 |" in format_results_table(rows)
