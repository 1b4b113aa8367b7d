"""Kaldi text files: round trip, empty texts, and errors that name file and line."""
import pytest

from elfs2t.textfile import TextFileError, read_text, write_text


def test_round_trip_sorted_and_atomic(tmp_path):
    path = tmp_path / "sub" / "text"
    data = {"utt2": "hello  world", "utt1": "Grüße, Welt!", "utt3": ""}
    write_text(path, data)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == ["utt1 Grüße, Welt!", "utt2 hello  world", "utt3"]
    assert read_text(path) == {"utt1": "Grüße, Welt!", "utt2": "hello  world", "utt3": ""}
    assert [p.name for p in path.parent.iterdir()] == ["text"]  # no temp file left behind


def test_read_tabs_crlf_and_id_only(tmp_path):
    path = tmp_path / "text"
    path.write_bytes(b"a\tfoo bar  \r\nb\nc   baz\n")
    assert read_text(path) == {"a": "foo bar", "b": "", "c": "baz"}


def test_empty_file(tmp_path):
    path = tmp_path / "text"
    path.write_text("")
    assert read_text(path) == {}


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "text"
    path.write_text("a one\n   no id here\nc three\n")
    with pytest.raises(TextFileError, match=rf"{path}:2: line starts with whitespace"):
        read_text(path)
    path.write_text("a one\n\nc three\n")
    with pytest.raises(TextFileError, match=rf"{path}:2: empty line"):
        read_text(path)


def test_duplicate_id(tmp_path):
    path = tmp_path / "text"
    path.write_text("a one\nb two\na again\n")
    with pytest.raises(TextFileError, match=rf"{path}:3: duplicate utterance id 'a' \(first seen on line 1\)"):
        read_text(path)


def test_bad_utf8(tmp_path):
    path = tmp_path / "text"
    path.write_bytes(b"a ok\nb \xff\xfe\n")
    with pytest.raises(TextFileError, match=rf"{path}:2: not valid UTF-8"):
        read_text(path)


def test_write_rejects_bad_ids_and_line_breaks(tmp_path):
    with pytest.raises(ValueError, match="contains whitespace"):
        write_text(tmp_path / "t", {"a b": "x"})
    with pytest.raises(ValueError, match="line break"):
        write_text(tmp_path / "t", {"a": "x\ny"})
    assert not (tmp_path / "t").exists()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="text file not found"):
        read_text(tmp_path / "nope")
