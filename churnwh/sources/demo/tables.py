"""From simulated events to the raw tables, and writing them: DuckDB for the raw schema, Parquet for the truth."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churnwh.sources.demo.arrow import (
    CATEGORY_SPELLINGS,
    EMAIL_SPELLINGS,
    FEATURE_SPELLINGS,
    _casing_variants,
    _dates,
    _flatten,
    _format_ids,
    _messy_strings,
    _spellings,
    _strings,
    _take,
    _timestamps,
    _with_duplicates,
)
from churnwh.sources.demo.simulation import SUBSCRIBED, _Log, _State
from churnwh.sources.demo.vocabulary import (
    CANCEL_REASONS,
    DEVICES,
    PLAN_IDS,
    TICKET_CATEGORIES,
    US_PER_DAY,
    US_PER_HOUR,
)
from churnwh.store import faults

TABLE_NAMES: tuple[str, ...] = (
    "customers", "plans", "plan_prices", "subscriptions", "transactions",
    "product_usage", "support_tickets", "web_sessions", "email_events", "consent_events",
)


@dataclass(frozen=True)
class DemoData:
    """Raw tables of the demo warehouse, the hazard the simulator actually used, and the hidden state to
    continue from (``advance.Continuation``; never written into a warehouse)."""

    tables: dict[str, pa.Table]
    truth: pa.Table
    continuation: object = field(default=None, repr=False, compare=False)


def _subscription_rows(log: _Log, state: _State) -> dict[str, np.ndarray]:
    """Every subscription segment: the closed ones of the log and the open ones of the state, in id order."""
    closed = log.subscriptions.concat()
    still_open = np.flatnonzero(state.status == SUBSCRIBED)
    rows = {
        "customer": np.concatenate([closed["customer"], still_open]),
        "plan": np.concatenate([closed["plan"], state.plan[still_open]]),
        "start": np.concatenate([closed["start"], state.seg_start[still_open]]),
        "end": np.concatenate([closed["end"], np.zeros(still_open.size, np.int64)]),
        "reason": np.concatenate([closed["reason"], np.full(still_open.size, -1, np.int8)]),
        "is_open": np.concatenate([np.zeros(closed["customer"].size, bool), np.ones(still_open.size, bool)]),
    }
    return _take(rows, np.lexsort((rows["start"], rows["customer"])))


def _subscriptions_arrow(rows: dict[str, np.ndarray], numbers: np.ndarray, customer_ids: pa.Array) -> pa.Table:
    return pa.table({
        "subscription_id": _format_ids("S", numbers, 9),
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "plan_id": _strings(PLAN_IDS, rows["plan"]),
        "start_date": _dates(rows["start"]),
        "end_date": _dates(rows["end"], rows["is_open"]),
        "cancel_reason": _strings(CANCEL_REASONS, np.maximum(rows["reason"], 0), rows["reason"] < 0),
    })


def _subscriptions_table(log: _Log, state: _State, customer_ids: pa.Array) -> pa.Table:
    rows = _subscription_rows(log, state)
    return _subscriptions_arrow(rows, np.arange(1, rows["customer"].size + 1), customer_ids)


def _late_loaded_at(rng: np.random.Generator, ts: np.ndarray) -> np.ndarray:
    """Most rows load within hours; about 2% arrive 1-10 days late."""
    delay = rng.integers(5 * 60_000_000, 6 * US_PER_HOUR, ts.size)
    late = rng.random(ts.size) < 0.02
    delay[late] = rng.integers(US_PER_DAY, 10 * US_PER_DAY, late.sum())
    return ts + delay


def _transactions_table(rng, log: _Log, customer_ids: pa.Array, first_number: int = 1) -> pa.Table:
    rows = log.transactions.concat()
    order = np.lexsort((rows["ts"],))
    rows = _take(rows, order)
    n = rows["ts"].size
    amount = rows["amount"]
    refund = rng.random(n) < 0.005
    amount[refund] = -amount[refund]
    outlier = rng.random(n) < 0.0005
    amount[outlier] = np.round(amount[outlier] * rng.uniform(50, 200, outlier.sum()), 2)
    columns = {"number": np.arange(first_number, first_number + n), "customer": rows["customer"], "ts": rows["ts"],
               "amount": amount, "amount_null": rng.random(n) < 0.003, "category": rows["category"],
               "loaded": _late_loaded_at(rng, rows["ts"]),
               "spelling": _spellings(rng, rows["category"], CATEGORY_SPELLINGS, 0.9)}
    columns = _take(columns, _with_duplicates(rng, n, 0.003))
    return pa.table({
        "transaction_id": _format_ids("T", columns["number"], 10),
        "customer_id": customer_ids.take(pa.array(columns["customer"])),
        "transaction_ts": _timestamps(columns["ts"]),
        "amount": pa.array(columns["amount"], mask=columns["amount_null"]),
        "category": _strings(_flatten(CATEGORY_SPELLINGS), columns["spelling"]),
        "loaded_at": _timestamps(columns["loaded"]),
    })


def _usage_table(rng, log: _Log, customer_ids: pa.Array) -> pa.Table:
    rows = log.usage.concat()
    n = rows["day"].size
    minutes = rows["minutes"]
    outlier = rng.random(n) < 0.0005
    minutes[outlier] = np.round(rng.uniform(3000, 20000, outlier.sum()), 1)
    rows["minutes_null"] = rng.random(n) < 0.01
    rows["spelling"] = _spellings(rng, rows["feature"], FEATURE_SPELLINGS, 0.9)
    rows = _take(rows, _with_duplicates(rng, n, 0.002))
    return pa.table({
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "activity_date": _dates(rows["day"]),
        "sessions": pa.array(rows["sessions"].astype(np.int32)),
        "minutes": pa.array(rows["minutes"], mask=rows["minutes_null"]),
        "feature_used": _strings(_flatten(FEATURE_SPELLINGS), rows["spelling"]),
    })


def _tickets_table(rng, log: _Log, customer_ids: pa.Array, end_day: int, first_number: int = 1) -> pa.Table:
    """Tickets in opening order; resolved_at is NULL for those still open after `end_day`."""
    rows = log.tickets.concat()
    rows = _take(rows, np.argsort(rows["opened"], kind="stable"))
    n = rows["opened"].size
    unresolved = rows["resolved"] >= (end_day + 1) * US_PER_DAY
    return pa.table({
        "ticket_id": _format_ids("K", np.arange(first_number, first_number + n), 8),
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "opened_at": _timestamps(rows["opened"]),
        "resolved_at": _timestamps(np.where(unresolved, 0, rows["resolved"]), unresolved),
        "category": _messy_strings(rng, rows["category"], _casing_variants(TICKET_CATEGORIES), 0.85),
        "satisfaction": pa.array(rows["satisfaction"].astype(np.int32), mask=rows["satisfaction"] == 0),
    })


def _web_table(rng, log: _Log, customer_ids: pa.Array, first_number: int = 1) -> pa.Table:
    rows = log.web.concat()
    n = rows["ts"].size
    return pa.table({
        "session_id": _format_ids("W", np.arange(first_number, first_number + n), 10),
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "session_start": _timestamps(rows["ts"]),
        "pages": pa.array(rows["pages"].astype(np.int32)),
        "device": _messy_strings(rng, rows["device"], _casing_variants(DEVICES), 0.85),
    })


def _email_table(rng, log: _Log, customer_ids: pa.Array, month_starts: np.ndarray, first_number: int = 1) -> pa.Table:
    rows = log.email.concat()
    n = rows["ts"].size
    rows["number"] = np.arange(first_number, first_number + n)
    rows["spelling"] = _spellings(rng, rows["kind"], EMAIL_SPELLINGS, 0.9)
    rows = _take(rows, _with_duplicates(rng, n, 0.005))
    campaign_month = month_starts[rows["campaign"] // 2].astype("datetime64[D]").astype("datetime64[M]")
    month_index, campaign_month_code = np.unique(campaign_month, return_inverse=True)
    names = [f"CMP-{str(mm)}-{ab}" for mm in month_index for ab in "ab"]
    return pa.table({
        "event_id": _format_ids("E", rows["number"], 10),
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "campaign_id": _strings(names, 2 * campaign_month_code + rows["campaign"] % 2),
        "event_type": _strings(_flatten(EMAIL_SPELLINGS), rows["spelling"]),
        "event_ts": _timestamps(rows["ts"]),
    })


def _truth_table(log: _Log, customer_ids: pa.Array) -> pa.Table:
    rows = log.truth.concat()
    return pa.table({
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "month": _dates(rows["month"]),
        "churn_hazard": pa.array(rows["hazard"].astype(np.float64)),
    })


def write_raw(con: duckdb.DuckDBPyConnection, data: DemoData, schema: str = "raw") -> None:
    """Create or replace every raw table in `schema` of the current database, in one transaction."""
    con.begin()
    try:
        write_tables(con, raw_schema(con, schema), data.tables.items(), replace=True)
        con.commit()
    except BaseException:
        con.rollback()
        raise


def raw_schema(con: duckdb.DuckDBPyConnection, schema: str = "raw") -> str:
    """The quoted ``catalog.schema`` of `schema` in the current database, created if missing."""
    catalog = con.execute("SELECT current_database()").fetchall()[0][0]
    target = ".".join('"' + part.replace('"', '""') + '"' for part in (catalog, schema))
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {target}")
    return target


def write_tables(con: duckdb.DuckDBPyConnection, target: str, tables: Iterable[tuple[str, pa.Table]], *,
                 replace: bool) -> None:
    """Create or replace (``replace``) or append to the tables of ``target`` (inside the caller's transaction).

    DuckDB keeps what a statement scanned referenced until the transaction ends, so every table is read
    through a stream that lets go of each batch once read: a table the caller no longer holds is freed
    when it is written, not at the commit."""
    for name, table in tables:
        view = f"__churnwh_demo_{name}"
        con.register(view, _read_once(table))
        del table
        try:
            if replace:
                con.execute(f'CREATE OR REPLACE TABLE {target}."{name}" AS SELECT * FROM "{view}"')
            else:
                con.execute(f'INSERT INTO {target}."{name}" SELECT * FROM "{view}"')
        finally:
            con.unregister(view)
        faults.point("load.raw_table")


def _read_once(table: pa.Table) -> pa.RecordBatchReader:
    schema, batches = table.schema, table.to_batches()
    del table

    def drain() -> Iterator[pa.RecordBatch]:
        while batches:
            yield batches.pop(0)

    return pa.RecordBatchReader.from_batches(schema, drain())


def write_truth(data: DemoData, path: pathlib.Path) -> None:
    """Write the ground-truth hazards to a Parquet file (never into a warehouse file)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data.truth, path)
