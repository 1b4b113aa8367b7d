"""LibriSpeech stage 1 on a tiny LibriSpeech-format tree: set names, combining, bad rows, markers, re-runs."""
import json

import pytest

from elfs2t.bin.prepare_data import main as prepare_main
from elfs2t.data.librispeech import prepare_librispeech_cuts
from elfs2t.data.manifests import cuts_path, done_marker
from conftest import make_librispeech_tree


def test_sets_follow_contract(tmp_path):
    corpus = make_librispeech_tree(tmp_path, parts=("train-clean-100", "train-clean-360", "dev-clean"))
    out = tmp_path / "manifests"
    sets = prepare_librispeech_cuts(corpus, out, parts=["train-clean-100", "train-clean-360", "dev-clean"])
    assert sorted(sets) == ["dev_clean", "train"]
    assert len(sets["train"]) == 4  # both training parts combined
    cut = sets["dev_clean"]["102-10-0000"]
    (sup,) = cut.supervisions
    assert sup.text == "HELLO WORLD" and sup.language == "en" and sup.speaker == "102"
    assert sup.start == 0 and sup.duration == pytest.approx(cut.duration) == pytest.approx(0.3)
    assert cut.sampling_rate == 16000 and cut.load_audio().shape == (1, 4800)
    assert cuts_path(out, "train").is_file() and (out / "recordings_train.jsonl.gz").is_file()
    assert done_marker(out, "dev_clean").is_file()


def test_custom_set_names_and_report_merging(tmp_path):
    corpus = make_librispeech_tree(tmp_path, parts=("train-clean-100", "test-other"))
    names = {"train-clean-100": "asr_train", "test-other": "asr_test_unseen"}
    prepare_librispeech_cuts(corpus, tmp_path / "m", parts=["test-other"], set_names=names)
    sets = prepare_librispeech_cuts(corpus, tmp_path / "m", parts=["train-clean-100", "test-other"], set_names=names)
    assert sorted(sets) == ["asr_test_unseen", "asr_train"]
    reports = json.loads((tmp_path / "m" / "report_librispeech.json").read_text())
    assert [(r["split"], r["kept"]) for r in reports] == [("asr_test_unseen", 2), ("asr_train", 2)]


def test_bad_rows_are_skipped_and_reported(tmp_path):
    corpus = make_librispeech_tree(tmp_path, parts=("dev-clean",), bad=True)
    out = tmp_path / "m"
    sets = prepare_librispeech_cuts(corpus, out, parts=["dev-clean"], nj=2)
    assert sorted(c.id for c in sets["dev_clean"]) == ["100-10-0000", "100-10-0001"]
    (report,) = json.loads((out / "report_librispeech.json").read_text())
    assert report["kept"] == 2
    assert report["skipped"] == {"unreadable_audio": 1, "zero_length_audio": 1, "empty_text": 1, "missing_audio": 1}
    assert report["examples"]["unreadable_audio"] == ["100-10-0002.flac"]
    assert report["examples"]["empty_text"] == ["100-10.trans.txt:5"]
    assert "skipped 4" in (out / "report_librispeech.txt").read_text()


def test_rerun_skips_and_force_redoes(tmp_path):
    corpus = make_librispeech_tree(tmp_path, parts=("dev-clean",))
    out = tmp_path / "m"
    prepare_librispeech_cuts(corpus, out, parts=["dev-clean"])
    # Change the corpus: a skipped re-run must not see it, a forced one must.
    trans = next(corpus.rglob("*.trans.txt"))
    trans.write_text(trans.read_text().replace("HELLO WORLD", "GOODBYE"))
    again = prepare_librispeech_cuts(corpus, out, parts=["dev-clean"])
    assert again["dev_clean"]["100-10-0000"].supervisions[0].text == "HELLO WORLD"
    forced = prepare_librispeech_cuts(corpus, out, parts=["dev-clean"], force=True)
    assert forced["dev_clean"]["100-10-0000"].supervisions[0].text == "GOODBYE"
    assert [r["split"] for r in json.loads((out / "report_librispeech.json").read_text())] == ["dev_clean"]
    assert not list(out.glob(".tmp.*"))  # no temporary leftovers


def test_missing_corpus_and_parts_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus dir not found"):
        prepare_librispeech_cuts(tmp_path / "nope", tmp_path / "m", parts=["dev-clean"])
    corpus = make_librispeech_tree(tmp_path, parts=("dev-clean",))
    with pytest.raises(FileNotFoundError, match="test-clean"):
        prepare_librispeech_cuts(corpus, tmp_path / "m", parts=["dev-clean", "test-clean"])
    with pytest.raises(ValueError, match="unknown LibriSpeech part"):
        prepare_librispeech_cuts(corpus, tmp_path / "m", parts=["dev-cleen"])


def test_entry_point(tmp_path, capsys):
    corpus = make_librispeech_tree(tmp_path, parts=("train-clean-100", "test-clean"))
    out = tmp_path / "m"
    rc = prepare_main(["librispeech", "--corpus-dir", str(corpus), "--output-dir", str(out),
                       "--parts", "train-clean-100", "test-clean", "--set-name", "test-clean=asr_test"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "asr_test: 2 cuts" in printed and "train: 2 cuts" in printed
    assert prepare_main(["librispeech", "--corpus-dir", str(tmp_path / "x"), "--output-dir", str(out)]) == 1
