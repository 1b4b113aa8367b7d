"""Shared pytest set-up: deterministic, small-thread, offline runs."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_threads():
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def rand_whisper(tmp_path_factory):
    """A random 1-layer Whisper (d_model 16, 80 mel bins) saved as a local directory ``whisper-rand``: a real
    encoder for feature-caching tests, tiny enough for seconds."""
    import torch
    from transformers import WhisperConfig, WhisperModel

    cfg = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        pad_token_id=0, bos_token_id=1, eos_token_id=1, decoder_start_token_id=2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = WhisperModel(cfg)
    out = tmp_path_factory.mktemp("m") / "whisper-rand"
    model.save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# A tiny trained ELF-S2T model on real features: espeak-ng utterances, the Whisper tiny.en encoder of tools/models
# (stage 2), 40 training steps that reach the training text with the CTC draft (stage 4). Shared by the tests of
# elfs2t.load / transcribe / export / averaging (about 40 s to build once per session).
# ---------------------------------------------------------------------------------------------------------------
SPOKEN = ["the cat sat on the mat", "a dog ran to the park", "the bird sang a song", "my friend reads a book",
          "we walk to the old town"]
RESCORE = ["decode.strategy=rescore", "decode.rescore.threshold=0.99", "decode.rescore.draws=2"]
"""The tiny model's recorded decoding setting: the rescored CTC draft (n-best lists, word times)."""


def espeak_cuts(folder, texts, prefix="u"):
    """One espeak-ng wav (22.05 kHz mono) per text in ``folder``, as a CutSet with the texts as supervisions."""
    import subprocess

    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    folder.mkdir(parents=True, exist_ok=True)
    cuts = []
    for i, text in enumerate(texts):
        wav = folder / f"{prefix}{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        rec = Recording.from_file(wav, recording_id=f"{prefix}{i}")
        sup = SupervisionSegment(id=rec.id, recording_id=rec.id, start=0, duration=rec.duration, text=text)
        cuts.append(MonoCut(id=rec.id, start=0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup]))
    return CutSet.from_cuts(cuts)


@pytest.fixture(scope="session")
def tiny_asr(tmp_path_factory):
    """``SimpleNamespace(root, wavs, cuts, feats, exp, encoder, minilm)``: a trained ELF-S2T experiment ``exp`` (3
    checkpoints kept, each with a validation loss; the decoding setting :data:`RESCORE` recorded, as stage 5 records
    it) on the Whisper tiny.en features ``feats`` of the espeak-ng wavs ``wavs``."""
    from pathlib import Path
    from types import SimpleNamespace

    import yaml

    from elfs2t.bin import decode as decode_bin
    from elfs2t.bin import train as train_bin
    from elfs2t.features.cache import CacheConfig, cache_features

    root = tmp_path_factory.mktemp("tiny_asr")
    models = Path(__file__).resolve().parents[1] / "tools" / "models"
    cuts = espeak_cuts(root / "wav", SPOKEN)
    cuts.to_file(root / "cuts.jsonl.gz")
    feats = root / "dump" / "whisper-tiny.en_trim" / "train"
    cache_features(cuts, feats, CacheConfig(encoder=str(models / "whisper-tiny.en"), batch_size=8))
    conf = {
        "model": "elf_s2t",
        "elf": {"text": {"name_or_path": str(models / "all-MiniLM-L6-v2"), "max_len": 12},
                "denoiser": {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self",
                             "text_pos_scale": 2.0},
                "flow": {"mu_dec": -0.5}, "feat_dim": 384, "stack": 4, "ctc_weight": 1.0, "token_shortlist": True,
                "text_positions": "ctc", "lowercase": True},
        "data": {"train": [{"cuts": str(feats / "cuts.jsonl.gz")}], "valid": [{"cuts": str(feats / "cuts.jsonl.gz")}],
                 "max_duration": 4.0, "num_buckets": 2},
        "optim": {"name": "adamw", "lr": 1.0e-2, "warmup_steps": 2, "ema_decay": 0.5},
        "train": {"max_steps": 40, "log_every": 8, "valid_every": 4, "save_every": 4, "keep_last": 3,
                  "valid_max_batches": 1, "progress": False},
        "decode": {"strategy": "draft", "max_duration": 20},
    }
    (root / "train.yaml").write_text(yaml.safe_dump(conf))
    exp = root / "exp" / "asr"
    assert train_bin.main(["--conf", str(root / "train.yaml"), "--exp-dir", str(exp), "--num-valid-examples", "0"]) == 0
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"train={feats / 'cuts.jsonl.gz'}", *RESCORE,
                            "--record-setting"]) == 0
    return SimpleNamespace(root=root, wavs=[Path(c.recording.sources[0].source) for c in cuts], cuts=cuts,
                           feats=feats / "cuts.jsonl.gz", exp=exp, encoder=models / "whisper-tiny.en",
                           minilm=models / "all-MiniLM-L6-v2")
