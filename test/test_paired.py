"""The paired comparison of two decodings (elfs2t/paired.py, python -m elfs2t.bin.compare_decodes)."""
import numpy as np
import pytest

from elfs2t.bin.compare_decodes import main as compare_main
from elfs2t.errors import InputError
from elfs2t.paired import compare_pairs, paired_bootstrap, utterance_errors
from elfs2t.text.normalize import get_normalizer


def write_decode(folder, set_name, refs: dict, hyps: dict):
    d = folder / set_name
    d.mkdir(parents=True)
    (d / "ref").write_text("".join(f"{u} {t}\n" for u, t in refs.items()))
    (d / "text").write_text("".join(f"{u} {t}\n" for u, t in hyps.items()))
    return folder


REFS = {"u1": "a b c d", "u2": "e f"}


@pytest.fixture
def two_pairs(tmp_path):
    """Pair 1: A perfect, B drops "d"; pair 2: A says "x" for "b", B drops "f". Per utterance (summed over the pairs):
    u1 A 1 error, B 1, 8 words; u2 A 0, B 1, 4 words."""
    a1 = write_decode(tmp_path / "a1", "s", REFS, {"u1": "a b c d", "u2": "e f"})
    b1 = write_decode(tmp_path / "b1", "s", REFS, {"u1": "a b c", "u2": "e f"})
    a2 = write_decode(tmp_path / "a2", "s", REFS, {"u1": "a x c d", "u2": "e f"})
    b2 = write_decode(tmp_path / "b2", "s", REFS, {"u1": "a b c d", "u2": "e"})
    return [(a1, b1), (a2, b2)]


def test_utterance_errors_after_the_scorers_normaliser():
    norm = get_normalizer("default")
    assert utterance_errors("The cat, sat.", "the bat sat down", norm) == (2, 3)  # cat -> bat, + down
    assert utterance_errors("", "a b", norm) == (2, 0)  # an empty reference: every word inserted


def test_bootstrap_of_a_constant_difference_is_that_difference():
    low, high, p = paired_bootstrap(np.ones(4), np.full(4, 10), resamples=50)
    assert (low, high, p) == pytest.approx((10.0, 10.0, 1.0))
    assert paired_bootstrap(-np.ones(4), np.full(4, 10), resamples=50)[2] == 0.0
    with pytest.raises(ValueError, match="same non-empty 1-D shape"):
        paired_bootstrap(np.ones(3), np.ones(4))


def test_pairs_add_up_per_utterance(two_pairs):
    (r,) = compare_pairs(two_pairs, ["s"], resamples=2000, seed=0)
    assert (r.num_utts, r.ref_words, r.errors_a, r.errors_b, r.missing) == (2, 12, 1, 2, 0)
    assert r.diff == pytest.approx(100 * (1 - 2) / 12)
    # resamples of the two utterances: u1 twice -> 0 / 16, u2 twice -> -2 / 8, one of each -> -1 / 12
    assert -25.0 <= r.low <= r.diff <= r.high <= 0.0
    assert 0.2 < r.p_a_not_better < 0.3  # A is not better only when u2 is never drawn (probability 1/4)
    again = compare_pairs(two_pairs, ["s"], resamples=2000, seed=0)[0]
    assert (again.low, again.high, again.p_a_not_better) == (r.low, r.high, r.p_a_not_better)


def test_several_sets_get_a_row_for_all_of_them(tmp_path):
    pairs = []
    for side, hyp in (("a", "a b"), ("b", "a")):
        folder = tmp_path / side
        for s in ("dev", "test"):
            write_decode(folder, s, {"u1": "a b"}, {"u1": hyp})
        pairs.append(folder)
    results = compare_pairs([tuple(pairs)], ["dev", "test"], resamples=10)
    assert [r.set_name for r in results] == ["dev", "test", "all"]
    assert (results[-1].num_utts, results[-1].errors_b, results[-1].ref_words) == (2, 2, 4)


def test_a_missing_hypothesis_counts_as_empty_and_is_counted(tmp_path):
    a = write_decode(tmp_path / "a", "s", REFS, {"u1": "a b c d"})  # u2 missing
    b = write_decode(tmp_path / "b", "s", REFS, REFS)
    (r,) = compare_pairs([(a, b)], ["s"], resamples=10)
    assert (r.errors_a, r.errors_b, r.missing) == (2, 0, 1)


def test_bad_pairs_are_refused_with_the_file_or_utterance_named(tmp_path, capsys):
    a = write_decode(tmp_path / "a", "s", REFS, REFS)
    b = write_decode(tmp_path / "b", "s", {"u1": "a b c d", "u2": "e g"}, REFS)
    with pytest.raises(InputError, match="different references, e.g. utterance 'u2'"):
        compare_pairs([(a, b)], ["s"])
    with pytest.raises(FileNotFoundError, match=r"other/ref: no such file"):
        compare_pairs([(a, a)], ["other"])
    empty = write_decode(tmp_path / "empty", "s", {}, {})
    with pytest.raises(InputError, match=r"empty/s/ref: no utterances to compare"):
        compare_pairs([(empty, empty)], ["s"])
    assert compare_main(["--a", str(a), str(a), "--b", str(a), "--sets", "s"]) == 2
    assert "--a has 2 decode folders and --b 1: they pair in order" in capsys.readouterr().err


def test_the_entry_point_prints_and_writes_the_table(two_pairs, tmp_path, capsys):
    (a1, b1), (a2, b2) = two_pairs
    out = tmp_path / "cmp.md"
    assert compare_main(["--a", str(a1), str(a2), "--b", str(b1), str(b2), "--sets", "s", "--labels", "flow", "readout",
                         "--resamples", "100", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text()
    assert printed.startswith("flow (A) against readout (B), 2 pairs of decodes")
    assert "| s | 2 | 8.33 | 16.67 | -8.33 |" in printed
