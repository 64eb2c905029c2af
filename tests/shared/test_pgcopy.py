"""`shared.pgcopy` encodes exactly PostgreSQL's binary COPY rows, whatever the mix of fixed
and variable widths and NULLs; and PostgreSQL reads them back as the values encoded."""

from __future__ import annotations

import random
import struct
import uuid

import asyncpg
import numpy as np
import pytest

from shared import pgcopy
from shared.db import plain_url


def _reference(fields: list[pgcopy.Field]) -> bytes:
    """One row at a time, as the COPY format describes it (the slow, obvious way)."""
    out = bytearray()
    for i in range(len(fields[0].data)):
        out += struct.pack(">h", len(fields))
        for f in fields:
            width = f.data.dtype.itemsize
            length = width if f.lengths is None else int(f.lengths[i])
            out += struct.pack(">i", length)
            if length > 0:
                out += np.ascontiguousarray(f.data[i : i + 1]).view(np.uint8)[:length].tobytes()
    return bytes(out)


def _random_fields(rng: random.Random, n: int, shapes: str) -> list[pgcopy.Field]:
    """Columns of the given shapes: f fixed, t text of varying length, n text with NULLs,
    b bytes of one length per row shared with the next b (as push sets' two columns)."""
    fields: list[pgcopy.Field] = []
    shared_lengths = np.array([rng.randint(1, 21) for _ in range(n)], dtype=np.int32)
    for shape in shapes:
        if shape == "f":
            fields.append(pgcopy.Field(np.array([rng.randint(-9, 9) for _ in range(n)], ">i8")))
        elif shape in "tn":
            words = ["", "a", "企业", "Hangzhou", "x" * rng.randint(1, 40)]
            values = np.array([rng.choice(words).encode() for _ in range(n)], dtype=np.bytes_)
            field = pgcopy.text_field(values)
            if shape == "n":
                lengths = field.lengths.copy() if field.lengths is not None else None
                assert lengths is not None
                lengths[[rng.random() < 0.2 for _ in range(n)]] = -1
                field = pgcopy.Field(values, lengths)
            fields.append(field)
        else:
            data = np.frombuffer(rng.randbytes(21 * n), dtype=np.uint8).reshape(n, 21)
            fields.append(pgcopy.Field(data.view("V21").reshape(-1), shared_lengths))
    return fields


@pytest.mark.parametrize("shapes", ["f", "ff", "t", "ftf", "fnt", "tbb", "nnnt", "bfb"])
@pytest.mark.parametrize("n", [1, 7, 500])
def test_rows_are_the_binary_copy_format(shapes: str, n: int) -> None:
    fields = _random_fields(random.Random(hash((shapes, n)) & 0xFFFF), n, shapes)
    assert pgcopy.encode(fields) == _reference(fields)


def test_rows_of_many_distinct_lengths_are_encoded_alike() -> None:
    """Past a number of distinct length combinations the mask is built per row: same bytes."""
    rng = random.Random(3)
    n = 2000
    values = [rng.randbytes(rng.randint(0, 200)).replace(b"\0", b"x") for _ in range(n)]
    more = [rng.randbytes(rng.randint(0, 150)).replace(b"\0", b"y") for _ in range(n)]
    fields = [
        pgcopy.text_field(np.array(values, dtype=np.bytes_)),
        pgcopy.text_field(np.array(more, dtype=np.bytes_)),
    ]
    assert pgcopy.encode(fields) == _reference(fields)


def test_lengths_beyond_the_column_are_refused() -> None:
    field = pgcopy.Field(np.array([b"ab"], dtype="S2"), np.array([3], dtype=np.int32))
    with pytest.raises(ValueError, match="exceeds"):
        pgcopy.encode([field])
    with pytest.raises(ValueError, match="different lengths"):
        pgcopy.encode([pgcopy.Field(np.zeros(2, ">i8")), pgcopy.Field(np.zeros(3, ">i8"))])


async def test_postgresql_reads_back_what_was_encoded(database_url: str) -> None:
    rng = random.Random(11)
    n = 300
    names = [
        rng.choice(["", "企业名称", "Binjiang Tech", "x" * rng.randint(1, 60)]) for _ in range(n)
    ]
    missing = [rng.random() < 0.1 for _ in range(n)]
    ids = [uuid.uuid4() for _ in range(n)]
    blobs = [rng.randbytes(rng.randint(1, 21)) for _ in range(n)]
    encoded = np.array([s.encode() for s in names], dtype=np.bytes_)
    name_field = pgcopy.text_field(encoded)
    assert name_field.lengths is not None
    name_field.lengths[missing] = -1
    width = max(len(b) for b in blobs)
    padded = np.array([b.ljust(width, b"\0") for b in blobs], dtype=f"S{width}")
    fields = [
        pgcopy.Field(np.arange(n, dtype=">i8")),
        name_field,
        pgcopy.Field(np.array([u.bytes for u in ids], dtype="S16")),
        pgcopy.Field(padded.view(f"V{width}"), np.array([len(b) for b in blobs], np.int32)),
        pgcopy.Field(np.linspace(-1, 1, n).astype(">f8")),
    ]
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await conn.execute(
            "CREATE TEMP TABLE t (i bigint, name text, id uuid, blob bytea, x float8)"
        )
        await conn.copy_to_table(
            "t",
            source=pgcopy.stream([fields]),
            columns=["i", "name", "id", "blob", "x"],
            format="binary",
        )
        rows = await conn.fetch("SELECT i, name, id, blob, x FROM t ORDER BY i")
    finally:
        await conn.close()
    assert [r["name"] for r in rows] == [
        None if m else s for s, m in zip(names, missing, strict=True)
    ]
    assert [r["id"] for r in rows] == ids
    assert [bytes(r["blob"]) for r in rows] == blobs
    assert [r["x"] for r in rows] == np.linspace(-1, 1, n).tolist()
