"""elfs2t.load / python -m elfs2t.bin.transcribe on your own audio: the same text as stages 2 + 5, any input format,
segmentation of long audio, n-best lists and word times, and clear errors for bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

import elfs2t
from elfs2t.config import ConfigError
from elfs2t.inference.audio import InputError, TooLongError
from elfs2t.inference.setting import read_setting
from elfs2t.textfile import read_text

from conftest import ROOT

pytestmark = pytest.mark.slow  # a model trained on real Whisper tiny.en features (~30 s once per session), one subprocess


def stage5_text(exp: Path) -> dict[str, str]:
    """Stage 5's hypotheses of the training set under the recorded setting (the fixture decoded them)."""
    return read_text(exp / f"decode_{read_setting(exp)[1]}" / "train" / "text")


def run_cli(*args, cwd):
    """The command in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "elfs2t.bin.transcribe", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def run_main(capsys, *args):
    """The command's main() in this process: ``(exit status, stdout, stderr)``."""
    from elfs2t.bin import transcribe

    capsys.readouterr()  # what earlier steps printed
    try:
        code = transcribe.main([str(a) for a in args])
    except SystemExit as exc:  # --help
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_api_and_command_give_stage_5_text(tiny_asr, tmp_path):
    """The recorded setting decodes the wav files as stage 5 decoded their cached features (rescored CTC draft);
    flow sampling from noise too (the sampler's noise draws are stage 5's); the command from another folder gives
    the same lines."""
    expected = stage5_text(tiny_asr.exp)
    assert any(expected.values())  # the model writes text, not nothing
    model = elfs2t.load(tiny_asr.exp)
    assert model.tasks == ["asr"] and "EMA weights of step 40" in repr(model)
    got = model.transcribe([str(w) for w in tiny_asr.wavs])
    assert {t.id: t.text for t in got} == expected
    one = model.transcribe(tiny_asr.wavs[2])  # one input: one Transcript
    assert one.text == expected["u2"] and one.source == str(tiny_asr.wavs[2]) and one.task == "asr"

    noise = ["decode.strategy=flow", "decode.flow.steps=2"]
    from elfs2t.bin import decode as decode_bin

    assert decode_bin.main(["--exp-dir", str(tiny_asr.exp), "--set", f"train={tiny_asr.feats}", "--tag", "noise2",
                            *noise]) == 0
    flow = read_text(tiny_asr.exp / "decode_noise2" / "train" / "text")
    assert {t.id: t.text for t in elfs2t.load(tiny_asr.exp, overrides=noise).transcribe(tiny_asr.wavs)} == flow
    assert flow != expected  # a different setting, a different text: the comparison above means something

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run_cli("--model", tiny_asr.exp, *tiny_asr.wavs, cwd=elsewhere)
    assert res.returncode == 0, res.stderr[-3000:]
    assert dict(line.split(" ", 1) if " " in line else (line, "") for line in res.stdout.splitlines()) == expected


def test_any_rate_channels_and_format(tiny_asr, tmp_path):
    """Stereo, FLAC and 48 kHz inputs go through Lhotse's resampling and mix-down: identical channels and a
    lossless format give exactly the mono wav's text."""
    model = elfs2t.load(tiny_asr.exp)
    audio, rate = sf.read(tiny_asr.wavs[0], dtype="int16")
    sf.write(tmp_path / "stereo.wav", np.stack([audio, audio], axis=1), rate)
    sf.write(tmp_path / "same.flac", audio, rate)
    expected = model.transcribe(tiny_asr.wavs[0]).text
    got = model.transcribe([tmp_path / "stereo.wav", tmp_path / "same.flac"])
    assert [t.id for t in got] == ["stereo", "same"] and [t.text for t in got] == [expected, expected]
    from lhotse import Recording

    Recording.from_file(tiny_asr.wavs[0]).resample(48000).to_cut().save_audio(tmp_path / "high.wav")
    high = model.transcribe(tmp_path / "high.wav")
    assert abs(high.duration - got[0].duration) < 0.01 and high.text  # decoded, from a 48 kHz file


