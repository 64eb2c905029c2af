"""Storing a run's enterprises, without a Python object per row: one binary COPY of numpy
columns into the run's partition of `enterprise_facts`.

The facts themselves are not written a second time: they are the population's columns
(`population_columns`, what bulk matching reads), and one enterprise's facts mapping is built
from its entry in them when an explanation needs it (`repository._facts_of`). A row here
holds what pages sort, filter and show (name, stage, score, tier) and the enterprise's
position in every vector. Writing a JSON document of ~1.5 KB per enterprise instead took
PostgreSQL 100 s at a million enterprises (the INSERT building it; measured, BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from services.policy.criteria import FACTS
from services.policy.matching.population import Population, bytes_column
from shared import pgcopy

# The run id is the column's default in a run's fresh partition (`shared.partitions`).
ROW_COLUMNS = ("uscc", "position", "name", "stage", "score", "tier")
_CHUNK = 250_000


def names_in_order(table: pa.Table, order: npt.NDArray[np.intp]) -> npt.NDArray[np.bytes_]:
    """The export's `name` column as UTF-8 bytes in position order (null as empty, as the
    pages' items give it), without decoding a Python string per row."""
    if "name" not in table.column_names:
        return np.zeros(len(order), dtype="S1")
    values = bytes_column(pc.fill_null(table.column("name"), ""))
    out: npt.NDArray[np.bytes_] = values[order] if len(values) else values
    return out


def _nullable(values: npt.NDArray[np.float64], dtype: str) -> pgcopy.Field:
    missing = np.isnan(values)
    data = np.where(missing, 0, values).astype(dtype)
    lengths = np.where(missing, -1, data.dtype.itemsize).astype(np.int32)
    return pgcopy.Field(data, lengths)


def _row_chunks(
    population: Population, names: npt.NDArray[np.bytes_]
) -> Iterator[list[pgcopy.Field]]:
    n = population.n
    usccs = pgcopy.utf8(population.usccs)
    stage_words = np.array([s.encode() for s in FACTS["stage"].values] + [b""], dtype=np.bytes_)
    codes, stage_names = population.stage_index()  # unstaged last: NULL
    stored_stage = np.where(codes == len(stage_names) - 1, len(stage_words) - 1, codes)
    score = population.table.column("score")
    tier = population.table.column("tier")
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        stage = stored_stage[start:stop]
        stage_text = stage_words[stage]
        yield [
            pgcopy.text_field(usccs[start:stop]),
            pgcopy.Field(np.arange(start, stop, dtype=">i4")),
            pgcopy.text_field(names[start:stop]),
            pgcopy.Field(
                stage_text,
                np.where(stage == len(stage_words) - 1, -1, np.char.str_len(stage_text)).astype(
                    np.int32
                ),
            ),
            _nullable(score[start:stop], ">f8"),
            _nullable(tier[start:stop], ">i2"),
        ]


async def write_rows(
    conn: asyncpg.Connection,
    table: str,
    population: Population,
    names: npt.NDArray[np.bytes_],
) -> int:
    """The population's rows of `enterprise_facts` (facts left to the columns) into `table`,
    the run's fresh partition (`shared.partitions`: written frozen, as it was made in this
    transaction); the number written."""
    if not population.n:
        return 0
    status: str = await conn.copy_to_table(
        table,
        schema_name="policy",
        source=pgcopy.stream(_row_chunks(population, names)),
        columns=ROW_COLUMNS,
        format="binary",
        freeze=True,
    )
    return int(status.split()[-1])
