"""CoVoST 2 stage 1 on a tiny Common Voice + CoVoST tree: join, train_covost, TSV quoting, bad rows, resampling."""
import json

import pytest

from elfs2t.bin.prepare_data import main as prepare_main
from elfs2t.data.covost2 import prepare_covost2, read_tsv
from elfs2t.data.manifests import done_marker
from conftest import make_covost_tree


def test_join_splits_and_contract(tmp_path):
    cv_dir, tsv = make_covost_tree(tmp_path)
    out = tmp_path / "m"
    sets = prepare_covost2(cv_dir, tsv, "de", "en", out)
    assert sorted(sets) == ["de_en_dev", "de_en_test", "de_en_train"]
    assert sorted(c.id for c in sets["de_en_train"]) == ["a", "b"]  # train + train_covost
    cut = sets["de_en_train"]["b"]
    (sup,) = cut.supervisions
    assert sup.text == 'Er sagte "ja" dazu.'  # quotes stay literal
    assert sup.custom["translated_text"] == {"en": 'He said "yes" to it.'}
    assert sup.language == "de" and sup.speaker == "spk_1"
    assert cut.sampling_rate == 16000 and sup.duration == cut.duration  # supervision covers the resampled cut
    audio = cut.load_audio()
    assert audio.shape[0] == 1 and abs(audio.shape[1] - 8000) < 1200  # 0.5 s at 16 kHz (mp3 padding aside)
    dev = sets["de_en_dev"]["c"].supervisions[0]
    assert dev.text == "NA" and dev.custom["translated_text"]["en"] == "null"  # no NA filtering
    assert done_marker(out, "de_en_test").is_file()


def test_bad_rows_are_skipped_and_reported(tmp_path):
    cv_dir, tsv = make_covost_tree(tmp_path, bad=True)
    out = tmp_path / "m"
    sets = prepare_covost2(cv_dir, tsv, "de", "en", out, splits=["train", "dev"], prefix="st", nj=2)
    assert sorted(sets) == ["st_dev", "st_train"]
    assert sorted(c.id for c in sets["st_train"]) == ["a", "b"]
    reports = {r["split"]: r for r in json.loads((out / "report_covost2_st.json").read_text())}
    train = reports["st_train"]
    assert train["kept"] == 2
    assert train["skipped"] == {"unreadable_audio": 1, "zero_length_audio": 1, "missing_audio": 1,
                                "empty_text": 1, "empty_translation": 1, "malformed_tsv_line": 1}
    assert train["examples"]["malformed_tsv_line"] == ["covost_v2.de_en.tsv:4: expected 5 columns, got 3"]
    assert train["examples"]["unreadable_audio"] == ["corrupt.mp3"]
    assert reports["st_dev"]["kept"] == 1


def test_read_tsv_quote_none_and_escapes(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text('path\tsentence\n1.mp3\t"open quote\n2.mp3\ttab\\\tinside\n3.mp3\ttoo\tmany\n')
    bad = []
    rows = list(read_tsv(path, ["path", "sentence"], bad))
    assert [r.values["sentence"] for r in rows] == ['"open quote', "tab\tinside"]
    assert [r.lineno for r in rows] == [2, 3]
    assert bad == ["x.tsv:4: expected 2 columns, got 3"]
    with pytest.raises(ValueError, match=r"x.tsv:1: .*lacks column\(s\) \['translation'\]"):
        list(read_tsv(path, ["path", "translation"], []))


def test_rerun_skips_force_redoes_and_errors(tmp_path):
    cv_dir, tsv = make_covost_tree(tmp_path)
    out = tmp_path / "m"
    prepare_covost2(cv_dir, tsv, "de", "en", out, splits=["test"])
    tsv.write_text(tsv.read_text().replace("How are you?", "How do you do?"))
    assert prepare_covost2(cv_dir, tsv, "de", "en", out, splits=["test"])["de_en_test"]["d"].supervisions[0] \
        .custom["translated_text"]["en"] == "How are you?"
    assert prepare_covost2(cv_dir, tsv, "de", "en", out, splits=["test"], force=True)["de_en_test"]["d"] \
        .supervisions[0].custom["translated_text"]["en"] == "How do you do?"
    with pytest.raises(FileNotFoundError, match="validated.tsv"):
        (cv_dir / "validated.tsv").unlink()
        prepare_covost2(cv_dir, tsv, "de", "en", out, splits=["dev"])
    with pytest.raises(ValueError, match="unknown CoVoST 2 split"):
        prepare_covost2(cv_dir, tsv, "de", "en", out, splits=["valid"])


def test_entry_point(tmp_path, capsys):
    cv_dir, tsv = make_covost_tree(tmp_path)
    rc = prepare_main(["covost2", "--cv-dir", str(cv_dir), "--covost-tsv", str(tsv), "--src-lang", "de",
                       "--tgt-lang", "en", "--output-dir", str(tmp_path / "m"), "--splits", "dev", "test"])
    assert rc == 0
    assert "de_en_dev: 1 cuts" in capsys.readouterr().out
