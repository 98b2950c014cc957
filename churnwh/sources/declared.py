"""Declared sources ([sources.NAME] in churnwh.toml) -> the ``raw`` schema of the private warehouse.

``check_sources`` reads every source in a throwaway in-memory DuckDB connection and compares it with
its declaration: missing and unexpected columns, values that do not parse as the declared type,
dates that do not match the declared format, label values other than the declared positive and
negative ones, duplicate customer ids in a one-row-per-customer table, header-only files (unless the
source sets ``allow_empty``: a consent file where nobody has objected). Every
problem of every source is reported at once, in one line, before anything is written; a message
names the source, the column and a row number, never a value.

``load_sources`` then writes each source as ``raw.NAME`` in one transaction: columns cast to their
declared types, the declared id column renamed to ``customer_id`` (what pseudonymization keys on),
a declared label column mapped to 1 (positive) / 0 (negative). Unchanged files are not reloaded.
"""

from __future__ import annotations

import difflib
import glob as globbing
import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from churnwh.config import Config, SourceColumn, SourceConfig
from churnwh.errors import ChurnwhError, ConfigError, DataError
from churnwh.progress import Count, Reporter, ignore
from churnwh.store import warehouse

FINGERPRINT_META = "sources_fingerprint"
ROW = "__churnwh_row"
ROW_ID = "@row"
"""``id_column = "@row"``: a file without an id; a customer is their row's number in the file (1 = the first
data row; with several files, the file's name and the row's number). Stable as long as the file keeps its rows
in the same order: appending keeps the ids, sorting or removing rows changes them."""
FILE = "__churnwh_file"
OTHER_DELIMITERS = (";", "\t", "|", ",")


class SourceError(DataError):
    """A source does not match its declaration (every problem found, in one line)."""


@dataclass
class SourceCheck:
    name: str
    rows: int
    files: int


# --- paths ---------------------------------------------------------------------------------------


def source_files(config: Config, source: SourceConfig) -> list[Path]:
    """The files a source reads (a glob may match several; with ``parts``, every part's); raises if there are none."""
    if source.parts:
        return [file for _, file in part_files(config, source)]
    return _path_files(config, source, source.path)


def part_files(config: Config, source: SourceConfig) -> list[tuple[str, Path]]:
    """(part, file) for a source declared with ``parts``; a file in two parts is an error."""
    found: list[tuple[str, Path]] = []
    for part, path in source.parts:
        for file in _path_files(config, replace(source, name=f"{source.name}.parts.{part}"), path):
            if any(file == seen for _, seen in found):
                raise SourceError(f"source {source.name}: {file.name} is in two parts: fix sources.{source.name}.parts "
                                  "so that each file belongs to one part")
            found.append((part, file))
    return found


def _path_files(config: Config, source: SourceConfig, path: str) -> list[Path]:
    source = replace(source, path=path)
    pattern = Path(source.path).expanduser()
    if not pattern.is_absolute():
        pattern = config.root / pattern
    if any(char in source.path for char in "*?["):
        files = sorted(Path(p) for p in globbing.glob(str(pattern), recursive=True) if Path(p).is_file())
        if not files:
            raise SourceError(f"source {source.name}: no file matches {source.path} (in {config.root}): "
                              "fix sources.{0}.path or pass --source {0}=PATH".format(source.name))
        return files
    if not pattern.is_file():
        raise SourceError(f"source {source.name}: {pattern} does not exist: fix sources.{source.name}.path "
                          f"or pass --source {source.name}=PATH")
    return [pattern]


def override_paths(config: Config, items: list[str] | None) -> Config:
    """``NAME=PATH`` items (from --source) replace the declared paths of those sources."""
    if not items:
        return config
    names = {source.name for source in config.sources}
    paths: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--source {item!r} is not NAME=PATH: write e.g. --source customers=data/customers.csv")
        if name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"--source {name}: no such source: {hint}declared are {', '.join(sorted(names)) or 'none'}")
        if any(s.name == name and s.parts for s in config.sources):
            raise ConfigError(f"--source {name}: the source is declared with parts (several files, each a part of "
                              f"the data's own split): edit sources.{name}.parts in churnwh.toml instead")
        paths[name] = str(Path(path).expanduser().resolve())
    return replace(config, sources=tuple(replace(s, path=paths.get(s.name, s.path)) for s in config.sources))


# --- classification --------------------------------------------------------------------------------


def raw_name(source: SourceConfig, column: str) -> str:
    return warehouse.CUSTOMER_ID if column == source.id_column else column


