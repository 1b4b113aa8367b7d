"""Lhotse feature storage in kaldiio ark/scp files, keeping the array dtype (fp16 encoder frames).

Lhotse's own ``kaldiio`` storage needs ``kaldi_native_io`` and stores float32 Kaldi matrices; this one
writes each array with kaldiio's ``numpy`` record format (``<key> NPY<len><.npy bytes>``), so fp16 is
kept, and the archives stay readable by ``kaldiio.load_scp`` / ``kaldiio.load_mat``.

A cut's ``Features`` point at one record: ``storage_type = "elfs2t_kaldiio"``, ``storage_path`` = the
``.ark`` file, ``storage_key`` = the byte offset of the record. Importing this module registers the
reader and the writer with lhotse; code that calls ``cut.load_features()`` on stage-2 cuts imports it::

    import elfs2t.features.storage  # noqa: F401  (registers the 'elfs2t_kaldiio' storage)
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional

import kaldiio
import numpy as np
from lhotse.features.io import FeaturesReader, FeaturesWriter, register_reader, register_writer

STORAGE_TYPE = "elfs2t_kaldiio"


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
