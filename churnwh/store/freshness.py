"""How fresh each source is, against the window the features read, and the build's refusal to score stale data.

The features read data strictly before ``as_of``, so their window ends on ``as_of - 1``. A source whose
last event (the latest value of its event-time column) is more than its ``max_lag_days`` before that day
is stale: its recent rows are missing and every recent-activity feature reads zero. ``measure`` finds the
last event of each source in the raw tables, ``enforce`` records the result in ``_churnwh.source_freshness``
(which ``ml.data_quality`` and the published ``about`` table read) and refuses a stale build unless it is
explicitly allowed; an allowed one is remembered (meta ``stale_override``) until the next build checks
again. ``data_end`` is the day the data end: what users are told instead of a date from the config.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import duckdb

from churnwh.errors import DataError
from churnwh.store import warehouse

TABLE = f"{warehouse.META_SCHEMA}.source_freshness"
OVERRIDE_META = "stale_override"
EVENT, STATIC, UNKNOWN = "event", "static", "unknown"
"""What a source's event time is: a column, none (a static table: customers, plans), or not known (no single
date column to infer it from)."""


class StaleDataError(DataError):
    """A source ends before the window the features read (one line: which, when, how to fix)."""


@dataclass(frozen=True)
class Declaration:
    """A source's event-time column (None unless ``kind`` is EVENT) and its tolerance in days."""

    source: str
    column: str | None
    kind: str
    max_lag_days: int


@dataclass(frozen=True)
class SourceFreshness:
    source: str
    column: str | None
    kind: str
    max_lag_days: int
    rows: int
    last_event: dt.date | None
    window_end: dt.date
    """The last day the features read: as_of - 1."""

    @property
    def lag_days(self) -> int | None:
        """Days the data end before the features' window ends (0 when they reach it or beyond)."""
        return max(0, (self.window_end - self.last_event).days) if self.last_event else None

    @property
    def stale(self) -> bool:
        return self.kind == EVENT and self.last_event is not None and self.lag_days > self.max_lag_days

    @property
    def status(self) -> str:
        if self.kind != EVENT:
            return "static" if self.kind == STATIC else "unknown: declare event_time"
        if self.last_event is None:
            return "empty"
        return "stale" if self.stale else "fresh"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def window_end(as_of: dt.date) -> dt.date:
    return as_of - dt.timedelta(days=1)


def measure(con: duckdb.DuckDBPyConnection, declarations: list[Declaration], as_of: dt.date) -> list[SourceFreshness]:
    """The rows and last event date of every declared source's raw table."""
    results = []
    for declared in declarations:
        relation = f"{warehouse.RAW_SCHEMA}.{_ident(declared.source)}"
        if declared.kind == EVENT:
            column = _ident(declared.column)
            rows, last = con.execute(f"SELECT count(*), CAST(max({column}) AS DATE) FROM {relation}").fetchone()
        else:
            rows, last = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0], None
        results.append(SourceFreshness(declared.source, declared.column, declared.kind, declared.max_lag_days,
                                       int(rows), last, window_end(as_of)))
    return results


def refusal(stale: list[SourceFreshness], as_of: dt.date) -> str:
    """The one line a stale build stops with (source names and dates only)."""
    named = "; ".join(f"source {s.source} ends {s.last_event}, {s.lag_days} days before that "
                      f"(max_lag_days = {s.max_lag_days})" for s in stale)
    return (f"stale data: the features for the as-of date {as_of} read up to {window_end(as_of)}, but {named}: "
            "load newer data, set an earlier [vars] as_of, raise [freshness] max_lag_days (or the source's own) if it "
            "legitimately lags, or pass --allow-stale to score anyway; nothing was scored and the published file "
            "was kept")


def summary(results: list[SourceFreshness], as_of: dt.date, allowed: list[SourceFreshness]) -> str:
    """The build stage's line: where the data end, against the as-of date."""
    end = data_end_of(results)
    checked = sum(r.kind == EVENT for r in results)
    text = f"data end {end or 'unknown'} (as-of date {as_of}); {checked} of {len(results)} sources dated"
    if allowed:
        text += "; STALE, allowed by --allow-stale: " + ", ".join(f"{s.source} ({s.lag_days} days)" for s in allowed)
    return text


def data_end_of(results: list[SourceFreshness]) -> dt.date | None:
    dates = [r.last_event for r in results if r.kind == EVENT and r.last_event is not None]
    return max(dates) if dates else None


def enforce(con: duckdb.DuckDBPyConnection, results: list[SourceFreshness], as_of: dt.date, *,
            allow_stale: bool) -> list[SourceFreshness]:
    """Refuse stale sources (StaleDataError) unless ``allow_stale``; record the measurement and the override.

    Returns the stale sources that were allowed (empty without an override)."""
    stale = [r for r in results if r.stale]
    if stale and not allow_stale:
        raise StaleDataError(refusal(stale, as_of))
    write(con, results)
    if stale:
        warehouse.set_meta(con, OVERRIDE_META, json.dumps(override_of(stale, as_of), sort_keys=True))
    else:
        con.execute(f"DELETE FROM {warehouse.META_SCHEMA}.meta WHERE name = ?", [OVERRIDE_META])
    return stale


def override_of(stale: list[SourceFreshness], as_of: dt.date) -> dict:
    """What --allow-stale let through: per source its last event date and days of lag (for audit and about)."""
    return {"as_of": str(as_of), "sources": {s.source: {"last_event": str(s.last_event), "lag_days": s.lag_days,
                                                        "max_lag_days": s.max_lag_days} for s in stale}}


def write(con: duckdb.DuckDBPyConnection, results: list[SourceFreshness]) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {warehouse.META_SCHEMA}")
    con.execute(f"""CREATE OR REPLACE TABLE {TABLE} (source VARCHAR, event_time_column VARCHAR, rows BIGINT,
                    last_event_date DATE, window_end DATE, lag_days INTEGER, max_lag_days INTEGER, status VARCHAR,
                    checked_at TIMESTAMP)""")
    now = dt.datetime.now().replace(microsecond=0)
    for r in results:
        con.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [r.source, r.column, r.rows, r.last_event, r.window_end, r.lag_days,
                     r.max_lag_days if r.kind == EVENT else None, r.status, now])


def recorded(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The last build's measurement, one dict per source (empty before the first checked build)."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
                         "AND table_schema = ? AND table_name = 'source_freshness'", [warehouse.META_SCHEMA]).fetchall()
    if not exists[0][0]:
        return []
    cursor = con.execute(f"SELECT * FROM {TABLE} ORDER BY source")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def data_end(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The last day with data in any dated source, as the last build measured it (None before one)."""
    dates = [row["last_event_date"] for row in recorded(con) if row["last_event_date"] is not None]
    return max(dates) if dates else None


def override(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The stale sources the last build was allowed to score with (None when it was fresh)."""
    try:
        value = warehouse.get_meta(con, OVERRIDE_META)
    except duckdb.CatalogException:
        return None
    return json.loads(value) if value else None
