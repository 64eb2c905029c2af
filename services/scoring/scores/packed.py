"""The packed part of a stored score (`scores.packed`): its dimension percentiles, its points
and the sources of its values, as one fixed-width bytea instead of three arrays.

Received as arrays, the 52 items cost PostgreSQL a function call each (`array_recv` per
item was the largest part of the evaluation's write: ~2.5 s of server CPU per million scores,
the bytes on the wire half again as many) while nothing ever reads them in SQL: every reader
takes them whole, into Python. The values and the dimension scores, which SQL does read (the
hidden champions' filter, the validation's columns, the history), stay arrays.

Big-endian, as PostgreSQL's own `float8send` and `int4send` write them, so a migration packs
and unpacks rows in SQL. NaN where the engine gave none (an unscored row), 0 for a value
without a recorded source.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from contracts.catalogue import DIMENSIONS, INDICATOR_CODES

_D = len(DIMENSIONS)
_N = len(INDICATOR_CODES)
PACKED = struct.Struct(f">{_D}d{_N}d{_N}i")
WIDTH = PACKED.size
# The same layout for numpy: a column of rows is packed by three assignments.
PACKED_DTYPE = np.dtype([("dp", ">f8", (_D,)), ("pts", ">f8", (_N,)), ("srcs", ">i4", (_N,))])
assert PACKED_DTYPE.itemsize == WIDTH
PACKED_FIELDS = ("dimension_percentiles", "points", "value_sources")


# (dimension percentiles, points, value sources)
Unpacked = tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]


def unpack(packed: bytes) -> Unpacked:
    """(dimension percentiles, points, value sources) of one row."""
    items: tuple[Any, ...] = PACKED.unpack(packed)
    return items[:_D], items[_D : _D + _N], items[_D + _N :]


def unpacked(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored row (with `packed`) as it reads with the three fields apart, as they were
    stored before they were packed."""
    out = {k: v for k, v in row.items() if k != "packed"}
    out.update(zip(PACKED_FIELDS, unpack(row["packed"]), strict=True))
    return out


# Where the sources start in the bytes (1-based, as SQL's substring counts).
_SOURCES_AT = 1 + 8 * (_D + _N)


def source_sql(packed: str, index: str) -> str:
    """SQL for the source of the value at 1-based `index` (an SQL expression) of the
    `packed` column (NULL when either is)."""
    return (
        f"('x' || encode(substring({packed} FROM {_SOURCES_AT} + 4 * (({index}) - 1) FOR 4), "
        "'hex'))::bit(32)::int"
    )
