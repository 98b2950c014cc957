"""`churnwh init --flat --from FILE`: a declaration and feature SQL for the user's own file."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from churnwh.errors import ChurnwhError
from churnwh.sources.scaffold.naming import (
    REASONS,
    _ident,
    _listed,
    _relative_or_absolute,
    _showable,
    _toml_key,
    comment_text,
    guess_class,
    snake,
    toml_string,
    words,
)
from churnwh.sources.scaffold.templates import COMMON, SOURCE_HELP
from churnwh.sources.scaffold.user_file import read_user_file

ID_NAMES = ("customer_id", "client_id", "account_id", "user_id", "member_id", "subscriber_id", "id", "customer",
            "client")
LABEL_NAMES = ("churn", "churned", "is_churned", "churn_flag", "exited", "attrition", "attrited", "left")
POSITIVE_GUESSES = ("Yes", "yes", "YES", "Y", "y", "1", "true", "True", "TRUE", "churned", "Churned")
VALUE_WORDS = ("charge", "charges", "fee", "fees", "price", "revenue", "spend", "amount", "balance",
               "arpu", "mrr", "payment", "bill", "value")
RESERVED_ALIASES = {"customer_pseudonym", "observation_date", "churned", "customer_id"}
MAX_LABEL_VALUES = 10
ROW_NOTE = ("   # no id in the file: a customer is their row's number in it (keep the rows in the same order; "
            "appending keeps the ids)")


@dataclass
class SniffedColumn:
    name: str
    type: str
    privacy: str
    why: str
    """Why the class was guessed (written as a comment beside the declaration)."""
    alias: str = ""
    """The feature's name in the SQL models; empty when the column is not a feature."""
    left_out: str = ""
    """Why the column is not a feature (written as a comment in the SQL)."""


@dataclass
class FlatSource:
    """What `churnwh init --flat --from FILE` learnt from the user's file (names and types, no values)."""

    path: Path
    format: str
    delimiter: str
    date_format: str | None
    columns: list[SniffedColumn]
    id_column: str
    label: str
    positive: list[str]
    negative: list[str]
    rows: int
    value_column: str | None
    parts: list[tuple[str, Path]] = field(default_factory=list)
    """Several files, each a part of the data's own split (churnwh.sources.scaffold.parts); empty: one file."""
    part_column: str = "part"
    split_alias: str = ""
    """A column of the file holding the data's own split (train/test), as named in the models."""
    split_date: dt.date | None = None
    """With a date split column: rows on or after this date are the test part ([training] split_date)."""
    leaks: list = field(default_factory=list)
    """churnwh.ml.leakage.Suspect per feature column that likely leaks the label (names, never values)."""
    excluded: list[str] = field(default_factory=list)
    """Columns left out with --exclude (declared, so that the file still loads; in no SQL model)."""


CODE_WORDS = {"code", "zip", "zipcode", "postal", "postcode", "areacode"}


def _code_named(name: str) -> bool:
    """``area_code``, ``plan_code``, ``zip``, ``PostalCode``: numbers that name something, not quantities."""
    found = words(name)
    return bool(set(found) & CODE_WORDS) or "".join(found).endswith("code")


def _sparse_codes(con, name: str, native: str, distinct: int, date_format: str | None) -> bool:
    """A few distinct integers scattered over a wide range (408, 415, 510): codes, not counts (0 to 6)."""
    from churnwh.config import SourceColumn
    from churnwh.sources import declared as sources

    if not 1 < distinct <= MAX_LABEL_VALUES:
        return False
    value = sources.converted(SourceColumn(name, "BIGINT", "plain"), native, date_format)
    low, high = con.execute(f"SELECT min({value}), max({value}) FROM src").fetchone()
    return low is not None and low >= 100 and high - low + 1 > 5 * distinct


