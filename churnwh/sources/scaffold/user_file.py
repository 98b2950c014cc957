"""A user's CSV or Parquet file read the way `churnwh load` will: the first step of `init --from`.

``read_user_file`` sniffs the format (delimiter, header, date format), loads the rows into a
temporary table ``src`` of the given connection and checks there is a header and data;
``inferred_type`` gives a column's source type, confirmed on every row with the loader's own
conversion. Messages name the file and columns, never values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from churnwh.errors import ChurnwhError

PLAIN_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "")
"""Formats DuckDB reads without being told: no explicit format is recorded for them."""
TYPE_MAP = {"BIGINT": "BIGINT", "INTEGER": "BIGINT", "SMALLINT": "BIGINT", "TINYINT": "BIGINT",
            "UBIGINT": "BIGINT", "UINTEGER": "BIGINT", "USMALLINT": "BIGINT", "UTINYINT": "BIGINT",
            "HUGEINT": "DOUBLE", "DOUBLE": "DOUBLE", "FLOAT": "DOUBLE", "BOOLEAN": "BOOLEAN", "DATE": "DATE"}


def source_type(duckdb_type: str) -> str:
    """The declarable type (config.SOURCE_TYPES) for a DuckDB type."""
    upper = duckdb_type.upper()
    if upper in TYPE_MAP:
        return TYPE_MAP[upper]
    if upper.startswith(("DECIMAL", "NUMERIC")):
        return "DOUBLE"
    if upper.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    return "VARCHAR"


@dataclass
class UserFile:
    con: object
    """The DuckDB connection holding the rows as the temporary table ``src``."""
    format: str
    """csv or parquet."""
    delimiter: str
    date_format: str | None
    sniffed: dict[str, str]
    native: dict[str, str]
    rows: int

    @property
    def names(self) -> list[str]:
        return list(self.native)

    def failures(self, column: str, kind: str) -> int:
        """Rows with a value in ``column`` that the loader's conversion to ``kind`` rejects."""
        from churnwh.config import SourceColumn
        from churnwh.sources import declared as sources

        ref = sources._ident(column)
        present = f"({ref} IS NOT NULL AND trim(CAST({ref} AS VARCHAR)) <> '')"
        conversion = sources.converted(SourceColumn(column, kind, "plain"), self.native[column], self.date_format)
        return self.con.execute(f"SELECT count(*) FROM src WHERE {present} AND {conversion} IS NULL").fetchone()[0]

    def inferred_type(self, name: str) -> str:
        """The sniffer's type, kept only if every row converts; text whose values all parse as numbers
        becomes a number, except codes with leading zeros (postcodes, account numbers)."""
        from churnwh.sources import declared as sources
        kind = source_type(self.sniffed.get(name, self.native[name]))
        if self.native[name] != "VARCHAR":
            return kind
        ref = sources._ident(name)
        if kind != "VARCHAR" and self.failures(name, kind):
            kind = "VARCHAR"  # the sniffer saw a sample; the loader checks every row
        if kind == "VARCHAR":
            for candidate in ("BIGINT", "DOUBLE"):
                if self.con.execute(f"SELECT count(*) FROM src WHERE nullif(trim({ref}), '') IS NOT NULL"
                                    ).fetchone()[0] and not self.failures(name, candidate):
                    kind = candidate
                    break
        if kind in ("BIGINT", "DOUBLE") and self.con.execute(
                f"SELECT count(*) FROM src WHERE regexp_matches(trim({ref}), '^[+-]?0[0-9]')").fetchone()[0]:
            kind = "VARCHAR"
        return kind


def read_user_file(con, path: Path, files: list[Path], source_name: str) -> UserFile:
    """Load ``files`` (the CSV or Parquet file(s) behind ``path``) into the temporary table ``src``."""
    import duckdb

    from churnwh.config import SourceConfig
    from churnwh.sources import declared as sources
    from churnwh.sources.scaffold.naming import check_names

    fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    delimiter, date_format, sniffed = ",", None, {}
    if fmt == "csv":
        try:
            delimiter, has_header, described, date_format, timestamp_format = con.execute(
                "SELECT Delimiter, HasHeader, Columns, DateFormat, TimestampFormat FROM sniff_csv(?)",
                [str(files[0])]).fetchone()
        except duckdb.Error as err:
            raise ChurnwhError(f"--from {path}: cannot be read as a CSV file ({type(err).__name__}): "
                               "export it again as CSV with a header row") from None
        if len(described) == 1 and re.search(r"\S {2,}\S", described[0]["name"]):
            raise ChurnwhError(
                f"--from {path}: the columns look aligned with spaces (a fixed-width text file), which churnwh "
                "does not read: convert it to CSV first, e.g. `awk -v OFS=, '{$1=$1}1' FILE > FILE.csv` "
                "(when no value holds a space), then run init --from FILE.csv")
        if not has_header:
            raise ChurnwhError(f"--from {path}: the first line is not a header: churnwh needs the column "
                               "names in the first line")
        sniffed = {c["name"]: str(c["type"]) for c in described}
        date_format = date_format or timestamp_format or None
        if date_format in PLAIN_DATE_FORMATS:
            date_format = None
    if len(delimiter) != 1:
        raise ChurnwhError(f"--from {path}: the delimiter is not one character: export it with , or ;")
    source = SourceConfig(name=source_name, path=str(path), format=fmt, columns=(), delimiter=delimiter)
    sql = sources.read_sql(source, files)
    try:
        native = sources._columns_of(con, sql)
        con.execute(f"CREATE TEMP TABLE src AS {sql}")
    except duckdb.Error as err:
        raise ChurnwhError(f"--from {path}: cannot be read ({type(err).__name__}): check that it is a "
                           "CSV with a header row or a Parquet file") from None
    check_names(list(native), f"--from {path}")
    rows = con.execute("SELECT count(*) FROM src").fetchone()[0]
    if rows == 0:
        raise ChurnwhError(f"--from {path}: the file has a header but no data rows: export the data again")
    return UserFile(con, fmt, delimiter, date_format, sniffed, native, rows)
