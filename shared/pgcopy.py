"""Rows for PostgreSQL's binary COPY, encoded from numpy columns without a Python object per
value.

Written by hand because no library does it: asyncpg's `copy_records_to_table` encodes one
tuple at a time (seconds per million rows in Python), and the scoring service's encoders lay
fixed-width rows over one numpy dtype, which text columns of varying length do not fit. Here
each row is laid out at its widest, with every field's 4-byte length and its bytes, and a
mask keeps the bytes that exist, so a row's text may be any length up to its column's widest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
TRAILER = b"\xff\xff"


@dataclass(frozen=True, slots=True)
class Field:
    """One column: `data` in PostgreSQL's binary form, one fixed-width item per row.

    Numbers are big-endian (`>i2`, `>i4`, `>i8`, `>f8`), a uuid its 16 bytes (`S16`), text
    its UTF-8 bytes (`S<n>`, shorter values padded with NULs, which `lengths` then gives).
    `lengths` (-1 for NULL) defaults to the item size for every row.
    """

    data: npt.NDArray[np.generic]
    lengths: npt.NDArray[np.int32] | None = None


def utf8(values: npt.NDArray[np.str_]) -> npt.NDArray[np.bytes_]:
    """Text as UTF-8 bytes: numpy's own cast for ASCII (several times faster than
    `np.char.encode`, which calls the codec once per value), the codec otherwise."""
    try:
        return values.astype(np.bytes_)
    except UnicodeEncodeError:
        encoded: npt.NDArray[np.bytes_] = np.char.encode(values, "utf-8")
        return encoded


def text_field(values: npt.NDArray[np.bytes_]) -> Field:
    """UTF-8 encoded text (an `S` array): its lengths are those of the bytes without padding."""
    return Field(values, np.char.str_len(values).astype(np.int32))


def encode(fields: Sequence[Field]) -> bytes:
    """The rows (without header or trailer) of columns of equal length."""
    n = len(fields[0].data)
    if n == 0:
        return b""
    if all(f.lengths is None or (f.lengths == f.data.dtype.itemsize).all() for f in fields):
        return _encode_fixed(fields, n)
    parts: list[npt.NDArray[np.uint8]] = [
        np.broadcast_to(np.array([len(fields)], dtype=">i2").view(np.uint8), (n, 2))
    ]
    keep: list[npt.NDArray[np.bool_]] = [np.ones((n, 2), dtype=np.bool_)]
    for f in fields:
        if len(f.data) != n:
            raise ValueError("columns of different lengths")
        data = np.ascontiguousarray(f.data)
        width = data.dtype.itemsize
        lengths = (
            np.full(n, width, dtype=np.int32) if f.lengths is None else f.lengths.astype(np.int32)
        )
        if (lengths > width).any():
            raise ValueError("a length exceeds its column's width")
        parts.append(lengths.astype(">i4").view(np.uint8).reshape(n, 4))
        keep.append(np.ones((n, 4), dtype=np.bool_))
        parts.append(data.view(np.uint8).reshape(n, width))
        keep.append(np.arange(width) < lengths[:, None])
    rows = np.concatenate(parts, axis=1)
    mask = np.concatenate(keep, axis=1)
    out: bytes = rows[mask].tobytes()
    return out


def _encode_fixed(fields: Sequence[Field], n: int) -> bytes:
    """Every value at its column's full width: one structured array, no mask."""
    layout: list[tuple[str, str]] = [("n", ">i2")]
    for i, f in enumerate(fields):
        layout += [(f"l{i}", ">i4"), (f"v{i}", f"V{f.data.dtype.itemsize}")]
    rows = np.empty(n, dtype=np.dtype(layout))
    rows["n"] = len(fields)
    for i, f in enumerate(fields):
        if len(f.data) != n:
            raise ValueError("columns of different lengths")
        rows[f"l{i}"] = f.data.dtype.itemsize
        rows[f"v{i}"] = np.ascontiguousarray(f.data).view(f"V{f.data.dtype.itemsize}")
    return rows.tobytes()


async def stream(chunks: Iterable[Sequence[Field]]) -> AsyncIterator[bytes]:
    """A whole COPY stream for `copy_to_table(..., format="binary")`, chunk by chunk so that
    a million rows are never laid out at once."""
    yield HEADER
    for fields in chunks:
        body = encode(fields)
        if body:
            yield body
    yield TRAILER