def register_classification(config: Config) -> None:
    """Make the declared column classes known to churnwh.privacy.classification (lineage proof, PII scans).

    The customer id is a direct identifier whatever its declared class.
    """
    if config.source == "demo" or not config.sources:
        return
    from churnwh.privacy import classification

    for source in config.sources:
        classes = {raw_name(source, c.name): c.privacy for c in source.columns}
        if source.id_column:
            classes[warehouse.CUSTOMER_ID] = classification.DIRECT_IDENTIFIER
        if source.parts:
            classes[source.part_column] = classification.PLAIN
        classification.SOURCE_COLUMNS[f"{warehouse.RAW_SCHEMA}.{source.name}"] = classes


# --- reading ---------------------------------------------------------------------------------------


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_sql(source: SourceConfig, files: list[Path], *, delimiter: str | None = None, attached: str = "src") -> str:
    """A SELECT over the source with a 1-based row number (and the file name of each row)."""
    listed = "[" + ", ".join(_literal(str(f)) for f in files) + "]"
    if source.format == "csv":
        delim = delimiter or source.delimiter
        scan = (f"read_csv({listed}, all_varchar = true, header = {str(source.header).lower()}, "
                f"delim = {_literal(delim)}, filename = {_literal(FILE)}, union_by_name = {str(len(files) > 1).lower()})")
    elif source.format == "parquet":
        scan = f"read_parquet({listed}, filename = {_literal(FILE)}, union_by_name = {str(len(files) > 1).lower()})"
    else:
        table = ".".join(_ident(part) for part in (source.table or "").split("."))
        scan = f"(SELECT *, {_literal(files[0].name)} AS {FILE} FROM {attached}.{table})"
    # row_number() OVER () follows the scan's order (the file's line order); a window partitioned by file
    # does not keep it on a parallel scan, so each file's row number is taken from the global one
    everything = "__churnwh_all_rows"
    return (f"SELECT * EXCLUDE ({everything}), {everything} - min({everything}) OVER (PARTITION BY {FILE}) + 1 AS "
            f"{ROW} FROM (SELECT *, row_number() OVER () AS {everything} FROM {scan})")


def _columns_of(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, str]:
    relation = con.sql(f"SELECT * FROM ({sql}) LIMIT 0")
    return {name: str(kind) for name, kind in zip(relation.columns, relation.types) if name not in (ROW, FILE)}


def _read_error(source: SourceConfig, err: Exception) -> SourceError:
    """A DuckDB read error without the offending line's content (it may hold customer data)."""
    text = str(err)
    line = re.search(r"[Ll]ine:?\s*(\d+)", text)
    where = f" near line {line.group(1)}" if line else ""
    kind = {"csv": "a CSV file", "parquet": "a Parquet file", "duckdb": "a DuckDB file"}[source.format]
    return SourceError(f"source {source.name}: {source.path} cannot be read as {kind}{where} "
                       f"({type(err).__name__}): check sources.{source.name}.format, delimiter and header")


def converted(column: SourceColumn, native: str, date_format: str | None) -> str:
    """SQL converting the source column to its declared type (NULL where it does not parse)."""
    ref = _ident(column.name)
    if column.type == "VARCHAR":
        return f"CAST({ref} AS VARCHAR)"
    if native.upper() != "VARCHAR":
        return f"TRY_CAST({ref} AS {column.type})"
    value = f"NULLIF(trim({ref}), '')"
    if column.type in ("DATE", "TIMESTAMP") and date_format:
        return f"TRY_CAST(try_strptime({value}, {_literal(date_format)}) AS {column.type})"
    if column.type in ("BIGINT", "INTEGER"):
        # DuckDB casts '29.85' to 30 and '1e3' to 1000: only whole-number text is an integer
        return f"CASE WHEN regexp_full_match({value}, '[+-]?[0-9]+') THEN TRY_CAST({value} AS {column.type}) END"
    return f"TRY_CAST({value} AS {column.type})"


def _present(column: SourceColumn, native: str) -> str:
    ref = _ident(column.name)
    return f"({ref} IS NOT NULL AND trim(CAST({ref} AS VARCHAR)) <> '')"


def _looks_like_data(column: str) -> bool:
    """A CSV "column name" that is more likely a value of a data row than a header (never shown)."""
    return len(column) > 64 or any(char in column for char in "@,;|\t\r\n") or "".join(column.split()).isdigit()