def _matching(path: Path) -> list[Path]:
    """The files ``--from`` names: one file, or a glob (as a source's ``path``) matching one or more."""
    import glob as globbing

    if any(char in str(path) for char in "*?["):
        files = sorted(Path(p) for p in globbing.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise ChurnwhError(f"--from {path}: no file matches the pattern: check the folder and the pattern")
        suffixes = {f.suffix.lower() for f in files}
        if len(suffixes) > 1:
            kinds = ", ".join(sorted(suffixes))
            raise ChurnwhError(f"--from {path}: the pattern matches files of several kinds ({kinds}): narrow it to "
                               "one format, e.g. *.csv")
        return files
    if not path.is_file():
        raise ChurnwhError(f"--from {path}: no such file: give the path of your customer CSV or Parquet file")
    return [path]


def _pick(columns: list[str], wanted: str | None, guesses: tuple[str, ...], option: str, what: str,
          row_numbers: bool = False) -> str:
    if wanted is not None:
        if wanted in columns:
            return wanted
        import difflib

        close = difflib.get_close_matches(wanted, _showable(columns), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ChurnwhError(f"{option} {wanted!r}: the file has no such column: {hint}its columns are "
                           f"{_listed(columns)}")
    by_snake = {snake(c): c for c in columns}
    for guess in guesses:
        if guess in by_snake:
            return by_snake[guess]
    none = " (or --id-column @row if the file has no id: each row's number in the file)" if row_numbers else ""
    raise ChurnwhError(f"cannot tell which column is {what}: pass {option} COLUMN{none} (the file's columns are "
                       f"{_listed(columns)})")


def sniff_flat(path: Path, *, id_column: str | None = None, label: str | None = None,
               positive: list[str] | None = None, negative: list[str] | None = None,
               exclude: list[str] | None = None) -> FlatSource:
    """Read ``path`` (CSV or Parquet) the way `churnwh load` will, and infer its declaration.

    Types are what DuckDB's sniffer sees, confirmed with the loader's own conversion (a type that
    would reject a value falls back to VARCHAR; a text column whose non-blank values all parse as
    numbers becomes a number). Messages name columns, never values.
    """
    import duckdb

    from churnwh.sources import declared as sources

    path = path.expanduser().resolve()
    files = _matching(path)
    con = duckdb.connect()
    try:
        user_file = read_user_file(con, path, files, "customers")
        delimiter, date_format, native, rows = (user_file.delimiter, user_file.date_format, user_file.native,
                                                user_file.rows)
        names = user_file.names
        if id_column != sources.ROW_ID:
            id_column = _pick(names, id_column, ID_NAMES, "--id-column", "the customer id", row_numbers=True)
        label = _pick(names, label, LABEL_NAMES, "--label", "the churn flag")
        if label == id_column:
            raise ChurnwhError("--label and --id-column name the same column: the churn flag and the customer id "
                               "are two columns")
        exclude = [_pick(names, name, (), "--exclude", "") for name in dict.fromkeys(exclude or [])]
        if set(exclude) & {id_column, label}:
            raise ChurnwhError("--exclude names the id or the label column: those are never features; exclude "
                               "other columns")

        ref = sources._ident

        # the id: one row per customer, never empty (a row number is both)
        empty, duplicated = (0, 0) if id_column == sources.ROW_ID else con.execute(
            f"SELECT count(*) FILTER (WHERE coalesce(trim(CAST({ref(id_column)} AS VARCHAR)), '') = ''), "
            f"count(*) - count(DISTINCT trim(CAST({ref(id_column)} AS VARCHAR))) FROM src").fetchone()
        if empty or duplicated:
            problem = f"is empty in {empty} rows" if empty else f"repeats {duplicated} values"
            raise ChurnwhError(f"--id-column {id_column}: the column {problem}: a flat customer table needs one "
                               "row per customer with its id; pick the column that identifies a customer")
        # the label: on every row; its values, the positive and negative ones
        unlabelled = con.execute(
            f"SELECT count(*) FROM src WHERE coalesce(trim(CAST({ref(label)} AS VARCHAR)), '') = ''").fetchone()[0]
        if unlabelled:
            raise ChurnwhError(f"--label {label}: the column is empty in {unlabelled} rows: every customer needs the "
                               "churn flag (drop those rows or fill them in)")
        values = [v for (v,) in con.execute(
            f"SELECT DISTINCT trim(CAST({ref(label)} AS VARCHAR)) AS v FROM src WHERE v IS NOT NULL AND v <> '' "
            f"ORDER BY v LIMIT {MAX_LABEL_VALUES + 1}").fetchall()]
        if len(values) > MAX_LABEL_VALUES:
            raise ChurnwhError(f"--label {label}: the column has more than {MAX_LABEL_VALUES} distinct values: "
                               "is it the churn flag? pass --label with the column saying who churned")
        if len(values) < 2:
            raise ChurnwhError(f"--label {label}: the column has {len(values)} distinct value(s): a churn flag "
                               "needs churned and retained customers")
        if not positive:
            guessed = [v for v in values if v in POSITIVE_GUESSES]
            if len(guessed) != 1 or len(values) != 2:
                counted = con.execute(
                    f"SELECT trim(CAST({ref(label)} AS VARCHAR)) AS v, count(*) AS n FROM src GROUP BY v "
                    "ORDER BY n DESC, v").fetchall()
                shown = ", ".join(f"{value!r} ({n:,} rows)" for value, n in counted)
                raise ChurnwhError(f"--label {label}: cannot tell which value means churned (its values: {shown}): "
                                   "pass --positive VALUE (and --negative VALUE)")
            positive = guessed
        for value in [*positive, *(negative or [])]:
            if value not in values:
                raise ChurnwhError(f"--positive/--negative: no row of column {label} holds that value "
                                   f"({len(values)} distinct values there): check the spelling")
        negative = list(negative or [v for v in values if v not in positive])
        if set(positive) & set(negative) or not negative:
            raise ChurnwhError("--positive and --negative must be different values of the label column")

        columns: list[SniffedColumn] = []
        taken = set(RESERVED_ALIASES)
        for name in names:
            kind = "VARCHAR" if name in (id_column, label) else user_file.inferred_type(name)
            distinct, present = con.execute(
                f"SELECT count(DISTINCT v), count(v) FROM (SELECT nullif(trim(CAST({ref(name)} AS VARCHAR)), '') AS v "
                "FROM src)").fetchone()
            if kind == "BIGINT" and (_code_named(name)
                                     or _sparse_codes(con, name, native[name], distinct, date_format)):
                kind = "VARCHAR"  # an area, plan or postal code: a category, not a quantity
            # a Yes/No or a small set of codes is a category, whatever the name (PhoneService, email_opt_in)
            category = kind == "BOOLEAN" or (distinct <= MAX_LABEL_VALUES and rows >= 5 * MAX_LABEL_VALUES)
            privacy, word = guess_class(name)
            why = f"named like {word!r}: {REASONS[privacy]}" if word else "no identifying name"
            if privacy == "direct_identifier" and category:
                privacy, why = "plain", f"named like {word!r} but holds only {distinct} distinct values"
            column = SniffedColumn(name, kind, privacy, why)
            if name == id_column:
                column.privacy, column.why = "direct_identifier", "the customer id: loaded as customer_id and " \
                    "replaced by its keyed pseudonym"
                column.left_out = "the customer id (only its pseudonym leaves raw)"
            elif name == label:
                column.privacy, column.why = "plain", "the churn flag: loaded as 1 (positive) / 0 (negative)"
            elif name in exclude:
                column.left_out = "excluded with --exclude"
            elif column.privacy == "direct_identifier":
                column.left_out = "a direct identifier: stays in raw"
            elif present == 0:
                column.left_out = "empty in every row"
            elif kind in ("VARCHAR", "BIGINT") and rows >= 20 and distinct == rows:
                column.left_out = "a different value on every row: a key or a row number, not a feature"
                if kind == "VARCHAR" and column.privacy == "plain":
                    column.privacy = "direct_identifier"
                    column.why = "a different value on every row: looks like an identifier"
            elif kind == "VARCHAR" and rows >= 20 and distinct > rows // 2:
                column.left_out = "more distinct values than half the rows: free text or a code, not a category"
                if column.privacy == "quasi_identifier":
                    column.left_out += f" (a quasi-identifier: coarsen it, e.g. left(c.{_ident(name)}, 2), to use it)"
            if not column.left_out and name != label:
                alias = snake(name)
                if kind in ("DATE", "TIMESTAMP"):
                    alias += "_years" if column.privacy == "quasi_identifier" else "_days"
                while alias in taken:
                    alias += "_"
                taken.add(alias)
                column.alias = alias
            columns.append(column)
        if not any(c.alias for c in columns):
            raise ChurnwhError(f"--from {path}: no column besides the id and the label can be a feature: "
                               "a flat table needs at least one attribute of the customer")
        features = [c for c in columns if c.alias and c.type in ("BIGINT", "DOUBLE")]
        value_column = None
        for preferred in (True, False):
            for column in features:
                found = words(column.name)
                if any(w in VALUE_WORDS for w in found) and (not preferred or "monthly" in found or "month" in found):
                    value_column = column.alias
                    break
            if value_column:
                break
        leaks = _leaks(con, columns, label, positive, native, date_format)
        return FlatSource(path=path, format=user_file.format, delimiter=delimiter, date_format=date_format, columns=columns,
                          id_column=id_column, label=label, positive=list(positive), negative=negative, rows=rows,
                          value_column=value_column, leaks=leaks, excluded=exclude)
    finally:
        con.close()


def _leaks(con, columns: list[SniffedColumn], label: str, positive: list[str], native: dict[str, str],
           date_format: str | None) -> list:
    """The feature columns of the file (table ``src``) that likely leak the label: named after it,
    separating it on their own, or dated after today (the scaffold's as_of). See churnwh.ml.leakage."""
    from churnwh.config import SourceColumn
    from churnwh.ml import leakage
    from churnwh.sources import declared as sources

    features = [c for c in columns if c.alias]
    if not features:
        return []
    named = leakage.named_after_label([c.name for c in features], [label])
    checked = [c for c in features if c.name not in {s.column for s in named}]
    found = list(named)
    if checked:
        casts = []
        for number, column in enumerate(checked):
            value = sources.converted(SourceColumn(column.name, column.type, "plain"), native[column.name],
                                      date_format)
            if column.type == "TIMESTAMP":
                value = f"CAST({value} AS DATE)"
            casts.append(f"{value} AS c{number}")
        listed = ", ".join(sources._literal(value) for value in positive)
        import polars as pl

        query = (f"SELECT CAST(trim(CAST({sources._ident(label)} AS VARCHAR)) IN ({listed}) AS INTEGER) AS label, "
                 f"{', '.join(casts)}, current_date AS today FROM src")
        with warnings.catch_warnings():  # the copy DuckDB warns of costs nothing at a file's size
            warnings.simplefilter("ignore", UserWarning)
            frame = pl.from_arrow(con.execute(query).to_arrow_table())
        suspects = leakage.find_leaks(frame, "label", [f"c{n}" for n in range(len(checked))], date_column="today")
        found += [leakage.Suspect(checked[int(s.column[1:])].name, s.reason) for s in suspects]
    order = [c.name for c in features]
    return sorted(found, key=lambda s: order.index(s.column))


def flat_config(flat: FlatSource, root: Path) -> str:
    """churnwh.toml for the user's file: its real columns, types and a reviewed-by-you classification."""
    width = max(len(_toml_key(c.name)) for c in flat.columns)
    lines = []
    for column in flat.columns:
        spec = f'{{ type = "{column.type}", class = "{column.privacy}" }}'
        why = column.why + ("; excluded with --exclude: in no SQL model" if column.name in flat.excluded else "")
        lines.append(f"{_toml_key(column.name).ljust(width)} = {spec.ljust(54)} # {comment_text(why)}")
    options = []
    if flat.delimiter != ",":
        shown = "\\t" if flat.delimiter == "\t" else flat.delimiter
        options.append(f'delimiter = "{shown}"')
    if flat.date_format:
        options.append(f"date_format = {toml_string(flat.date_format)}")
    row_note = ROW_NOTE if flat.id_column == "@row" else ""
    value = (f"value_column = {toml_string(flat.value_column)}" if flat.value_column else
             'value_column = "customer_value"     # no money column found: a value of 1 per customer; set yours')
    config = f"""# churnwh project: a flat customer table (one row per customer with a churn flag), written by
# `churnwh init --flat --from {comment_text(flat.path.name)}` from the file's header and {flat.rows:,} rows.
# Paths are relative to this file's folder. Uncommented lines are required; the rest show defaults.

[source]
kind = "flat"                            # demo | events | flat

{SOURCE_HELP}
[sources.customers]
path = {toml_string(_relative_or_absolute(flat.path, root))}   # moved? churnwh build --source customers=NEW_PATH
format = "{flat.format}"
{chr(10).join(options) + chr(10) if options else ''}id_column = {toml_string(flat.id_column)}{row_note}
label = {toml_string(flat.label)}
positive = {_toml_list(flat.positive)}
negative = {_toml_list(flat.negative)}

# REVIEW EVERY LINE BELOW before a real build. The types were read from the file; the classes are
# GUESSES from the column names: direct_identifier (names, e-mails, phones, addresses, ids: stay in raw),
# quasi_identifier (age, birth date, postcode, gender, region, country: identify in combination),
# sensitive, pseudonym, plain. A column you reclassify as direct_identifier must also leave
# sql/staging/customers.sql (the build's lineage proof stops otherwise).
[sources.customers.columns]
{chr(10).join(lines)}

@@CONSENT@@
[vars]
as_of = "{dt.date.today().isoformat()}"                  # the scoring date of each score; dates become days before it
"""
    common = COMMON.replace('# value_column = "monthly_price"         # a scoring-set column: value at risk = '
                            'value x horizon_months', value + "  # value at risk = value x horizon_months", 1)
    return config + common


def flat_sql(flat: FlatSource) -> dict[str, str]:
    """The staging and mart models over the file's columns (features: every column not left out)."""
    selects, notes = [], []
    for column in flat.columns:
        ref = f"c.{_ident(column.name)}"
        if column.name == flat.label:
            selects.append(f"    {ref} AS churned,                    -- the label: loaded as 1 (positive) / 0")
        elif column.alias and column.alias == flat.split_alias and flat.split_date is not None:
            selects.append(f"    CAST({ref} AS DATE) AS {column.alias},  -- the data's own split by date: "
                           "training.split_column (not a feature)")
        elif column.alias and column.type in ("DATE", "TIMESTAMP"):
            part = "year" if column.privacy == "quasi_identifier" else "day"
            selects.append(f"    date_diff('{part}', CAST({ref} AS DATE), getvariable('as_of')) AS {column.alias},"
                           f"  -- {part}s before as_of")
        elif column.alias:
            selects.append(f"    {ref} AS {column.alias},")
        else:
            notes.append(f"--   {comment_text(column.name)}: {comment_text(column.left_out)}")
    features = [c.alias for c in flat.columns if c.alias]
    quasi = [c for c in flat.columns if c.alias and c.privacy == "quasi_identifier"]
    docs = "".join(f'\n[columns.{c.alias}]\nprivacy = "quasi_identifier"\n' for c in quasi)
    listed = ",\n    ".join(", ".join(features[i:i + 6]) for i in range(0, len(features), 6))
    value = "" if flat.value_column else ",\n    CAST(1 AS DOUBLE) AS customer_value   -- [scoring] value_column"
    staging = f"""/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "One row per customer, keyed by pseudonym: the features read from raw.customers. Never a direct identifier."

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null", "unique"]

[columns.churned]
checks = ["not_null"]
accepted_values = [0, 1]
{docs}*/
-- Written by `churnwh init --flat --from`. Left out of the features:
{chr(10).join(notes) if notes else '--   (nothing)'}
SELECT
    k.customer_pseudonym,
{chr(10).join(selects)}
FROM raw.customers AS c
JOIN raw.customer_keys AS k ON k.customer_id = c.customer_id
"""
    # the trailing comma of the last feature line goes: the label is always listed, put it last
    staging = re.sub(r",(\s*(?:--[^\n]*)?)\nFROM raw", r"\1\nFROM raw", staging)
    training = f"""/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Features and the churn flag; observation_date is NULL (no time), so training splits stratified at random."
*/
SELECT
    customer_pseudonym,
    CAST(NULL AS DATE) AS observation_date,
    {listed},
    churned
FROM staging.customers
"""
    scoring = f"""/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Current customers (churned = 0) with the same features, scored at as_of."
*/
SELECT
    customer_pseudonym,
    getvariable('as_of') AS observation_date,
    {listed}{value}
FROM staging.customers
WHERE churned = 0
"""
    _check_generated(staging, ["customer_pseudonym", *[c.alias or "churned" for c in flat.columns
                                                         if c.alias or c.name == flat.label]])
    return {"staging/customers.sql": staging, "marts/training_set.sql": training, "marts/scoring_set.sql": scoring}


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(toml_string(value) for value in values) + "]"


def _check_generated(sql: str, outputs: list[str]) -> None:
    """The generated staging model, parsed back, is one SELECT with exactly the intended output columns
    from raw.customers and raw.customer_keys: a name that changed the SQL's structure stops init."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError:
        statements = []
    tables = {f"{t.db}.{t.name}" for s in statements for t in s.find_all(exp.Table)}
    if (len(statements) != 1 or not isinstance(statements[0], exp.Select)
            or [e.alias_or_name for e in statements[0].selects] != outputs
            or tables != {"raw.customers", "raw.customer_keys"}):
        raise ChurnwhError("--from: the file's column names cannot be written into sql/staging/customers.sql "
                           "safely: rename the unusual columns in the file; nothing was written")
