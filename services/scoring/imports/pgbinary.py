"""PostgreSQL's binary COPY format written from an Arrow table, column by column with numpy.

Hand-written, as `bulk.py`'s writer is: no library writes binary COPY from Arrow, and the
text formats cost seconds of float formatting at a million rows (pyarrow's CSV writer was a
quarter of the import API's time in the profile). Each row is a field count, then per field
its length (-1 for NULL) and its bytes in network order; variable-length values (text, the
tag arrays, already encoded per distinct value) are copied with one gather per column.

Column types: float64 (double precision), int16 (smallint), bool, date32 (date), string
(text, varchar), binary (a value already in binary form, e.g. `text_array`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
TRAILER = b"\xff\xff"
_PG_EPOCH_DAYS = 10957  # 2000-01-01 in days since 1970-01-01
_TEXT_OID = 25
_FIXED: dict[str, tuple[int, str]] = {
    "double": (8, ">f8"),
    "int16": (2, ">i2"),
    "bool": (1, "u1"),
    "date32[day]": (4, ">i4"),
}


def text_array(values: list[str] | None) -> bytes | None:
    """A text[] value in binary form (one dimension, lower bound 1; empty: no dimension)."""
    if values is None:
        return None
    if not values:
        return struct.pack(">iii", 0, 0, _TEXT_OID)
    parts = [struct.pack(">iiiii", 1, 0, _TEXT_OID, len(values), 1)]
    for value in values:
        data = value.encode()
        parts.append(struct.pack(">i", len(data)) + data)
    return b"".join(parts)


class _Field:
    """One column of a chunk: lengths (-1 for NULL) and where each value's bytes are."""

    def __init__(self, array: pa.Array) -> None:
        n = len(array)
        valid = (
            np.ones(n, dtype=bool)
            if array.null_count == 0
            else np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        )
        kind = str(array.type)
        self.fixed = kind in _FIXED
        if self.fixed:
            width, dtype = _FIXED[kind]
            self.values = self._fixed_bytes(array, kind, dtype, width)
            self.lengths = np.where(valid, width, -1).astype(np.int64)
            self.width = width
        else:
            offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[
                array.offset : array.offset + n + 1
            ].astype(np.int64)
            data = array.buffers()[2]
            self.data = (
                np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
            )
            self.starts = offsets[:-1]
            self.lengths = np.where(valid, np.diff(offsets), -1)

    @staticmethod
    def _fixed_bytes(array: pa.Array, kind: str, dtype: str, width: int) -> npt.NDArray[Any]:
        if kind == "bool":
            raw = np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint8)
        elif kind == "date32[day]":
            days = array.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
            raw = (days.astype(np.int64) - _PG_EPOCH_DAYS).astype(dtype)
        else:
            raw = np.asarray(array.fill_null(0).to_numpy(zero_copy_only=False)).astype(dtype)
        return raw.view(np.uint8).reshape(len(array), width)


def _put(buf: npt.NDArray[np.uint8], at: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> None:
    width = values.shape[1]
    buf[at[:, None] + np.arange(width)] = values


def encode(table: pa.Table) -> bytes:
    """The rows of `table` in binary COPY form (no signature, no trailer)."""
    n = table.num_rows
    fields = [_Field(col.combine_chunks()) for col in table.columns]
    sizes = np.full(n, 2, dtype=np.int64)
    for f in fields:
        sizes += 4 + np.maximum(f.lengths, 0)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    buf = np.zeros(int(sizes.sum()), dtype=np.uint8)
    count = np.array([len(fields)], dtype=">i2").view(np.uint8)
    _put(buf, starts, np.broadcast_to(count, (n, 2)))
    pos = starts + 2
    for f in fields:
        _put(buf, pos, f.lengths.astype(">i4").view(np.uint8).reshape(n, 4))
        present = f.lengths > 0
        if f.fixed:
            _put(buf, (pos + 4)[present], f.values[present])
        elif present.any():
            lengths = f.lengths[present]
            # Byte k of value i goes from data[start_i + k] to buf[pos_i + 4 + k].
            first = np.repeat(np.cumsum(lengths) - lengths, lengths)
            within = np.arange(int(lengths.sum()), dtype=np.int64) - first
            src = np.repeat(f.starts[present], lengths) + within
            dst = np.repeat((pos + 4)[present], lengths) + within
            buf[dst] = f.data[src]
        pos += 4 + np.maximum(f.lengths, 0)
    return buf.tobytes()


def chunks(table: pa.Table, rows: int = 100_000) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)