def _where(files: list[Path], file_name: str | None, row: int) -> str:
    if len(files) > 1 and file_name:
        return f"row {row} of {Path(file_name).name}"
    return f"row {row}"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def check_source(con: duckdb.DuckDBPyConnection, config: Config, source: SourceConfig) -> tuple[list[str], SourceCheck | None]:
    """Every problem of one source (messages without values), and its row count when readable."""
    try:
        files = source_files(config, source)
    except SourceError as err:
        return [str(err)], None
    problems: list[str] = []
    name = source.name
    if source.format == "duckdb":
        try:
            con.execute(f"ATTACH {_literal(str(files[0]))} AS src (READ_ONLY)")
        except duckdb.Error as err:  # not a DuckDB file (a CSV named as one, say)
            return [str(_read_error(source, err))], None
    try:
        sql = read_sql(source, files)
        try:
            native = _columns_of(con, sql)
        except duckdb.Error as err:
            return [str(_read_error(source, err))], None
        declared = {c.name: c for c in source.columns}
        missing = [c for c in declared if c not in native]
        unexpected = [c for c in native if c not in declared]
        if source.format == "csv" and len(native) == 1 and len(declared) > 1:
            only = next(iter(native))
            if re.search(r"\S {2,}\S", only):
                return [f"source {name}: {source.path} looks aligned with spaces (a fixed-width text file), which "
                        "churnwh does not read: convert it to CSV first, e.g. `awk -v OFS=, '{$1=$1}1' FILE > "
                        "FILE.csv` (when no value holds a space), and point the path at the CSV"], None
            for delim in OTHER_DELIMITERS:
                if delim != source.delimiter and delim in only:
                    shown = "\\t" if delim == "\t" else delim
                    return [f"source {name}: {source.path} has one column where {len(declared)} are declared: it "
                            f"looks {shown!r}-delimited: set sources.{name}.delimiter = \"{shown}\""], None
        if source.format == "csv" and source.header and unexpected and len(missing) == len(declared):
            # the first line names no declared column: it is data (no header line) or split wrongly, and
            # its "names" may be customer values, so none is shown
            return [f"source {name}: the first line of {source.path} names none of the {len(declared)} declared "
                    f"columns: add the header line, or set sources.{name}.header = false if the file has none, "
                    f"or fix sources.{name}.delimiter"], None
        shown_names = [c for c in unexpected if not _looks_like_data(c)]
        for column in missing:
            close = difflib.get_close_matches(column, shown_names, n=1, cutoff=0.6)
            hint = f" (the file has {close[0]!r}: fix the spelling in the file or the config)" if close else ""
            problems.append(f"source {name}: column {column} is missing{hint}")
        for column in shown_names:
            problems.append(f"source {name}: column {column} is in the file but not declared: "
                            f"add it to [sources.{name}.columns] with its type and class")
        if len(shown_names) < len(unexpected):
            hidden = len(unexpected) - len(shown_names)
            problems.append(f"source {name}: {_count(hidden, 'column name', 'column names')} in the first line of "
                            f"{source.path} look like data (not shown): check the header line and "
                            f"sources.{name}.delimiter")
        try:
            rows = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
        except duckdb.Error as err:
            return [str(_read_error(source, err))], None
        if rows == 0:
            if source.allow_empty:  # e.g. consent: a header-only file means nobody has objected
                return problems, SourceCheck(name, 0, len(files))
            problems.append(f"source {name}: {source.path} has a header but no data rows: export the data again "
                            f"(or set sources.{name}.allow_empty = true if no rows is legitimate)")
            return problems, None
        checks = []
        for column in source.columns:
            if column.name not in native:
                continue
            conversion = converted(column, native[column.name], source.date_format)
            if column.type != "VARCHAR":
                checks.append((column, "type", f"{_present(column, native[column.name])} AND {conversion} IS NULL"))
            if column.name == source.label:
                allowed = ", ".join(_literal(v) for v in (*source.positive, *source.negative))
                checks.append((column, "label", f"coalesce(trim(CAST({_ident(column.name)} AS VARCHAR)) NOT IN ({allowed}), true)"))
            if column.name == source.id_column:
                checks.append((column, "null_id", f"NOT {_present(column, native[column.name])}"))
                normalised = warehouse.normalised_id_sql(_ident(column.name))
                checks.append((column, "erasable_id", f"(regexp_matches({normalised}, {_literal(warehouse.ID_FORBIDDEN)}) "
                                                      f"OR length({normalised}) > {warehouse.ID_MAX_LENGTH})"))
        for column, kind, condition in checks:
            count, first_file, first_row = con.execute(
                f"SELECT count(*), arg_min({FILE}, {ROW}), min({ROW}) FROM ({sql}) WHERE {condition}"
            ).fetchone()
            if not count:
                continue
            where = _where(files, first_file, first_row)
            if kind == "type" and column.type in ("DATE", "TIMESTAMP"):
                fmt = source.date_format or ("YYYY-MM-DD" if column.type == "DATE" else "YYYY-MM-DD HH:MM:SS")
                problems.append(f"source {name}: column {column.name}: {_count(count, 'value is', 'values are')} "
                                f"not a {column.type.lower()} in the format {fmt} (first at {where}): use one date "
                                f"format in the file and declare it as sources.{name}.date_format")
            elif kind == "type":
                problems.append(f"source {name}: column {column.name}: {_count(count, 'value does', 'values do')} "
                                f"not parse as {column.type} (first at {where}): fix the file or declare the "
                                "column's real type")
            elif kind == "label":
                problems.append(
                    f"source {name}: label column {column.name}: {_count(count, 'row has a value', 'rows have values')} "
                    f"other than positive {list(source.positive)} or negative {list(source.negative)} (first at "
                    f"{where}): add the value to sources.{name}.positive or negative, or clean the file")
            elif kind == "erasable_id":
                problems.append(
                    f"source {name}: id column {column.name}: {_count(count, 'id holds', 'ids hold')} a control "
                    f"character or a comma, or {'is' if count == 1 else 'are'} longer than {warehouse.ID_MAX_LENGTH} "
                    f"characters (first at {where}): such an id could not be erased with `churnwh forget`; map "
                    "the ids to plain ones in the export")
            else:
                problems.append(f"source {name}: id column {column.name} is empty in {_count(count, 'row', 'rows')} "
                                f"(first at {where}): every row needs a customer id")
        if source.unique_id and source.id_column in native:
            ref = _ident(source.id_column)
            duplicated, first_file, first_row = con.execute(
                f"""SELECT count(*), arg_min(f, r), min(r) FROM (
                    SELECT {ref}, count(*) AS n, arg_min({FILE}, {ROW}) AS f, min({ROW}) FILTER (WHERE rn = 2) AS r
                    FROM (SELECT {ref}, {FILE}, {ROW}, row_number() OVER (PARTITION BY {ref} ORDER BY {FILE}, {ROW}) AS rn
                          FROM ({sql}) WHERE {ref} IS NOT NULL)
                    GROUP BY {ref} HAVING count(*) > 1)"""
            ).fetchone()
            if duplicated:
                problems.append(
                    f"source {name}: id column {source.id_column}: {_count(duplicated, 'customer id appears', 'customer ids appear')} "
                    f"more than once (first repeat at {_where(files, first_file, first_row)}): a flat customer table "
                    "needs one row per customer")
        return problems, SourceCheck(name, rows, len(files))
    finally:
        if source.format == "duckdb":
            con.execute("DETACH src")


