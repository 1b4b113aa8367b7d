"""Noisy copies of test sets (elfs2t.data.noise, elfs2t.bin.add_noise)."""
from __future__ import annotations

import numpy as np
import pytest
from lhotse import CutSet

from conftest import tone_cuts
from elfs2t.bin import add_noise as cli
from elfs2t.data.noise import add_white_noise, cut_rng, noisy_copies


@pytest.mark.parametrize("snr", [20.0, 10.0, 0.0, -5.0])
def test_noise_power_is_snr_db_under_the_audio(snr):
    x = 0.05 * np.sin(np.linspace(0, 400 * np.pi, 48000))  # quiet: no clipping even at -5 dB
    y = add_white_noise(x, snr, np.random.default_rng(0))
    measured = 10 * np.log10(np.mean(x ** 2) / np.mean((y - x) ** 2))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert measured == pytest.approx(snr, abs=0.05)


def test_a_sum_that_would_clip_is_scaled_down_with_the_snr_kept():
    x = 0.9 * np.sign(np.sin(np.linspace(0, 200 * np.pi, 16000)))  # a loud square wave: 0.9 + noise clips
    y = add_white_noise(x, 0.0, np.random.default_rng(1))
    assert np.abs(y).max() <= 1.0
    gain = np.dot(y, x) / np.dot(x, x)  # the audio's share of y; the rest is the (scaled) noise
    assert gain < 0.5
    assert 10 * np.log10(np.mean((gain * x) ** 2) / np.mean((y - gain * x) ** 2)) == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize("audio", [np.zeros(100), np.array([]), np.array([0.1, np.nan])])
def test_silent_or_broken_audio_has_no_snr(audio):
    with pytest.raises(ValueError, match="no signal-to-noise ratio"):
        add_white_noise(audio, 10.0, np.random.default_rng(0))


def test_the_noise_of_a_cut_depends_on_its_id_and_the_seed_only():
    a, b = cut_rng(0, "u1").standard_normal(4), cut_rng(0, "u1").standard_normal(4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, cut_rng(0, "u2").standard_normal(4))
    assert not np.allclose(a, cut_rng(1, "u1").standard_normal(4))


def test_copies_keep_ids_texts_and_durations_and_pair_with_the_clean_set(tmp_path):
    cuts = tone_cuts(tmp_path, 3, stereo=True)
    copies = list(noisy_copies(cuts, 10.0, tmp_path / "noisy"))
    assert [c.id for c in copies] == ["u0", "u1", "u2"]
    for clean, noisy in zip(cuts, copies):
        assert noisy.supervisions[0].text == clean.supervisions[0].text
        assert noisy.supervisions[0].recording_id == noisy.recording.id
        assert noisy.duration == pytest.approx(clean.duration)
        x = clean.load_audio().mean(axis=0)  # the stereo tone mixed down to mono
        y = noisy.load_audio()
        assert y.shape == (1, x.size)
        assert 10 * np.log10(np.mean(x ** 2) / np.mean((y[0] - x) ** 2)) == pytest.approx(10.0, abs=0.1)
    assert sorted(p.name for p in (tmp_path / "noisy").iterdir()) == ["u0.flac", "u1.flac", "u2.flac"]
    # the same noise in another order: seeded per cut id
    again = list(noisy_copies(CutSet.from_cuts(list(cuts)[::-1]), 10.0, tmp_path / "again"))
    np.testing.assert_array_equal(again[-1].load_audio(), copies[0].load_audio())


def test_cli_writes_the_manifest_and_counts_the_silent_cut(tmp_path, caplog):
    src = tmp_path / "cuts.jsonl.gz"
    tone_cuts(tmp_path, 3, stereo=True, silent=(1,)).to_file(src)
    out = tmp_path / "m" / "cuts_snr5.jsonl.gz"
    assert cli.main(["--cuts", str(src), "--out", str(out), "--snr", "5", "--audio-dir", str(tmp_path / "a"),
                     "--no-progress"]) == 0
    assert [c.id for c in CutSet.from_file(out)] == ["u0", "u2"]
    skipped = out.with_name(out.name + ".skipped.tsv").read_text()
    assert skipped.startswith("u1\tValueError: silent or non-finite audio")
    assert "1 of 3 cuts left out" in caplog.text
    assert not list(out.parent.glob(".tmp*"))


def test_cli_bad_input_gives_one_line_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "cuts.jsonl.gz"
    tone_cuts(tmp_path, 2, stereo=True).to_file(src)
    out = tmp_path / "out.jsonl.gz"
    common = ["--audio-dir", str(tmp_path / "a"), "--no-progress"]
    assert cli.main(["--cuts", str(tmp_path / "missing.jsonl.gz"), "--out", str(out), "--snr", "5", *common]) == 1
    assert "add_noise: error: cuts manifest not found:" in capsys.readouterr().err
    assert cli.main(["--cuts", str(src), "--out", str(src), "--snr", "5", *common]) == 2
    assert "--out must differ from --cuts" in capsys.readouterr().err
    assert cli.main(["--cuts", str(src), "--out", str(out), "--snr", "nan", *common]) == 2
    assert "--snr must be a finite number" in capsys.readouterr().err
    assert not out.exists() and len(CutSet.from_file(src)) == 2  # the input is untouched
    all_silent = tmp_path / "silent.jsonl.gz"
    tone_cuts(tmp_path, 2, stereo=True, silent=(0, 1)).to_file(all_silent)
    assert cli.main(["--cuts", str(all_silent), "--out", str(out), "--snr", "5", *common]) == 1
    assert "no cut could be made noisy (2 left out" in capsys.readouterr().err
    assert not out.exists()


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert "signal-to-noise ratio" in capsys.readouterr().out
