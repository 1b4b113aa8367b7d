"""Lhotse feature storage in kaldiio ark/scp files, keeping the array dtype (fp16 encoder frames).

Lhotse's own ``kaldiio`` storage needs ``kaldi_native_io`` and stores float32 Kaldi matrices; this one
writes each array with kaldiio's ``numpy`` record format (``<key> NPY<len><.npy bytes>``), so fp16 is
kept, and the archives stay readable by ``kaldiio.load_scp`` / ``kaldiio.load_mat``.

A cut's ``Features`` point at one record: ``storage_type = "elfs2t_kaldiio"``, ``storage_path`` = the
``.ark`` file, ``storage_key`` = the byte offset of the record. Importing this module registers the
reader and the writer with lhotse.

Stage 2 stores the ark's path *relative to the manifest* (``feats.0.ark``: the archives sit beside
``cuts.jsonl.gz``), so a dump folder can be moved, shared between recipes and decoded from anywhere; open its
cuts with :func:`open_cuts`, which resolves such paths against the manifest's folder (plain
``CutSet.from_file`` leaves them relative to the working directory)::

    from elfs2t.features.storage import open_cuts
    cuts = open_cuts("dump/whisper-base_trim/asr_test/cuts.jsonl.gz")
    feats = next(iter(cuts)).load_features()          # (T, D) float16, from any working directory

Manifests written before that hold paths relative to the folder stage 2 ran in
(``dump/whisper-base_trim/asr_test/feats.0.ark``) or absolute paths; :func:`open_cuts` keeps them loading (see
:func:`resolve_storage_path`).
"""
from __future__ import annotations

import io
import os
from functools import partial
from pathlib import Path
from typing import Optional

import kaldiio
import numpy as np
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.features.io import FeaturesReader, FeaturesWriter, register_reader, register_writer

STORAGE_TYPE = "elfs2t_kaldiio"


def resolve_storage_path(path: str, base: Path) -> str:
    """Where a manifest in folder ``base`` finds the features file ``path``: absolute paths as they are; a
    relative one under ``base`` (stage 2's own), else as it is if it exists from the working directory (manifests
    of older runs, relative to the folder they were cached in), else the file of that name under ``base`` (such a
    dump moved elsewhere), else unchanged (the reader's error names it)."""
    p = Path(path)
    if p.is_absolute():
        return path
    for candidate in (base / p, None, base / p.name):
        if candidate is None:
            if p.exists():
                return path
        elif candidate.exists():
            return str(candidate)
    return path


def _resolve(cut: Cut, base: Path, seen: dict) -> Cut:
    feats = getattr(cut, "features", None)
    if feats is None or feats.is_in_memory or Path(feats.storage_path).is_absolute():
        return cut
    if feats.storage_path not in seen:
        seen[feats.storage_path] = resolve_storage_path(feats.storage_path, base)
    feats.storage_path = seen[feats.storage_path]
    return cut


def open_cuts(path: str | Path) -> CutSet:
    """A cuts manifest (lazily) with its relative feature storage paths resolved against its folder."""
    path = Path(path)
    return CutSet.from_file(path).map(partial(_resolve, base=path.parent.absolute(), seen={}))


@register_reader
class KaldiioArkReader(FeaturesReader):
    """Reads one record of an ark file by byte offset (``storage_key``)."""

    name = STORAGE_TYPE

    def __init__(self, storage_path: str, *args, **kwargs):
        super().__init__()
        self.storage_path = str(storage_path)

    def read(self, key: str, left_offset_frames: int = 0, right_offset_frames: Optional[int] = None) -> np.ndarray:
        try:
            arr = kaldiio.load_mat(f"{self.storage_path}:{int(key)}")
        except Exception as exc:
            raise OSError(f"cannot read features at {self.storage_path}:{key}: {exc}") from exc
        return arr[left_offset_frames:right_offset_frames]


@register_writer
class KaldiioArkWriter(FeaturesWriter):
    """Appends arrays to ``<path>.ark`` (written under ``<path>.ark.tmp``) and an scp index.

    ``write()`` returns the byte offset (the lhotse ``storage_key``). The ark and scp only get their
    final names in :meth:`close` (after an fsync), so an interrupted writer leaves ``.tmp`` files, never
    a truncated archive under the name the cuts reference.
    """

    name = STORAGE_TYPE

    def __init__(self, storage_path: str | Path, *args, **kwargs):
        super().__init__()
        path = Path(storage_path)
        self.ark = path if path.suffix == ".ark" else path.with_suffix(".ark")
        self.scp = self.ark.with_suffix(".scp")
        self.ark.parent.mkdir(parents=True, exist_ok=True)
        self._ark_tmp = self.ark.with_name(self.ark.name + ".tmp")
        self._scp_tmp = self.scp.with_name(self.scp.name + ".tmp")
        self._fd = open(self._ark_tmp, "wb")
        self._scp_lines: list[str] = []
        self.closed = False

    @property
    def storage_path(self) -> str:
        return str(self.ark)

    def write(self, key: str, value: np.ndarray) -> str:
        if any(c.isspace() for c in key):
            raise ValueError(f"kaldi keys cannot contain whitespace: {key!r}")
        buf = io.BytesIO()
        kaldiio.save_ark(buf, {key: np.ascontiguousarray(value)}, write_function="numpy")
        offset = self._fd.tell() + len(key.encode()) + 1  # after "<key> "
        self._fd.write(buf.getvalue())
        self._scp_lines.append(f"{key} {self.ark}:{offset}\n")
        return str(offset)

    def close(self) -> None:
        if self.closed:
            return
        self._fd.flush()
        os.fsync(self._fd.fileno())
        self._fd.close()
        self._scp_tmp.write_text("".join(self._scp_lines))
        os.replace(self._ark_tmp, self.ark)
        os.replace(self._scp_tmp, self.scp)
        self.closed = True

    def abort(self) -> None:
        """Close without publishing: remove the temporary files."""
        if not self.closed:
            self._fd.close()
            self._ark_tmp.unlink(missing_ok=True)
            self.closed = True
