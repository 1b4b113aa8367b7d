"""elfs2t.atomic: a write is all or nothing, and its temporary file keeps the target's suffixes."""
import gzip

import pytest
from lhotse import CutSet, MonoCut

from elfs2t import atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "result.txt"
    atomic.write_text(path, "old\n")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic.atomic_path(path) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.txt"]


def test_the_temporary_file_keeps_the_suffixes_and_can_be_named(tmp_path):
    with atomic.atomic_path(tmp_path / "cuts.jsonl.gz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".cuts.jsonl.gz") and tmp.name.startswith(".tmp.")
        tmp.write_bytes(b"")
    named = tmp_path / "last.pt.tmp"
    with atomic.atomic_path(tmp_path / "last.pt", fsync=True, tmp=named) as tmp:
        assert tmp == named
        tmp.write_bytes(b"weights")
    assert (tmp_path / "last.pt").read_bytes() == b"weights" and not named.exists()


def test_a_manifest_is_written_in_the_format_of_its_name(tmp_path):
    cuts = CutSet.from_cuts([MonoCut(id="a", start=0.0, duration=1.0, channel=0)])
    path = atomic.write_manifest(cuts, tmp_path / "cuts.jsonl.gz")
    with gzip.open(path, "rt") as fh:  # gzip, as the name says
        assert '"id": "a"' in fh.read()
    assert [c.id for c in CutSet.from_file(path)] == ["a"]
