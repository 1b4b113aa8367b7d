"""Learning curves from train.log: wall time over resumed segments, metrics, the CLI's table and plot."""
import pytest

from elfs2t.analysis.curves import read_curve
from elfs2t.bin.learning_curves import main

LOG = """\
2026-11-30 10:00:00,000 INFO elfs2t.train.trainer: training starts at step 0 (max_steps 50, max_minutes 8.0)
2026-11-30 10:01:00,000 INFO elfs2t.train.trainer: step 25 epoch 0: loss=7.4 lr=0.001
2026-11-30 10:02:30,000 INFO elfs2t.train.trainer: step 30 validation: valid_loss=5.374 examples_wer=0.9371
2026-11-30 10:03:00,000 INFO elfs2t.train.trainer: step 40 epoch 0: loss=6.0
2026-11-30 11:00:00,000 INFO elfs2t.train.trainer: training starts at step 40 (max_steps 80, max_minutes -)
  REF: a line of a validation example without a time stamp
2026-11-30 11:01:00,000 INFO elfs2t.train.trainer: step 60 validation: valid_loss=4.5 examples_wer=0.5
"""


def test_read_curve_sums_segments_and_parses_metrics(tmp_path):
    (tmp_path / "train.log").write_text(LOG)
    points = read_curve(tmp_path / "train.log")
    assert [p.step for p in points] == [30, 60]
    assert points[0].minutes == pytest.approx(2.5)
    # first segment ran 3 min (to its last line at 10:03); the hour of pause is left out; +1 min
    assert points[1].minutes == pytest.approx(4.0)
    assert points[1].metrics == {"valid_loss": 4.5, "examples_wer": 0.5}


def test_read_curve_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no training log"):
        read_curve(tmp_path / "train.log")
    (tmp_path / "train.log").write_text("2026-11-30 10:02:30,000 INFO x: step 30 validation: examples_wer=0.9\n")
    with pytest.raises(ValueError, match="train.log: no 'training starts"):
        read_curve(tmp_path / "train.log")


def test_cli_writes_table_and_plot(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.log").write_text(LOG)
    out = tmp_path / "curves"
    assert main(["--run", f"elf={tmp_path / 'a'}", "--run", f"ar={tmp_path / 'b'}", "--out-dir", str(out)]) == 0
    table = (out / "curves.md").read_text()
    assert "| elf | 30 | 2.5 | 93.7 |" in table and "| ar | 60 | 4.0 | 50.0 |" in table
    assert (out / "curves.png").stat().st_size > 1000
    assert "| elf | 30 |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--run", str(tmp_path / "a")])
    assert exc.value.code == 2 and "expected NAME=EXP_DIR" in capsys.readouterr().err