def check_sources(config: Config) -> list[SourceCheck]:
    """Compare every declared source with its declaration; raise SourceError listing every problem.

    A declared consent source that the training or scoring model does not read is refused first."""
    check_consent_applied(config)
    problems: list[str] = []
    checked: list[SourceCheck] = []
    con = duckdb.connect()
    try:
        for source in config.sources:
            found, check = check_source(con, config, source)
            problems += found
            if check:
                checked.append(check)
    finally:
        con.close()
    if problems:
        more = f" ({len(problems)} problems; nothing was loaded)" if len(problems) > 1 else " (nothing was loaded)"
        raise SourceError("; ".join(problems) + more)
    return checked


# --- consent -----------------------------------------------------------------------------------------

CONSENT_SOURCE = "consent_events"
"""The source holding consent decisions, in the canonical schema sql/staging/consent_events.sql reads."""
NO_CONSENT_NOTICE = ("consent: no consent source is declared ([sources.consent_events]), so every customer is profiled "
                     "under legitimate interest; to exclude objectors and opt-outs see README, Bring your own data")


def consent_notice(config: Config) -> str | None:
    """The one line `init` and `build` print for a project of declared sources without a consent source."""
    if config.source == "demo" or any(source.name == CONSENT_SOURCE for source in config.sources):
        return None
    return NO_CONSENT_NOTICE


def check_consent_applied(config: Config) -> None:
    """A declared consent source must reach the training and scoring models (through staging.consent_state):
    declared but read by no model, it would be loaded while objectors are profiled. Raises SourceError."""
    if config.source == "demo" or not any(source.name == CONSENT_SOURCE for source in config.sources):
        return
    from churnwh.sqlmodels.project import load_project

    try:
        project = load_project(config.sql)
    except ChurnwhError:
        return  # the models stage reports a broken model with its file and line
    raw = f"{warehouse.RAW_SCHEMA}.{CONSENT_SOURCE}"
    for option in (config.training.model, config.training.scoring_model):
        try:
            model = project.resolve(option)
        except ChurnwhError:
            continue  # the train and score stages name a missing model
        if not any(raw in project.models[m].references for m in project.upstream(model)):
            raise SourceError(
                f"sources.{CONSENT_SOURCE} is declared but {model} does not read it (no model upstream of it reads "
                f"{raw}): customers who objected would be profiled: exclude them as `churnwh init --consent` does "
                "(staging.consent_state; see README, Bring your own data) or remove the source; nothing was loaded")