def test_long_audio_is_segmented_or_refused(tiny_asr, tmp_path):
    """Audio longer than the longest training utterance is split at quiet points into pieces the model holds
    (the pieces' texts joined, word times on the input's clock); with segmentation off it is refused, saying so."""
    model = elfs2t.load(tiny_asr.exp)
    parts = [sf.read(w, dtype="float32")[0] for w in tiny_asr.wavs[:3]]
    rate = sf.info(tiny_asr.wavs[0]).samplerate
    gap = np.zeros(int(0.4 * rate), dtype=np.float32)
    long = np.concatenate([parts[0], gap, parts[1], gap, parts[2]])
    sf.write(tmp_path / "long.wav", long, rate)
    assert model.max_seconds == pytest.approx(1.7)  # the longest training utterance, 1.68 s, rounded up
    t = model.transcribe(tmp_path / "long.wav", word_times=True)
    assert len(t.segments) >= 3 and all(s.end - s.start <= model.max_seconds + 1e-6 for s in t.segments)
    assert t.segments[0].start == 0 and t.segments[-1].end == pytest.approx(t.duration)
    assert all(a.end == b.start for a, b in zip(t.segments, t.segments[1:]))  # no audio dropped
    assert t.text == " ".join(s.text for s in t.segments if s.text) and t.text
    starts = [w.start for w in t.words]
    assert starts == sorted(starts) and max(w.end for w in t.words) <= t.duration
    with pytest.raises(TooLongError) as err:
        model.transcribe(tmp_path / "long.wav", segment=False)
    assert str(err.value) == (f"{tmp_path / 'long.wav'}: {t.duration:.1f} s of audio is longer than the model holds "
                              "(1.7 s: its longest training utterance); let it be segmented (the default) or pass a "
                              "larger --max-segment")
    wide = model.transcribe(tmp_path / "long.wav", max_segment=30)
    assert len(wide.segments) == 1


def test_wav_scp_cuts_manifest_and_bad_inputs(tiny_asr, tmp_path, capsys):
    """wav.scp lines and cuts manifests give their own ids; an unreadable file is named and skipped by the
    command (exit 1) while the rest is decoded; a piped wav.scp line is refused with its line."""
    expected = stage5_text(tiny_asr.exp)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"first {tiny_asr.wavs[0]}\nsecond {tiny_asr.wavs[1]}\n")
    manifest = tmp_path / "some_cuts.jsonl.gz"
    CutSet.from_cuts(list(tiny_asr.cuts)[3:]).to_file(manifest)
    model = elfs2t.load(tiny_asr.exp)
    got = model.transcribe([scp, manifest])
    assert [(t.id, t.text) for t in got] == [("first", expected["u0"]), ("second", expected["u1"]),
                                            ("u3", expected["u3"]), ("u4", expected["u4"])]
    assert got[0].source == f"{scp}:1" and got[3].source == f"{manifest}:u4"

    (tmp_path / "broken.wav").write_bytes(b"RIFF but not audio")
    code, out, err = run_main(capsys, "--model", tiny_asr.exp, tmp_path / "broken.wav", tmp_path / "missing.wav",
                              tiny_asr.wavs[1])
    assert code == 1 and out == f"u1 {expected['u1']}\n"
    assert f"{tmp_path / 'missing.wav'}: no such audio file" in err
    assert "2 input(s) skipped" in err and f"{tmp_path / 'broken.wav'}: cannot read audio" in err

    piped = tmp_path / "piped.scp"
    piped.write_text(f"a {tiny_asr.wavs[0]}\nb sox x.wav -t wav - |\n")
    with pytest.raises(InputError) as err:
        model.transcribe(piped)
    assert str(err.value) == (f"{piped}:2: a piped command ('sox x.wav -t wav - |') is not supported: write the "
                              "audio to a file")
    with pytest.raises(ConfigError, match=r"does not translate \(its tasks: \['asr'\]\)"):
        model.translate(tiny_asr.wavs[0])


def test_nbest_json_and_ctm_output(tiny_asr, tmp_path, capsys):
    """JSON lines carry the n-best list (the rescoring candidates, best first, the first being the text) and word
    times; the CTM has one line per word, in order, inside the audio."""
    expected = stage5_text(tiny_asr.exp)
    code, out, err = run_main(capsys, "--model", tiny_asr.exp, "--format", "json", "--nbest", "3", "--word-times",
                              *tiny_asr.wavs[:2])
    assert code == 0, err[-3000:]
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["u0", "u1"]
    for r in rows:
        seg = r["segments"][0]
        nbest = seg["nbest"]
        assert r["text"] == expected[r["id"]] == nbest[0]["text"] and 1 <= len(nbest) <= 3
        scores = [h["score"] for h in nbest]
        assert scores == sorted(scores, reverse=True) and len({h["text"] for h in nbest}) == len(nbest)
        assert [w["word"] for w in seg["words"]] == r["text"].split()
    code, out, err = run_main(capsys, "--model", tiny_asr.exp, "--format", "ctm", "--out", tmp_path / "u0.ctm",
                              tiny_asr.wavs[0])
    assert code == 0 and out == "", err[-3000:]
    lines = [line.split() for line in (tmp_path / "u0.ctm").read_text().splitlines()]
    assert [line[4] for line in lines] == expected["u0"].split()
    duration = tiny_asr.cuts[0].duration
    for utt, channel, start, dur, _, conf in lines:
        assert (utt, channel) == ("u0", "1") and 0 <= float(start) and float(start) + float(dur) <= duration + 1e-3
        assert 0 < float(conf) <= 1
    assert [float(line[2]) for line in lines] == sorted(float(line[2]) for line in lines)


