"""elfs2t.features.cache / storage and the stage-2 entry point: round trip, resume, bad audio, refusal."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

import elfs2t.features.cache as cache_mod
from elfs2t.features.cache import CacheConfig, CacheError, cache_features
from elfs2t.features.record import read_record
from elfs2t.features.storage import KaldiioArkReader, KaldiioArkWriter, open_cuts
from elfs2t.features.whisper import WhisperFrontEnd

TEXTS = ["hello world", "the cat sat on the mat", "one two three four", "good morning", "speech to text"]


@pytest.fixture(scope="module")
def cuts(tmp_path_factory):
    """espeak-ng utterances (22.05 kHz wav files, resampled on reading) as MonoCuts."""
    d = tmp_path_factory.mktemp("wav")
    out = []
    for i, text in enumerate(TEXTS):
        wav = d / f"u{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        rec = Recording.from_file(wav, recording_id=f"u{i}")
        sup = SupervisionSegment(id=f"u{i}", recording_id=rec.id, start=0, duration=rec.duration, text=text)
        out.append(MonoCut(id=f"u{i}", start=0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup]))
    return CutSet.from_cuts(out)


def _cfg(model, **kw):
    return CacheConfig(encoder=str(model), batch_size=2, shard_size=2, **kw)


def test_storage_keeps_fp16_and_publishes_only_on_close(tmp_path):
    w = KaldiioArkWriter(tmp_path / "feats.0.ark")
    a = np.arange(12, dtype=np.float16).reshape(4, 3)
    key = w.write("utt1", a)
    assert not (tmp_path / "feats.0.ark").exists()  # still under .tmp
    w.close()
    got = KaldiioArkReader(str(tmp_path / "feats.0.ark")).read(key, 1, 3)
    assert got.dtype == np.float16 and np.array_equal(got, a[1:3])
    assert np.array_equal(kaldiio.load_scp(str(tmp_path / "feats.0.scp"))["utt1"], a)


def test_round_trip_through_cuts(rand_whisper, cuts, tmp_path):
    out = tmp_path / "dump" / "x"
    report = cache_features(cuts, out, _cfg(rand_whisper))
    assert (report.num_cuts, report.num_failed, report.num_encoded) == (5, 0, 5) and report.rtfx > 0
    assert "x-real-time" in report.summary()
    cached = open_cuts(out / "cuts.jsonl.gz")
    assert [c.id for c in cached] == [c.id for c in cuts]  # manifest order kept
    enc = WhisperFrontEnd.from_pretrained(str(rand_whisper), "trim").build()
    scp = kaldiio.load_scp(str(out / "feats.scp"))
    for cut, orig in zip(cached, cuts):
        feats = cut.load_features()
        ref = enc([orig.resample(16000).load_audio()[0]])[0].numpy().astype(np.float16)
        assert feats.dtype == np.float16 and feats.shape == (cut.num_frames, 16)
        assert cut.frame_shift == 0.02 and cut.features.type == "whisper-rand_trim"
        np.testing.assert_array_equal(feats, ref)
        np.testing.assert_array_equal(scp[cut.id], ref)
    again = cache_features(cuts, out, _cfg(rand_whisper))  # finished: skipped
    assert again.skipped and again.num_cuts == 5
    record = read_record(out / "encoder.json")
    assert (record.tag, record.model, record.mode, record.dtype) == ("whisper-rand_trim", str(rand_whisper), "trim",
                                                                     "float32")
    assert record.fingerprint == enc.fingerprint and len(record.fingerprint) == 16


def test_a_dump_can_be_moved_and_read_from_anywhere(rand_whisper, cuts, tmp_path, monkeypatch):
    """Stage 2 stores archive paths relative to the manifest: a copied dump folder reads from another working
    directory; manifests of older runs (paths relative to where stage 2 ran, or absolute) keep loading."""
    import shutil

    monkeypatch.chdir(tmp_path)
    cache_features(cuts.subset(first=2), Path("dump/x"), _cfg(rand_whisper))  # relative out_dir, as run.sh does
    assert {c.features.storage_path for c in CutSet.from_file("dump/x/cuts.jsonl.gz")} == {"feats.0.ark"}
    ref = [c.load_features() for c in open_cuts("dump/x/cuts.jsonl.gz")]
    shutil.copytree("dump/x", tmp_path / "elsewhere" / "shared")
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    moved = [c.load_features() for c in open_cuts(tmp_path / "elsewhere" / "shared" / "cuts.jsonl.gz")]
    assert all(np.array_equal(a, b) for a, b in zip(ref, moved))
    # an older manifest: the path relative to the recipe folder stage 2 ran in, read from there and after a move
    old = CutSet.from_cuts([c.with_features_path_prefix("dump/x") for c in CutSet.from_file(tmp_path / "dump/x/cuts.jsonl.gz")])
    old.to_file(tmp_path / "dump" / "x" / "old.jsonl.gz")
    monkeypatch.chdir(tmp_path)
    assert all(np.array_equal(a, c.load_features()) for a, c in zip(ref, open_cuts("dump/x/old.jsonl.gz")))
    shutil.copy(tmp_path / "dump/x/old.jsonl.gz", tmp_path / "elsewhere" / "shared")
    monkeypatch.chdir(tmp_path / "other")
    assert all(np.array_equal(a, c.load_features())
               for a, c in zip(ref, open_cuts(tmp_path / "elsewhere" / "shared" / "old.jsonl.gz")))
    absolute = CutSet.from_cuts([c.with_features_path_prefix(str(tmp_path / "dump/x"))
                                 for c in CutSet.from_file(tmp_path / "dump/x/cuts.jsonl.gz")])
    absolute.to_file(tmp_path / "abs.jsonl.gz")
    assert all(np.array_equal(a, c.load_features()) for a, c in zip(ref, open_cuts(tmp_path / "abs.jsonl.gz")))


def test_resume_after_kill_recomputes_only_unfinished_shards(rand_whisper, cuts, tmp_path, monkeypatch):
    out = tmp_path / "x"
    real = cache_mod.encode_shard
    calls = []

    def killed_in_shard_1(shard, out_dir, k, encoder, *a, **kw):
        calls.append(k)
        if k == 1:  # die half-way through writing shard 1
            w = KaldiioArkWriter(out_dir / "feats.1.ark")
            w.write("u2", np.zeros((3, 16), np.float16))
            raise KeyboardInterrupt
        return real(shard, out_dir, k, encoder, *a, **kw)

    monkeypatch.setattr(cache_mod, "encode_shard", killed_in_shard_1)
    with pytest.raises(KeyboardInterrupt):
        cache_features(cuts, out, _cfg(rand_whisper))
    assert (out / "shards" / "0.done").is_file() and not (out / "shards" / "1.done").exists()
    assert not (out / "feats.1.ark").exists() and (out / "feats.1.ark.tmp").exists()  # truncated, never published
    assert not (out / "cuts.jsonl.gz").exists()

    calls.clear()
    monkeypatch.setattr(cache_mod, "encode_shard", lambda s, o, k, *a, **kw: (calls.append(k), real(s, o, k, *a, **kw))[1])
    report = cache_features(cuts, out, _cfg(rand_whisper))
    assert calls == [1, 2] and report.num_encoded == 3 and report.num_cuts == 5
    fresh = cache_features(cuts, tmp_path / "fresh", _cfg(rand_whisper))
    assert fresh.num_cuts == 5
    for a, b in zip(open_cuts(out / "cuts.jsonl.gz"), open_cuts(tmp_path / "fresh" / "cuts.jsonl.gz")):
        np.testing.assert_array_equal(a.load_features(), b.load_features())


def test_unreadable_audio_is_reported_and_excluded(rand_whisper, cuts, tmp_path):
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"RIFF not really a wav file")
    bad = copy.deepcopy(cuts[0]).with_id("broken")
    bad.recording.sources[0].source = str(bad_wav)
    mixed = CutSet.from_cuts([bad] + list(cuts)[1:3])
    out = tmp_path / "x"
    report = cache_features(mixed, out, _cfg(rand_whisper))
    assert (report.num_cuts, report.num_failed) == (2, 1)
    lines = (out / "failed.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("broken\t")
    assert [c.id for c in CutSet.from_file(out / "cuts.jsonl.gz")] == ["u1", "u2"]


def test_other_config_is_refused_unless_forced(rand_whisper, cuts, tmp_path):
    out = tmp_path / "x"
    sub = cuts.subset(first=2)
    cache_features(sub, out, _cfg(rand_whisper))
    with pytest.raises(CacheError, match="--force"):
        cache_features(sub, out, _cfg(rand_whisper, mode="pad30"))
    report = cache_features(sub, out, _cfg(rand_whisper, mode="pad30"), force=True)
    assert not report.skipped and json.loads((out / "plan.json").read_text())["tag"] == "whisper-rand_pad30"
    assert CutSet.from_file(out / "cuts.jsonl.gz")[0].features.type == "whisper-rand_pad30"


@pytest.mark.slow
def test_entry_point_with_two_processes(rand_whisper, cuts, tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    cuts.to_file(manifests / "cuts_dev.jsonl.gz")
    cmd = [sys.executable, "-m", "elfs2t.bin.cache_features", "--manifest-dir", str(manifests), "--sets", "dev",
           "--encoder", str(rand_whisper), "--mode", "pad30", "--dump-dir", str(tmp_path / "dump"),
           "--nj", "2", "--shard-size", "2", "--num-threads", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "x-real-time" in res.stdout and "5 cuts cached" in res.stdout
    dev = tmp_path / "dump" / "whisper-rand_pad30" / "dev"
    cached = open_cuts(dev / "cuts.jsonl.gz").to_eager()
    assert len(cached) == 5 and all(c.load_features().shape == (c.num_frames, 16) for c in cached)
    record = read_record(dev / "encoder.json")  # written from a worker's encoder
    assert (record.tag, record.mode, record.dtype, record.hidden_size) == ("whisper-rand_pad30", "pad30", "float32", 16)
    assert record.fingerprint == WhisperFrontEnd.from_pretrained(str(rand_whisper)).build().fingerprint
    res = subprocess.run([sys.executable, "-m", "elfs2t.bin.cache_features", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--ngpu" in res.stdout and "--mode" in res.stdout
