"""Speed perturbation of training cuts (elfs2t.data.perturb, elfs2t.bin.speed_perturb)."""
from __future__ import annotations

import numpy as np
import pytest
from lhotse import CutSet

from conftest import tone_cuts
from elfs2t.bin import speed_perturb as cli
from elfs2t.data.perturb import check_factors, speed_perturb

SR = 16000


def test_all_makes_one_copy_per_factor_with_scaled_audio(tmp_path):
    cuts = tone_cuts(tmp_path, 2)
    sp = list(speed_perturb(cuts, (0.9, 1.1)))
    assert [c.id for c in sp] == ["u0_sp0.9", "u1_sp0.9", "u0_sp1.1", "u1_sp1.1"]
    slow, fast = sp[0], sp[2]
    assert slow.duration == pytest.approx(1 / 0.9, abs=1e-3) and fast.duration == pytest.approx(1 / 1.1, abs=1e-3)
    assert slow.supervisions[0].text == "WORD 0" and slow.supervisions[0].duration == pytest.approx(slow.duration)
    audio = slow.load_audio()
    assert audio.shape[1] == pytest.approx(SR / 0.9, abs=2)
    # 0.9x speed lowers the pitch: the tone's peak moves from 440 Hz to 396 Hz
    spec = np.abs(np.fft.rfft(audio[0]))
    assert np.fft.rfftfreq(audio.shape[1], 1 / SR)[spec.argmax()] == pytest.approx(396, abs=3)


def test_one_draws_a_factor_per_cut_independent_of_order(tmp_path):
    cuts = tone_cuts(tmp_path, 6)
    one = {c.id.split("_sp")[0]: c.id for c in speed_perturb(cuts, (0.9, 1.1), per_cut="one", seed=3)}
    assert len(one) == 6 and {i.rsplit("_sp", 1)[1] for i in one.values()} == {"0.9", "1.1"}
    reversed_cuts = CutSet.from_cuts(list(cuts)[::-1])
    again = {c.id.split("_sp")[0]: c.id for c in speed_perturb(reversed_cuts, (0.9, 1.1), per_cut="one", seed=3)}
    assert again == one
    other_seed = {c.id.split("_sp")[0]: c.id for c in speed_perturb(cuts, (0.9, 1.1), per_cut="one", seed=4)}
    assert other_seed != one  # 6 cuts: the same draws under another seed would be a 1-in-64 coincidence


@pytest.mark.parametrize("factors, match", [((), "no factors"), ((1.0,), "!= 1"), ((0.9, -1.0), "> 0"),
                                            ((0.9, 0.9), "repeated")])
def test_bad_factors(factors, match):
    with pytest.raises(ValueError, match=match):
        check_factors(factors)


def test_cli_writes_manifest_and_rejects_bad_input(tmp_path, caplog):
    src = tmp_path / "cuts.jsonl.gz"
    tone_cuts(tmp_path, 3).to_file(src)
    out = tmp_path / "sp" / "cuts_sp.jsonl.gz"
    assert cli.main(["--cuts", str(src), "--out", str(out), "--factors", "0.9", "1.1"]) == 0
    written = CutSet.from_file(out)
    assert len(written) == 6 and not list(out.parent.glob("*.tmp*"))
    with pytest.raises(SystemExit, match="not found"):
        cli.main(["--cuts", str(tmp_path / "missing.jsonl.gz"), "--out", str(out)])
    with pytest.raises(SystemExit, match="must differ"):
        cli.main(["--cuts", str(src), "--out", str(src)])
    with pytest.raises(SystemExit, match="!= 1"):
        cli.main(["--cuts", str(src), "--out", str(out), "--factors", "1.0"])
    assert len(CutSet.from_file(src)) == 3  # the input is untouched


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0 and "--per-cut" in capsys.readouterr().out