def test_command_help_and_errors(tiny_asr, tmp_path, capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and "--nbest" in out and "--format" in out and "wav.scp" in out
    code, _, err = run_main(capsys, "--model", tmp_path, tiny_asr.wavs[0])
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"transcribe: error: {tmp_path}: not a model folder (an experiment folder exp/<tag> with config.yaml, or a "
        "folder written by python -m elfs2t.bin.export with model.json)")
    code, _, err = run_main(capsys, "--model", tiny_asr.exp, "--no-segment", "--max-segment", "0.5", tiny_asr.wavs[0])
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"transcribe: error: {tiny_asr.wavs[0]}: {tiny_asr.cuts[0].duration:.1f} s of audio is longer than the model "
        "holds (0.5 s: --max-segment); let it be segmented (the default) or pass a larger --max-segment")
    code, _, err = run_main(capsys, "--model", tiny_asr.exp, "--task", "st:de", tiny_asr.wavs[0])
    assert code == 2 and err.strip().splitlines()[-1] == f"transcribe: error: --task st:de: {tiny_asr.exp} does ['asr']"


def test_readme_shows_the_three_line_use(tiny_asr, capsys):
    """The README's Python example runs as written (on the tiny model and one of its wavs)."""
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in readme.split("```python")[1:] if "elfs2t.load(" in b).split("```")[0]
    lines = [line for line in block.strip().splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 3, lines
    code = block.replace('"exp/asr_elf"', repr(str(tiny_asr.exp))).replace('"a.wav"', repr(str(tiny_asr.wavs[0])))
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == stage5_text(tiny_asr.exp)["u0"]


def test_a_translation_model_translates(tiny_asr, tmp_path, capsys):
    """A model trained on translation targets does st:<tgt>: translate() and the command (its only task) use it,
    transcribe() is refused; the batch's task reaches a model with task tokens."""
    import yaml

    from elfs2t.bin import train as train_bin

    def with_translation(cut):
        sup = cut.supervisions[0]
        sup.custom = {"translated_text": {"en": " ".join(reversed(sup.text.split()))}}
        return cut

    st_cuts = tiny_asr.feats.parent / "cuts_st.jsonl.gz"  # beside the archives it references
    CutSet.from_file(tiny_asr.feats).map(with_translation).to_file(st_cuts)
    conf = yaml.safe_load((tiny_asr.root / "train.yaml").read_text())
    conf["data"] = {**conf["data"], "train": [{"cuts": str(st_cuts), "target": "translation:en"}], "valid": []}
    conf["elf"]["tasks"] = ["st:en"]
    conf["train"].update(max_steps=2, valid_every=0, save_every=2)
    (tmp_path / "st.yaml").write_text(yaml.safe_dump(conf))
    exp = tmp_path / "exp" / "st"
    assert train_bin.main(["--conf", str(tmp_path / "st.yaml"), "--exp-dir", str(exp), "--num-valid-examples", "0"]) == 0
    model = elfs2t.load(exp)
    assert model.tasks == ["st:en"] and model.default_task() == "st:en"
    out = model.translate(tiny_asr.wavs[:2])
    assert [t.task for t in out] == ["st:en", "st:en"]
    with pytest.raises(ConfigError, match=r"does not transcribe \(its tasks: \['st:en'\]\): use translate\(\)"):
        model.transcribe(tiny_asr.wavs[0])
    with pytest.raises(ConfigError, match=r"does not translate into de \(its tasks: \['st:en'\]\)"):
        model.translate(tiny_asr.wavs[0], target="de")
    code, stdout, _ = run_main(capsys, "--model", exp, "--format", "json", tiny_asr.wavs[0])
    assert code == 0 and json.loads(stdout)["task"] == "st:en" and json.loads(stdout)["text"] == out[0].text
