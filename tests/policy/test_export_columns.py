"""Policy's export columns laid out from Arrow's buffers (`bytes_column`, `export_order`): the
same arrays as the Python object per value they replace, for names in any script, empty
values, several chunks and slices, and codes in or out of order."""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from services.policy.matching.population import bytes_column, export_order


def _old_bytes(column: pa.ChunkedArray) -> npt.NDArray[np.bytes_]:
    values = column.cast(pa.binary()).to_numpy(zero_copy_only=False).astype(np.bytes_)
    return np.asarray(values)


def _old_order(column: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    usccs = np.asarray(column.to_numpy(zero_copy_only=False), dtype=str)
    return usccs.tolist(), np.argsort(usccs, kind="stable").tolist()


def _names(rng: random.Random, n: int) -> list[str]:
    words = ["杭州源辰德数据科技股份有限公司", "Acme, Ltd.", "", "a", 'q"uote', "ümlaut"]
    return [rng.choice(words) + str(rng.randint(0, 99)) * rng.randint(0, 1) for _ in range(n)]


def test_bytes_column_is_the_per_value_conversion() -> None:
    rng = random.Random(3)
    names = _names(rng, 500)
    cases = [
        pa.chunked_array([names]),
        pa.chunked_array([names[:100], names[100:], []]),
        pa.chunked_array([pa.array(names).slice(7, 300)]),
        pa.chunked_array([["", ""]]),
        pa.chunked_array([[]], type=pa.string()),
    ]
    for column in cases:
        got = bytes_column(column)
        assert got.dtype == _old_bytes(column).dtype or len(column) == 0
        assert got.tolist() == _old_bytes(column).tolist()


def test_export_order_is_the_sorted_order_of_the_codes() -> None:
    rng = random.Random(5)
    codes = sorted(f"91{rng.randint(0, 10**15):016d}" for _ in range(400))
    shuffled = codes[:]
    rng.shuffle(shuffled)
    ties = codes[:50] + codes[:50]
    unicode = ["9133é", "9133a", "91330"]  # not ASCII: the general path
    for values in (codes, shuffled, ties, unicode, codes[:1], []):
        column = pa.chunked_array([pa.array(values, type=pa.string())])
        table = pa.table({"uscc": column})
        usccs, order = export_order(table)
        assert (usccs.tolist(), order.tolist()) == _old_order(column), values[:3]
        assert usccs.dtype == np.asarray(values, dtype=str).dtype or not values
