"""Decoding loop: hypothesis/reference files, timing, and sharded decoding merging to the same files."""
import json

import pytest

from elfs2t.decode import decode_cuts, merge_shards
from elfs2t.textfile import read_text
from feature_fixtures import make_feature_cuts

TEXTS = ["a b", "c d e", "f", "g h i j", "k l", "m n o"]


def first_word(batch):
    """A deterministic 'model': the first word of each reference (rows stay aligned with cut_ids)."""
    return [t.split()[0] for t in batch["text"]]


def test_single_process_outputs(tmp_path):
    cuts = make_feature_cuts(tmp_path / "feats", TEXTS)
    summary = decode_cuts(first_word, cuts, tmp_path / "out", max_duration=1.0, show_progress=False)
    hyp, ref = read_text(tmp_path / "out" / "text"), read_text(tmp_path / "out" / "ref")
    assert ref == {f"utt{i}": t for i, t in enumerate(TEXTS)}
    assert hyp == {f"utt{i}": t.split()[0] for i, t in enumerate(TEXTS)}
    timing = json.loads((tmp_path / "out" / "timing.json").read_text())
    assert timing["num_utts"] == 6 and timing["audio_seconds"] == pytest.approx(0.2 * 15)
    assert timing == summary and timing["rtfx"] > 0
    lines = (tmp_path / "out" / "utt_timing.txt").read_text().splitlines()
    assert len(lines) == 6 and lines[0].split()[0] == "utt0"


def test_sharded_decoding_merges_to_the_same_files(tmp_path):
    cuts = make_feature_cuts(tmp_path / "feats", TEXTS)
    decode_cuts(first_word, cuts, tmp_path / "one", max_duration=1.0, show_progress=False)
    for rank in range(2):
        decode_cuts(first_word, cuts, tmp_path / "two", max_duration=1.0, rank=rank, world_size=2, show_progress=False)
    summary = merge_shards(tmp_path / "two", 2)
    for name in ("text", "ref", "utt_timing.txt"):
        one = (tmp_path / "one" / name).read_text()
        two = (tmp_path / "two" / name).read_text()
        if name == "utt_timing.txt":  # per-utterance times differ; ids and durations must not
            one = [line.split()[:2] for line in one.splitlines()]
            two = [line.split()[:2] for line in two.splitlines()]
        assert one == two, name
    assert summary["num_utts"] == 6 and summary["world_size"] == 2


def test_missing_shard_is_reported(tmp_path):
    cuts = make_feature_cuts(tmp_path / "feats", TEXTS)
    decode_cuts(first_word, cuts, tmp_path / "two", max_duration=1.0, rank=0, world_size=2, show_progress=False)
    with pytest.raises(FileNotFoundError, match="shard 1 is incomplete"):
        merge_shards(tmp_path / "two", 2)


def test_wrong_number_of_hypotheses_is_an_error(tmp_path):
    cuts = make_feature_cuts(tmp_path / "feats", TEXTS)
    with pytest.raises(RuntimeError, match="returned 1 hypotheses"):
        decode_cuts(lambda b: ["x"], cuts, tmp_path / "o", max_duration=10.0, show_progress=False)