# --- loading ---------------------------------------------------------------------------------------


def fingerprint(config: Config) -> str:
    """Declarations plus the size and modification time of every file: changes when a source does."""
    payload = []
    for source in config.sources:
        files = source_files(config, source)
        payload.append({
            "source": repr(source),
            "files": [(_relative(f, config.root), f.stat().st_size, f.stat().st_mtime_ns) for f in files],
        })
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def select_sql(source: SourceConfig, native: dict[str, str], sql: str, files: list[Path] | None = None,
               file_parts: list[tuple[str, Path]] | None = None) -> str:
    parts = []
    if file_parts:  # each row's part, from the file it was read from
        cases = " ".join(f"WHEN {_literal(str(file))} THEN {_literal(part)}" for part, file in file_parts)
        parts.append(f"CASE {FILE} {cases} END AS {_ident(source.part_column)}")
    for column in source.columns:
        expression = converted(column, native[column.name], source.date_format)
        if column.name == source.label:
            positives = ", ".join(_literal(v) for v in source.positive)
            expression = f"CAST(CASE WHEN trim(CAST({_ident(column.name)} AS VARCHAR)) IN ({positives}) THEN 1 ELSE 0 END AS INTEGER)"
        elif column.name == source.id_column:
            expression = warehouse.normalised_id_sql(_ident(column.name))
        parts.append(f"{expression} AS {_ident(raw_name(source, column.name))}")
    if source.id_column == ROW_ID:
        several = "regexp_replace(" + FILE + ", '^.*[/\\\\]', '') || ':' || " if len(files or ()) > 1 else ""
        parts.insert(0, f"{several}CAST({ROW} AS VARCHAR) AS {warehouse.CUSTOMER_ID}")
    return f"SELECT {', '.join(parts)} FROM ({sql}) ORDER BY {FILE}, {ROW}"


def load_sources(config: Config, con: duckdb.DuckDBPyConnection, *, force: bool = False,
                 on_progress: Reporter = ignore) -> str:
    """Check every source, then (re)write the raw tables in one transaction; skip if unchanged.
    ``on_progress`` gets a ``Count`` of rows per table written."""
    register_classification(config)
    current = fingerprint_or_raise(config)
    if not force and warehouse.get_meta(con, FINGERPRINT_META) == current:
        check_consent_applied(config)  # the models may have changed since
        return "sources unchanged"
    checked = check_sources(config)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {warehouse.RAW_SCHEMA}")
    attached = []
    try:
        for source in config.sources:
            if source.format == "duckdb":
                alias = f"churnwh_source_{source.name}"
                con.execute(f"ATTACH {_literal(str(source_files(config, source)[0]))} AS {alias} (READ_ONLY)")
                attached.append(alias)
        con.execute("BEGIN TRANSACTION")
        try:
            rows_of = {check.name: check.rows for check in checked}
            total, done = sum(rows_of.values()), 0
            for source in config.sources:
                files = source_files(config, source)
                sql = read_sql(source, files, attached=f"churnwh_source_{source.name}")
                native = _columns_of(con, sql)
                file_parts = part_files(config, source) if source.parts else None
                con.execute(f"CREATE OR REPLACE TABLE {warehouse.RAW_SCHEMA}.{_ident(source.name)} AS "
                            + select_sql(source, native, sql, files, file_parts))
                done += rows_of.get(source.name, 0)
                on_progress(Count("load", done, total, "rows", f"{warehouse.RAW_SCHEMA}.{source.name}"))
            warehouse.set_meta(con, FINGERPRINT_META, current)
            con.execute("COMMIT")
        except duckdb.Error as err:
            con.execute("ROLLBACK")
            raise ChurnwhError(f"loading the sources failed: {warehouse.first_line(err)}; nothing was loaded") from None
    finally:
        for alias in attached:
            con.execute(f"DETACH {alias}")
    rows = sum(check.rows for check in checked)
    return f"{len(checked)} sources loaded, {rows:,} rows"


def fingerprint_or_raise(config: Config) -> str:
    problems = []
    for source in config.sources:
        try:
            source_files(config, source)
        except SourceError as err:
            problems.append(str(err))
    if problems:
        raise SourceError("; ".join(problems) + " (nothing was loaded)")
    return fingerprint(config)
