"""The run id put in front of every record of scoring's CSV as it streams (credit's feed sync
COPYs the body straight into `enterprise_scores`): whatever the chunks' boundaries, and with
quoted cells holding commas, quotes and newlines."""

from __future__ import annotations

import csv
import io
import random
import uuid

from services.credit.evaluations.sync import RunIdPrefix

RUN = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def _records(rng: random.Random, n: int) -> list[list[str]]:
    names = ["plain", "with, comma", 'with "quote"', "with\nnewline", 'all, "of"\nthem', ""]
    return [
        [f"91{i:016d}", rng.choice(names), rng.choice(["growth", ""]), "t", "", "1.5"]
        for i in range(n)
    ]


def _prefixed(body: bytes, sizes: list[int]) -> bytes:
    prefix = RunIdPrefix(RUN)
    out, start = [], 0
    for size in sizes:
        out.append(prefix.feed(body[start : start + size]))
        start += size
    out.append(prefix.feed(body[start:]))
    return b"".join(out)


def test_every_record_and_only_records_get_the_run_id() -> None:
    rng = random.Random(7)
    header = ["uscc", "name", "stage", "scored", "exclusion", "total"]
    records = _records(rng, 300)
    body = _csv([header, *records])
    expected = _csv([header, *([str(RUN), *r] for r in records)])
    assert b'"' in body and b"\n\n" not in body
    for _ in range(50):  # chunks cut anywhere: inside cells, quotes and line ends
        sizes = [rng.randint(1, 200) for _ in range(rng.randint(0, 40))]
        assert _prefixed(body, sizes) == expected
    assert _prefixed(body, [len(body)]) == expected  # the whole body as one chunk
    assert _prefixed(body, [1] * len(body)) == expected  # byte by byte


def test_a_body_without_quotes_takes_the_fast_path_unchanged_otherwise() -> None:
    body = b"uscc,name\n910000000000000001,a\n910000000000000002,b\n"
    assert _prefixed(body, [5, 21, 3]) == (
        b"uscc,name\n" + f"{RUN},910000000000000001,a\n{RUN},910000000000000002,b\n".encode()
    )
    assert _prefixed(b"uscc,name\n", []) == b"uscc,name\n"  # no rows: the header only
    parsed = list(csv.reader(io.StringIO(_prefixed(body, [7]).decode())))
    assert parsed[1] == [str(RUN), "910000000000000001", "a"]
