"""Writing the demo as it is simulated: one block of customers at a time into DuckDB and the truth file.

``write_demo`` writes the raw tables of ``simulate`` block by block (``generate.simulate_blocks``): the
first block creates or replaces every table, the later ones append, all in one transaction, so a
failure or a kill leaves the previous raw tables as they were. The truth goes to a Parquet file beside
its final path, one row group per block, moved into place after the raw tables are committed. Only one
block's rows are in memory at a time, plus the continuation state (about 400 bytes a customer).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import duckdb
import pyarrow.parquet as pq

from churnwh.sources.demo.advance import Continuation, start_continuation
from churnwh.sources.demo.blocks import BLOCK_CUSTOMERS
from churnwh.sources.demo.generate import simulate_blocks
from churnwh.sources.demo.tables import raw_schema, write_tables

WRITE_MEMORY_BYTES = 1 << 30
"""DuckDB's memory limit while the demo is written, if the connection's is higher: DuckDB keeps the blocks it
writes cached up to its limit (80% of the RAM by default), which would grow with the customers."""
_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


@dataclass
class Written:
    """What ``write_demo`` wrote: rows per raw table and truth rows, and the state an advance continues from."""

    rows: dict[str, int] = field(default_factory=dict)
    truth_rows: int = 0
    continuation: Continuation | None = None


def write_demo(con: duckdb.DuckDBPyConnection, customers: int, seed: int, truth_path: pathlib.Path, *,
               start: datetime.date = datetime.date(2023, 1, 1), end: datetime.date = datetime.date(2025, 12, 31),
               schema: str = "raw", block_customers: int = BLOCK_CUSTOMERS, memory_limit: str | None = None,
               on_block: Callable[[int, Written], None] | None = None) -> Written:
    """Simulate and write the demo's raw tables into ``schema`` (one transaction) and its truth to
    ``truth_path`` (replaced after the commit); the same tables and truth as ``simulate`` with the same
    arguments. ``on_block(customers_written, written)`` follows every block.

    While it writes, DuckDB's memory limit is at most ``WRITE_MEMORY_BYTES``; ``memory_limit`` is the limit the
    connection was opened with (None: DuckDB's default), set back after the write."""
    truth_path = pathlib.Path(truth_path)
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    staged = truth_path.with_name(truth_path.name + ".new")
    with _memory_capped(con, WRITE_MEMORY_BYTES, memory_limit):
        return _write(con, customers, seed, truth_path, staged, start, end, schema, block_customers, on_block)


def _write(con, customers, seed, truth_path, staged, start, end, schema, block_customers, on_block) -> Written:
    written, parts, numbers, done = Written(), [], {}, 0
    truth = None
    con.begin()
    try:
        target = raw_schema(con, schema)
        for block in simulate_blocks(customers, seed, start, end, block_customers):
            for name, table in block.tables.items():
                written.rows[name] = written.rows.get(name, 0) + table.num_rows
            # handed over table by table, so each is freed once written
            write_tables(con, target, ((name, block.tables.pop(name)) for name in list(block.tables)),
                         replace=block.index == 0)
            if truth is None:
                truth = pq.ParquetWriter(staged, block.truth.schema)
            truth.write_table(block.truth)
            written.truth_rows += block.truth.num_rows
            parts.append(block.part)
            numbers = block.numbers
            done += block.part.state.status.size
            del block  # before the next block is simulated
            if on_block is not None:
                on_block(done, written)
        truth.close()
        con.commit()
    except BaseException:
        if truth is not None:
            truth.close()
        con.rollback()
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, truth_path)
    written.continuation = start_continuation(
        parameters={"customers": customers, "seed": seed, "start": str(start), "end": str(end)}, start=start,
        end=end, parts=parts, numbers=numbers, seed=seed)
    return written


@contextlib.contextmanager
def _memory_capped(con: duckdb.DuckDBPyConnection, cap: int, configured: str | None) -> Iterator[None]:
    """Lower DuckDB's memory limit to ``cap`` bytes inside the block (never raise it), then set ``configured``
    back (DuckDB shows the limit rounded, so the value shown is not the one to set back)."""
    shown = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    match = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]+)", str(shown).strip())
    if match is None or match.group(2) not in _UNITS or float(match.group(1)) * _UNITS[match.group(2)] <= cap:
        yield
        return
    con.execute(f"SET memory_limit = '{cap}B'")
    try:
        yield
    finally:
        if configured is None:
            con.execute("RESET memory_limit")
        else:
            con.execute("SET memory_limit = ?", [configured])
