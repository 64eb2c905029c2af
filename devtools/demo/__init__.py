"""The demo population: a deterministic, Binjiang-like set of tech enterprises over several
periods (`population`), with invented identities (`identity`), and what it becomes: import
files, the engine's input and the bulk loader's columns (`export`).

`make run`, the tests and the benchmarks use it; no service imports it.
"""

from devtools.demo.export import (
    CSV_COLUMNS,
    IDENTITY_COLUMNS,
    decode_tags,
    engine_input,
    from_demo,
    rows,
    stage_counts,
    write_csv,
)
from devtools.demo.population import (
    DEFAULT_PERIODS,
    DEFAULT_SEED,
    NEGATIVE_LIST_REASON,
    STAGE_MIX,
    TAG_VOCABULARIES,
    DemoData,
    PeriodData,
    generate,
)

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_PERIODS",
    "DEFAULT_SEED",
    "IDENTITY_COLUMNS",
    "NEGATIVE_LIST_REASON",
    "STAGE_MIX",
    "TAG_VOCABULARIES",
    "DemoData",
    "PeriodData",
    "decode_tags",
    "engine_input",
    "from_demo",
    "generate",
    "rows",
    "stage_counts",
    "write_csv",
]
