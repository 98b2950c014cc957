"""The one place that opens DuckDB connections to the private warehouse, and small catalog helpers.

Bookkeeping lives in the schema ``_churnwh`` of the private file: model fingerprints and key-value
metadata. Raw data lives in ``raw``; models in the schemas named by their folders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb

from churnwh.errors import ChurnwhError
from churnwh.store import lock

OWNER_ONLY_UMASK = 0o077
"""While a warehouse file is open, whatever DuckDB creates (the file, its WAL, spill files and their
folder) and whatever we write (model artifacts, exports) is readable by its owner only."""


def _current_umask() -> int:
    mask = os.umask(OWNER_ONLY_UMASK)
    os.umask(mask)
    return mask


USER_UMASK = _current_umask()
"""The umask the process started with: the published file (for BI tools) is created as it asks."""

META_SCHEMA = "_churnwh"
RAW_SCHEMA = "raw"
CUSTOMER_ID = "customer_id"
ID_MAX_LENGTH = 128
ID_FORBIDDEN = r"[\x00-\x1f\x7f,]"
"""What a customer id may not hold (Python re and DuckDB's RE2 read it alike): the erasure path
takes one id per line or argument, so an id with a control character or a comma, or longer than
``ID_MAX_LENGTH``, could be loaded but never erased; `load` refuses it."""
KEYLESS_SOURCES = frozenset({f"{RAW_SCHEMA}.consent_events"})
"""Raw tables whose ids name customers but create none: a consent event for an id that no other table
holds gets no pseudonym, so it cannot count as an objection (it is reported instead)."""


def normalised_id_sql(expression: str) -> str:
    """How a customer id is normalised, at load and wherever an id is looked up (erasure, consent):
    text with surrounding spaces removed (DuckDB's trim: Unicode spaces too); case is kept."""
    return f"trim(CAST({expression} AS VARCHAR))"


def normalise_ids(ids: list[str]) -> list[str]:
    """``ids`` normalised exactly as `load` normalises the id column (by DuckDB itself)."""
    if not ids:
        return []
    with duckdb.connect() as con:
        return con.execute(f"SELECT list_transform(?::VARCHAR[], lambda x: {normalised_id_sql('x')})", [ids]).fetchone()[0]


@contextmanager
def owner_only() -> Iterator[None]:
    """Files and folders created inside are owner-only (0600 / 0700), whatever the user's umask.

    DuckDB creates the WAL and spill files itself, long after the connection opened, so a chmod of
    the file cannot cover them: the process umask does. The umask is process-wide; churnwh runs
    one build per process, and restores the previous umask on exit (nesting is fine).
    """
    previous = os.umask(OWNER_ONLY_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


@contextmanager
def connect(
    path: Path,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    temp_directory: Path | str | None = None,
    threads: int | None = None,
    sandboxed: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a warehouse file (creating its folder), close it on exit.

    ``sandboxed``: for user SQL (the models stage). DuckDB's external access is off before any of it
    runs (no file, glob, network or extension read: ``read_text('**/.churnwh.key')`` fails) and the
    configuration is locked, so the SQL cannot turn it back on; spilling to the temp directory
    still works. The setting belongs to the database instance, so it ends when this closes.

    A writer holds the project's write lock (churnwh.store.lock) while the file is open. The limits
    apply from the first statement on (a replayed WAL included); above ``memory_limit`` DuckDB
    spills to ``temp_directory`` (default: ``<file>.tmp`` beside it). Everything created while the
    connection is open is owner-only (``owner_only``).
    """
    if read_only and not path.exists():
        raise ChurnwhError(f"warehouse file {path} does not exist: run `churnwh build` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {"memory_limit": memory_limit, "temp_directory": temp_directory, "threads": threads}
    settings = {name: str(value) for name, value in settings.items() if value is not None}
    with contextlib.ExitStack() as stack:
        stack.enter_context(owner_only())
        if not read_only:
            stack.enter_context(lock.write_lock(path))
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=settings)
        except duckdb.IOException as err:
            state = lock.inspect(path)
            if read_only and state.held:
                raise ChurnwhError(
                    f"warehouse file {path} is being written by a build (pid {state.pid}): "
                    "run this again when it finishes"
                ) from None
            raise ChurnwhError(f"cannot open warehouse file {path}: {first_line(err)}") from None
        except duckdb.Error as err:
            raise ChurnwhError(f"cannot open warehouse file {path}: {first_line(err)}") from None
        try:
            if not read_only:
                ensure_meta(con)
            if sandboxed:  # after the limits: with external access off, DuckDB refuses to set temp_directory
                con.execute("SET enable_external_access = false")
                con.execute("SET lock_configuration = true")
            yield con
        finally:
            con.close()


def limits(warehouse_config) -> dict[str, Any]:
    """The DuckDB resource settings of ``[warehouse]`` as keyword arguments of ``connect``."""
    return {
        "memory_limit": warehouse_config.memory_limit,
        "temp_directory": warehouse_config.temp_directory,
        "threads": warehouse_config.threads,
    }


def open_private(config, *, read_only: bool = False, sandboxed: bool = False):
    """``connect`` to the project's private warehouse with its configured limits."""
    return connect(config.warehouse.private, read_only=read_only, sandboxed=sandboxed, **limits(config.warehouse))


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries after a rename, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full(err: BaseException) -> bool:
    """Whether a failed write ran out of space (an OSError, or DuckDB's message for the same)."""
    return (isinstance(err, OSError) and err.errno == errno.ENOSPC) or "No space left on device" in str(err)


def ensure_meta(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {META_SCHEMA}.model_state (
            model VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            rows BIGINT, seconds DOUBLE, built_at TIMESTAMP NOT NULL)"""
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.meta (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)"
    )


def get_meta(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    # fetchall: a half-read result (fetchone) would block the connection's next con.sql() in DuckDB 2
    rows = con.execute(f"SELECT value FROM {META_SCHEMA}.meta WHERE name = ?", [name]).fetchall()
    return rows[0][0] if rows else None


def set_meta(con: duckdb.DuckDBPyConnection, name: str, value: str) -> None:
    con.execute(f"INSERT OR REPLACE INTO {META_SCHEMA}.meta VALUES (?, ?)", [name, value])


def relations(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every table and view as ``schema.name`` -> 'table' | 'view' (bookkeeping excluded)."""
    rows = con.execute(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema <> ?",
        [META_SCHEMA],
    ).fetchall()
    return {f"{schema}.{name}": ("view" if kind == "VIEW" else "table") for schema, name, kind in rows}


def quote_identifier(name: str) -> str:
    """One name (a column, a table) as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_relation(relation: str) -> str:
    """``schema.table`` from the catalog as a quoted SQL identifier."""
    return ".".join(quote_identifier(part) for part in relation.split("."))


def columns(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Column name -> DuckDB type of ``schema.name``, in table order."""
    schema, name = relation.split(".")
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return dict(rows)


def content_order(con: duckdb.DuckDBPyConnection, relation: str, leading: tuple[str, ...], id_column: str) -> str:
    """A total ORDER BY that does not depend on the pseudonymization key: ``leading``, then every other
    column but ``id_column`` in table order, then ``id_column`` (which orders only rows equal in all else).

    Ordering by the keyed pseudonym alone makes the row order, and so what a seeded shuffle makes of
    it, a function of the secret key: each project (each test run) trained a different model.
    """
    names = [name for name in columns(con, relation) if name != id_column and name not in leading]
    keys = [*leading, *names, id_column]
    return ", ".join('"' + name.replace('"', '""') + '"' for name in keys)


def content_sample_order(con: duckdb.DuckDBPyConnection, relation: str, leading_sql: str, id_column: str) -> str:
    """A total ORDER BY for taking the first N rows as a sample: ``leading_sql`` (an ORDER BY term),
    then a hash of the row's content without ``id_column`` (spread like a random draw, unlike a
    lexicographic order, but the same under any key), then ``id_column`` for rows equal in all else."""
    names = ['"' + name.replace('"', '""') + '"' for name in columns(con, relation) if name != id_column]
    return f'{leading_sql}, md5(CAST(ROW({", ".join(names)}) AS VARCHAR)), "{id_column}"'


def content_fingerprint(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """Row count and an order-independent hash of every row: changes when any value changes."""
    count, total = con.execute(f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM {relation} AS t").fetchone()
    return f"{count}:{total}"


VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def set_variables(con: duckdb.DuckDBPyConnection, variables: dict[str, Any]) -> None:
    """Expose config values to SQL as DuckDB variables, read with ``getvariable('name')``.

    The whole name must be a plain identifier (it is SQL text); the value is a bound parameter,
    never SQL text. Config validates names first; this refuses one that slipped through.
    """
    for name, value in variables.items():
        if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
            raise ChurnwhError("a [vars] name is not a plain identifier: use letters, digits and _ "
                               "(starting with a letter or _)")
        con.execute(f"SET VARIABLE {name} = ?", [value])


def sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


_SAFE_TAIL = re.compile(
    r"( to [A-Z][A-Z0-9_]*(\(\d+(, ?\d+)?\))?( when casting from source column [A-Za-z_][A-Za-z0-9_]*)?| does not exist[!.]?( Did you mean \"[^'\"]*\"\??)?| not found( in FROM clause)?[!.]?)$"
)
"""What DuckDB writes after a quoted value that is its own words: kept; any other tail may be the
rest of a value with a quote in it (``'Pat O'Brien ...``) and is dropped."""


def first_line(err: BaseException) -> str:
    """A DuckDB error as one line with quoted data values removed, so no identifier can leak.

    A value may itself hold a quote (``O'Brien``) or a line break, so quote pairs cannot be
    matched: everything from the first single quote on is removed, and only a tail that is
    DuckDB's own words (`` to INT32``, `` does not exist``) is put back after ``'…'``.
    Over-scrubbing a harmless word is the price.
    """
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    first, last = text.find("'"), text.rfind("'")
    if first < 0:
        return text
    tail = text[last + 1:] if last > first else ""
    return text[:first] + "'…'" + (tail if _SAFE_TAIL.fullmatch(tail) else "")
