"""`churnwh export`: a table of the published file as Parquet or CSV.

Only the published (sanitized, verified) file is read, never the private warehouse, so an export
carries exactly what the published file carries. The file is written next to the target and renamed
into place, so a reader never sees half a file.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import duckdb

from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.store import warehouse

FORMATS = ("parquet", "csv")


def published_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database()"
    ).fetchall()
    return sorted(name if schema == "main" else f"{schema}.{name}" for schema, name in rows)


def export_table(config: Config, table: str, fmt: str, target: Path) -> int:
    """Copy ``table`` of the published file to ``target``; return the number of rows written."""
    if fmt not in FORMATS:
        raise ChurnwhError(f"--format {fmt!r} is not allowed: use parquet or csv")
    published = config.warehouse.published
    if not published.exists():
        raise ChurnwhError(f"published file {published} does not exist: run `churnwh build` first")
    with warehouse.connect(published, read_only=True) as con:
        tables = published_tables(con)
        if table not in tables:
            close = difflib.get_close_matches(table, tables, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ChurnwhError(f"the published file has no table {table!r}: {hint}it has {', '.join(tables)}")
        relation = ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))
        target = target.expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER true"
        literal = "'" + str(partial).replace("'", "''") + "'"
        try:
            con.execute(f"COPY (SELECT * FROM {relation}) TO {literal} ({options})")
        except duckdb.Error as err:
            partial.unlink(missing_ok=True)
            raise ChurnwhError(f"cannot write {target}: {warehouse.first_line(err)}") from None
        rows = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    os.replace(partial, target)
    return rows
