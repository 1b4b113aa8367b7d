"""Speed at matched accuracy and the speed/accuracy frontier (elfs2t.bench.matched), on hand-made rows; the plot
draws the frontier and names its systems in the PNG."""
import pytest

from elfs2t.bench.matched import AS_ACCURATE, MORE_ACCURATE, matched_rows, pareto_frontier


def _row(system, family, utt_s, score=None):
    return {"system": system, "family": family, "utt_s": utt_s, "score": score}


WER_ROWS = [
    _row("encoder (audio -> frames)", None, 500.0),  # no family: never compared
    _row("elf draft", "elf", 400.0, 5.0),
    _row("elf flow4", "elf", 100.0, 4.0),
    _row("elf flow1", "elf", 300.0, 9.0),
    _row("elf best", "elf", 50.0, 3.0),
    _row("elf random", "elf", 999.0),  # unscored: left out
    _row("ar greedy", "ar", 200.0, 5.0),
    _row("ar beam4", "ar", 80.0, 4.0),
    _row("ar beam8", "ar", 80.0, 4.0),  # as accurate and as fast as beam4: the first is kept
    _row("faster-whisper", "faster-whisper", 10.0, 3.5),
]


def test_each_elf_row_gets_the_fastest_ar_row_at_least_as_accurate():
    got = {m["system"]: m for m in matched_rows(WER_ROWS, higher_better=False)}
    assert list(got) == ["elf draft", "elf flow4", "elf flow1", "elf best"]
    # a tie in WER counts as accurate enough: greedy (5.0) for the draft (5.0), the faster of the two
    assert (got["elf draft"]["ar_system"], got["elf draft"]["match"]) == ("ar greedy", AS_ACCURATE)
    assert got["elf draft"]["x_utt_s"] == pytest.approx(400 / 200)
    # 4.0 WER: only the beams are as accurate; equal speed and accuracy -> the first listed
    assert (got["elf flow4"]["ar_system"], got["elf flow4"]["ar_utt_s"]) == ("ar beam4", 80.0)
    assert got["elf flow4"]["x_utt_s"] == pytest.approx(100 / 80)
    # 9.0 WER: every AR row is as accurate; the fastest wins although it is the least accurate
    assert got["elf flow1"]["ar_system"] == "ar greedy" and got["elf flow1"]["x_utt_s"] == pytest.approx(1.5)
    # 3.0 WER: no AR row is as accurate (faster-whisper is not an AR row) -> the most accurate AR row, labelled
    best = got["elf best"]
    assert (best["match"], best["ar_system"], best["ar_score"]) == (MORE_ACCURATE, "ar beam4", 4.0)
    assert best["x_utt_s"] == pytest.approx(50 / 80)


def test_bleu_is_matched_upwards_and_the_most_accurate_tie_goes_to_the_faster():
    rows = [_row("elf a", "elf", 100.0, 30.0), _row("elf b", "elf", 100.0, 35.0),
            _row("ar slow", "ar", 20.0, 32.0), _row("ar fast", "ar", 60.0, 32.0), _row("ar low", "ar", 90.0, 25.0)]
    got = {m["system"]: m for m in matched_rows(rows, higher_better=True)}
    # BLEU 30: the AR rows at >= 30 are 'slow' and 'fast' (not 'low', 25 < 30, though faster)
    assert (got["elf a"]["ar_system"], got["elf a"]["match"]) == ("ar fast", AS_ACCURATE)
    # BLEU 35 beats every AR row: the most accurate, 32 twice -> the faster of the two
    assert (got["elf b"]["ar_system"], got["elf b"]["match"]) == ("ar fast", MORE_ACCURATE)
    # read as WERs, the same numbers match the other way: 25 is the best, as accurate as both and the fastest
    wer = {m["system"]: (m["ar_system"], m["match"]) for m in matched_rows(rows, higher_better=False)}
    assert wer == {"elf a": ("ar low", AS_ACCURATE), "elf b": ("ar low", AS_ACCURATE)}


def test_no_scored_ar_rows_no_matched_rows():
    rows = [_row("elf a", "elf", 100.0, 30.0), _row("ar random", "ar", 50.0)]
    assert matched_rows(rows, higher_better=False) == []


def test_pareto_frontier_keeps_the_undominated_rows_slowest_first():
    front = [r["system"] for r in pareto_frontier(WER_ROWS, higher_better=False)]
    # ar beam4/beam8 (80 utt/s, 4.0) are beaten by elf flow4 (100 utt/s, 4.0); ar greedy (200, 5.0) by the draft
    # (400, 5.0); elf flow1 (300, 9.0) by the draft; faster-whisper (10, 3.5) is slower than elf best (50, 3.0)
    assert front == ["elf best", "elf flow4", "elf draft"]
    bleu = [_row("x", "elf", 10.0, 40.0), _row("y", "ar", 20.0, 40.0), _row("z", "whisper", 30.0, 20.0)]
    assert [r["system"] for r in pareto_frontier(bleu, higher_better=True)] == ["y", "z"]
    assert [r["system"] for r in pareto_frontier(bleu, higher_better=False)] == ["z"]


def test_the_plot_draws_every_system_and_names_the_frontier_in_the_png(tmp_path):
    from PIL import Image

    from elfs2t.bench.plot import plot_decode

    rows = WER_ROWS + [{**_row("elf s flow8_g1", "elf", 60.0, 3.8), "steps": 8},
                       {**_row("elf s flow2_g1", "elf", 150.0, 4.5), "steps": 2}]
    png = plot_decode(rows, tmp_path / "plot.png", "WER %", title="t")
    front = [r["system"] for r in pareto_frontier(rows, higher_better=False)]
    assert front == ["elf best", "elf s flow8_g1", "elf flow4", "elf s flow2_g1", "elf draft"]
    with Image.open(png) as image:
        assert image.text["Frontier"] == "; ".join(front) and image.size[0] > 0
    # without scores (random-weight models) there is no frontier
    png = plot_decode([{**r, "score": None} for r in rows], tmp_path / "speed.png")
    with Image.open(png) as image:
        assert image.text["Frontier"] == ""
