"""A differential fuzzer of DuckDB against Spark (through churnwh.spark.dialect), for tests/test_spark_fuzz.py.

``used_functions`` lists what our SQL and the scaffolds' templates use (parsed with sqlglot); ``Generator``
writes random, typed DuckDB expressions from exactly those functions and operators over a table of edge
values (halves, negative zero, NaN, infinities, NULL, extreme dates and timestamps, unicode text); ``run``
evaluates many expressions per query on both engines and returns what differs. Deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import random
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from churnwh.spark.dialect import to_spark

REPO = Path(__file__).resolve().parents[1]

# --- what our SQL uses ---------------------------------------------------------------------------------


def template_texts() -> dict[str, str]:
    """Every SQL model text churnwh ships: sql/ and the scaffolds' templates (those generated from a file
    are generated for a tiny purchase log and a tiny customer table)."""
    from churnwh.sources.scaffold.event_log import event_sql, sample_dropped_sql, sniff_events
    from churnwh.sources.scaffold.from_file import flat_sql, sniff_flat
    from churnwh.sources.scaffold.shapes import FLAT_SQL, INACTIVITY_SQL
    from tests.test_byod_events import purchase_log
    from tests.test_sources import customer_rows, write_csv

    texts = {str(path.relative_to(REPO)): path.read_text() for path in sorted((REPO / "sql").rglob("*.sql"))}
    texts.update({f"flat:{name}": text for name, text in FLAT_SQL.items()})
    texts.update({f"inactivity:{name}": text for name, text in INACTIVITY_SQL.items()})
    texts["inactivity:features/dropped_customers.sql"] = sample_dropped_sql()
    with tempfile.TemporaryDirectory() as folder:
        purchases, customers = Path(folder) / "purchases.csv", Path(folder) / "customers.csv"
        purchase_log(purchases, customers=40)
        write_csv(customers, customer_rows(40))
        texts.update({f"events --from:{n}": t for n, t in event_sql(sniff_events(purchases)).items()})
        flat = sniff_flat(customers, label="churned", positive=["Yes"])
        texts.update({f"flat --from:{n}": t for n, t in flat_sql(flat).items()})
    return texts


def node_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, (exp.Cast,)):
        return f"{type(node).__name__}:{node.to.this.name}"
    if isinstance(node, (exp.Func, exp.Binary, exp.Unary, exp.Case, exp.Between, exp.In, exp.Exists)):
        if isinstance(node, (exp.Paren, exp.Alias, exp.Column, exp.Dot)):
            return None
        return type(node).__name__
    return None


def used_functions() -> dict[str, str]:
    """function/operator (sqlglot class name, ``Cast:TYPE``, an anonymous function's name) -> first file using it."""
    used: dict[str, str] = {}
    for where, text in template_texts().items():
        for node in sqlglot.parse_one(text, read="duckdb").walk():
            name = node_name(node)
            if name:
                used.setdefault(name, where)
    return used


# --- the edge values -----------------------------------------------------------------------------------

DOUBLES = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 0.125, 2.675, 129.6975, 884.15, -65.9695, 1e-300, -1e300,
           4503599627370497.0, 1e16, 0.1, 3.0, -7.0, float("nan"), float("inf"), float("-inf"), None]
INTEGERS = [0, 1, -1, 2, 3, -7, 7, 10, 365, -400, 2147483647, -2147483648, None]
BIGINTS = [0, 5, -5, 9007199254740993, -9223372036854775808, 9223372036854775807, None]
DECIMALS = [decimal.Decimal(v) for v in ("0.000", "2.500", "-2.500", "0.005", "-0.005", "1.235", "129.698",
                                         "999999999999999.999", "-1.000")] + [None]
STRINGS = ["", " ", "abc", "ABC", "Ärger", "straße", "İstanbul", "ǅ", "Σς", " a b ", "\t x\n", "\u00a0x\u00a0",
           "1.5", "2.5", " 7 ", "-0", "1e3", "NaN", "inf", "2024-02-29", "2024-02-30", " 2024-01-01 ",
           "2024-01-01 12:00:00", "0001-01-01", "9999-12-31", "e\u0301", "😀x", "a'b", "ΟΔΟΣ", "ﬁx", None]
DATES = [dt.date(1, 1, 1), dt.date(1582, 10, 4), dt.date(1582, 10, 15), dt.date(1899, 12, 31), dt.date(1969, 12, 31),
         dt.date(1970, 1, 1), dt.date(2000, 2, 29), dt.date(2023, 12, 31), dt.date(2024, 2, 29), dt.date(2024, 3, 1),
         dt.date(9999, 12, 31), None]
TIMESTAMPS = [dt.datetime(1, 1, 1), dt.datetime(1969, 12, 31, 23, 59, 59, 999999), dt.datetime(1970, 1, 1),
              dt.datetime(2024, 2, 29, 12, 34, 56, 789012), dt.datetime(2024, 3, 31, 23, 59, 59),
              dt.datetime(2023, 1, 1, 0, 0, 0, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999), None]

COLUMNS = {  # name -> (DuckDB type, generator type, values)
    "d1": ("DOUBLE", "double", DOUBLES), "d2": ("DOUBLE", "double", DOUBLES),
    "i1": ("INTEGER", "int", INTEGERS), "i2": ("INTEGER", "int", INTEGERS),
    "b1": ("BIGINT", "bigint", BIGINTS),
    "m1": ("DECIMAL(18, 3)", "decimal", DECIMALS), "m2": ("DECIMAL(18, 3)", "decimal", DECIMALS),
    "s1": ("VARCHAR", "text", STRINGS), "s2": ("VARCHAR", "text", STRINGS),
    "t1": ("DATE", "date", DATES), "t2": ("DATE", "date", DATES),
    "ts1": ("TIMESTAMP", "timestamp", TIMESTAMPS), "ts2": ("TIMESTAMP", "timestamp", TIMESTAMPS),
}
ROWS = 48


def edge_rows(seed: int) -> list[tuple]:
    """Every edge value of every column appears (each column walks its list from its own offset)."""
    rng = random.Random(seed)
    offsets = {name: rng.randrange(len(values)) for name, (_, _, values) in COLUMNS.items()}
    rows = []
    for row in range(ROWS):
        values = [values[(row * (k + 1) + offsets[name]) % len(values)] for k, (name, (_, _, values)) in enumerate(COLUMNS.items())]
        rows.append((row, row % 4, *values))
    return rows


# --- the generator -------------------------------------------------------------------------------------

DATE_PARTS = ("day", "week", "month", "quarter", "year")
TIME_PARTS = ("second", "minute", "hour", "day", "month", "year")
TRUNC_PARTS = ("day", "week", "month", "quarter", "year")
SMALL = ("0", "1", "-1", "2", "7", "30", "-30", "365")


class Generator:
    """Random typed DuckDB expressions; ``self.used`` counts the functions/operators written."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, options):
        return self.rng.choice(options)

    def column(self, kind: str) -> str:
        return self.pick([name for name, (_, k, _) in COLUMNS.items() if k == kind])

    def expr(self, kind: str, depth: int = 0) -> str:
        if depth >= 3 or self.rng.random() < 0.25:
            return self.leaf(kind)
        return getattr(self, f"gen_{kind}")(depth + 1)

    def leaf(self, kind: str) -> str:
        if kind == "bool":
            return f"({self.column('int')} > 0)"
        if self.rng.random() < 0.8:
            return self.column(kind)
        literal = {
            "double": lambda: f"CAST('{self.pick(['0.5', '-0.0', '2.5', '1e308', 'NaN', '0.1'])}' AS DOUBLE)",
            "int": lambda: self.pick(SMALL),
            "bigint": lambda: f"CAST({self.pick(SMALL)} AS BIGINT)",
            "decimal": lambda: f"CAST('{self.pick(['0.5', '-1.005', '2.345'])}' AS DECIMAL(18, 3))",
            "text": lambda: self.pick(["'x'", "''", "'Ä b'", "'a'"]),
            "date": lambda: f"DATE '{self.pick(['2024-02-29', '1970-01-01', '2023-12-31'])}'",
            "timestamp": lambda: f"TIMESTAMP '{self.pick(['2024-02-29 23:59:59', '1970-01-01 00:00:00'])}'",
        }[kind]
        return literal()

    def common(self, kind: str, depth: int) -> list[str]:
        """CASE, IF, COALESCE, NULLIF, GREATEST, LEAST: over any type."""
        a, b = self.expr(kind, depth), self.expr(kind, depth)
        options = [
            f"CASE WHEN {self.expr('bool', depth)} THEN {a} ELSE {b} END",
            f"CASE {self.column('int')} WHEN 1 THEN {a} WHEN 2 THEN {b} END",
            f"if({self.expr('bool', depth)}, {a}, {b})",
            f"coalesce({a}, {b})",
            f"nullif({a}, {b})",
        ]
        if kind != "bool":
            options += [f"greatest({a}, {b})", f"least({a}, {b})"]
        return options

    def gen_double(self, d: int) -> str:
        a, b = self.expr("double", d), self.expr("double", d)
        n = self.pick(["0", "1", "2", "3", "4"])
        return self.pick([
            f"({a} + {b})", f"({a} - {b})", f"({a} * {b})", f"({a} / {b})", f"({a} / {self.expr('int', d)})",
            f"(-({a}))", f"round({a}, {n})", f"round({a})", f"floor({a})",
            f"CAST({self.expr(self.pick(['int', 'decimal', 'bigint']), d)} AS DOUBLE)",
            f"TRY_CAST({self.expr('text', d)} AS DOUBLE)", f"CAST({self.expr('decimal', d)} AS DOUBLE) / {b}",
            *self.common("double", d),
        ])

    def gen_int(self, d: int) -> str:
        a, b = self.expr("int", d), self.expr("int", d)
        part = self.pick(DATE_PARTS)
        return self.pick([
            f"({a} + {b})", f"({a} - {b})", f"({a} * {b})", f"(-({a}))",
            f"CAST({self.expr('double', d)} AS INTEGER)", f"CAST({self.expr('decimal', d)} AS INTEGER)",
            f"TRY_CAST({self.expr('text', d)} AS INTEGER)", f"CAST({self.expr('bigint', d)} AS INTEGER)",
            f"CAST(date_diff('{part}', {self.expr('date', d)}, {self.expr('date', d)}) AS INTEGER)",
            f"CAST(date_diff('{self.pick(TIME_PARTS)}', {self.expr('timestamp', d)}, {self.expr('timestamp', d)}) AS INTEGER)",
            f"CAST({self.expr('date', d)} - {self.expr('date', d)} AS INTEGER)",
            f"CAST(floor({self.expr('double', d)}) AS INTEGER)",
            *self.common("int", d),
        ])

    def gen_bigint(self, d: int) -> str:
        return self.pick([
            f"CAST({self.expr('int', d)} AS BIGINT)", f"({self.expr('bigint', d)} + {self.expr('int', d)})",
            f"CAST({self.expr('double', d)} AS BIGINT)", f"CAST({self.expr('decimal', d)} AS BIGINT)",
            *self.common("bigint", d),
        ])

    def gen_decimal(self, d: int) -> str:
        a, b = self.expr("decimal", d), self.expr("decimal", d)
        return self.pick([
            f"CAST({self.expr('double', d)} AS DECIMAL(18, {self.pick(['2', '3'])}))",
            f"CAST({self.expr('int', d)} AS DECIMAL(18, 2))", f"CAST({self.expr('decimal', d)} AS DECIMAL(18, 2))",
            f"({a} + {b})", f"({a} - {b})", f"round({a}, {self.pick(['0', '1', '2'])})",
            f"TRY_CAST({self.expr('text', d)} AS DECIMAL(18, 3))",
            *self.common("decimal", d),
        ])

    def gen_text(self, d: int) -> str:
        a, b = self.expr("text", d), self.expr("text", d)
        other = self.pick(["int", "bigint", "decimal", "date", "double", "timestamp"])
        return self.pick([
            f"lower({a})", f"upper({a})", f"trim({a})", f"replace({a}, {self.pick(['a', 'ß', ' '])!r}, 'o')",
            f"({a} || {b})", f"CAST({self.expr(other, d)} AS VARCHAR)",
            *self.common("text", d),
        ])

    def gen_date(self, d: int) -> str:
        return self.pick([
            f"CAST({self.expr('timestamp', d)} AS DATE)", f"TRY_CAST({self.expr('text', d)} AS DATE)",
            f"CAST(date_trunc('{self.pick(TRUNC_PARTS)}', {self.expr('date', d)}) AS DATE)",
            f"({self.expr('date', d)} + {self.pick(SMALL)})", f"({self.expr('date', d)} - {self.pick(SMALL)})",
            *self.common("date", d),
        ])

    def gen_timestamp(self, d: int) -> str:
        return self.pick([
            f"date_trunc('{self.pick(TIME_PARTS)}', {self.expr('timestamp', d)})",
            f"CAST({self.expr('date', d)} AS TIMESTAMP)", f"TRY_CAST({self.expr('text', d)} AS TIMESTAMP)",
            *self.common("timestamp", d),
        ])

    def gen_bool(self, d: int) -> str:
        kind = self.pick(["double", "int", "decimal", "text", "date", "timestamp"])
        a, b = self.expr(kind, d), self.expr(kind, d)
        op = self.pick(["=", "<>", "<", "<=", ">", ">="])
        return self.pick([
            f"({a} {op} {b})", f"({a} IS NULL)", f"({a} IS NOT NULL)", f"({a} IS DISTINCT FROM {b})",
            f"({a} BETWEEN {b} AND {self.expr(kind, d)})", f"({a} IN ({b}, {self.expr(kind, d)}))",
            f"(NOT {self.expr('bool', d)})", f"({self.expr('bool', d)} AND {self.expr('bool', d)})",
            f"({self.expr('bool', d)} OR {self.expr('bool', d)})",
            f"EXISTS (SELECT 1 FROM fz.t AS u WHERE u.i1 = {self.column('int')})",
        ])

    def aggregate(self) -> str:
        kind = self.pick(["double", "int", "decimal", "text", "date"])
        value = self.expr(kind, 1)
        options = [f"count({value})", f"max({value})", f"min({value})", f"count(*) FILTER (WHERE {self.expr('bool', 1)})",
                   f"bool_or({self.expr('bool', 1)})"]
        if kind in ("int", "decimal"):
            options += [f"sum({value})"]
        if kind in ("int", "double", "decimal"):
            options += [f"avg(CAST({value} AS DECIMAL(18, 3)))" if kind == "decimal" else f"avg({value})"]
        options += [f"arg_max({value}, id)", f"arg_min({value}, id)", f"mode({value} ORDER BY {value})", f"mode({value})"]
        return self.pick(options)


# --- running both engines ------------------------------------------------------------------------------


@dataclass
class Outcome:
    cases: int = 0
    refused: dict[str, str] = field(default_factory=dict)
    duckdb_errors: int = 0
    both_failed: int = 0
    differences: list[str] = field(default_factory=list)
    spark_only: list[str] = field(default_factory=list)
    """Expressions DuckDB fails on and Spark evaluates (Spark skips a branch whose value is not needed):
    the DuckDB engine builds nothing there, so there are no rows to differ."""


def comparable(value):
    """Bit patterns for doubles (NaN payloads aside), exact values otherwise; INT/BIGINT and decimal scales may widen."""
    if isinstance(value, float):
        return ("double", "NaN" if math.isnan(value) else struct.pack("<d", value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, decimal.Decimal):
        if value.as_tuple().exponent == 0:  # DuckDB's sum() of integers is a HUGEINT (DECIMAL(38, 0) in Arrow)
            return ("int", int(value))
        return ("decimal", value.normalize() if value else decimal.Decimal(0))
    return (type(value).__name__, value)


AGGREGATE_ULPS = 1
"""An aggregate DOUBLE may differ from DuckDB's by this many units in the last place: avg() of a DECIMAL
divides in extended precision on DuckDB, in DOUBLE on Spark. Every other value is bit-equal."""


def within_ulps(a, b, ulps: int) -> bool:
    if not (isinstance(a, float) and isinstance(b, float)) or math.isnan(a) or math.isnan(b) or math.isinf(a):
        return False
    return a == b or abs(a - b) <= ulps * math.ulp(max(abs(a), abs(b)))


def schema() -> dict:
    return {"fz": {"t": {"id": "INTEGER", "g": "INTEGER", **{name: kind for name, (kind, _, _) in COLUMNS.items()}}}}


def load(con: duckdb.DuckDBPyConnection, spark, folder: Path, seed: int) -> None:
    columns = ", ".join(f"{name} {kind}" for name, (kind, _, _) in COLUMNS.items())
    con.execute("CREATE SCHEMA IF NOT EXISTS fz")
    con.execute(f"CREATE OR REPLACE TABLE fz.t (id INTEGER, g INTEGER, {columns})")
    con.executemany(f"INSERT INTO fz.t VALUES ({', '.join('?' * (len(COLUMNS) + 2))})", edge_rows(seed))
    path = folder / "fz__t.parquet"
    con.execute(f"COPY fz.t TO '{path}' (FORMAT parquet)")
    spark.read.parquet(str(path)).createOrReplaceTempView("fz__t")


def _rows(table) -> list[tuple]:
    """Arrow -> rows; dates and timestamps as day and microsecond numbers (Python's datetime stops at
    year 1 and 9999, the engines do not)."""
    import pyarrow as pa

    columns = []
    for column in table.columns:
        if pa.types.is_date(column.type):
            column = column.cast(pa.int32())
        elif pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
        columns.append(column.to_pylist())
    return list(zip(*columns))


def _duckdb_columns(con, sql: str):
    try:
        return _rows(con.sql(sql).to_arrow_table())
    except duckdb.Error:
        return None


def _spark_rows(spark, sql: str):
    try:
        return _rows(spark.sql(sql).toArrow())
    except Exception:  # noqa: BLE001 - any Spark failure is "failed"
        return None


def run_batch(con, spark, expressions: list[str], grouped: bool, outcome: Outcome, checked: bool = False) -> None:
    """One query per engine for the whole batch; halves of it where Spark fails (``checked``: the
    expressions are known to compile and to run on DuckDB)."""
    tail = " FROM fz.t GROUP BY g ORDER BY g" if grouped else " FROM fz.t ORDER BY id"
    key = "g" if grouped else "id"
    live = list(expressions) if checked else []
    for expression in [] if checked else expressions:
        compiled = to_spark(f"SELECT {expression} AS v{tail}", schema=schema())
        if compiled.refusals:
            outcome.refused.setdefault(compiled.refusals[0].construct, expression)
            continue
        if _duckdb_columns(con, f"SELECT {expression} AS v{tail}") is None:
            outcome.duckdb_errors += 1
            if _spark_rows(spark, compiled.sql) is not None:
                outcome.spark_only.append(expression)
            else:
                outcome.both_failed += 1
            continue
        live.append(expression)
    outcome.cases += len(live)
    if not live:
        return
    select = ", ".join(f"{e} AS v{i}" for i, e in enumerate(live))
    sql = f"SELECT {key}, {select}{tail}"
    expected = _duckdb_columns(con, sql)
    compiled = to_spark(sql, schema=schema())
    got = _spark_rows(spark, compiled.sql)
    if got is None:
        if len(live) == 1:
            outcome.differences.append(f"Spark fails, DuckDB does not: {live[0]}")
            return
        outcome.cases -= len(live)
        half = len(live) // 2
        run_batch(con, spark, live[:half], grouped, outcome, checked=True)
        run_batch(con, spark, live[half:], grouped, outcome, checked=True)
        return
    for i, expression in enumerate(live):
        for want, have in zip(expected, got):
            if grouped and within_ulps(want[i + 1], have[i + 1], AGGREGATE_ULPS):
                continue
            if comparable(want[i + 1]) != comparable(have[i + 1]):
                outcome.differences.append(f"{expression}: row {want[0]}: DuckDB {want[i + 1]!r}, Spark {have[i + 1]!r}")
                break


def generated_functions(seed: int, count: int = 3000) -> set[str]:
    """What the generator writes (parsed back, as ``used_functions`` names them)."""
    rng = random.Random(seed)
    generator = Generator(rng)
    kinds = ["double", "int", "bigint", "decimal", "text", "date", "timestamp", "bool"]
    names = set()
    for i in range(count):
        expression = generator.aggregate() if i % 5 == 0 else generator.expr(rng.choice(kinds))
        for node in sqlglot.parse_one(f"SELECT {expression} FROM fz.t", read="duckdb").walk():
            name = node_name(node)
            if name:
                names.add(name)
    return names


def run(spark, *, seed: int, batches: int, per_batch: int, grouped_batches: int) -> Outcome:
    rng = random.Random(seed)
    generator = Generator(rng)
    outcome = Outcome()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    with tempfile.TemporaryDirectory() as folder:
        load(con, spark, Path(folder), seed)
        kinds = ["double", "int", "bigint", "decimal", "text", "date", "timestamp", "bool"]
        for _ in range(batches):
            run_batch(con, spark, [generator.expr(rng.choice(kinds)) for _ in range(per_batch)], False, outcome)
        for _ in range(grouped_batches):
            run_batch(con, spark, [generator.aggregate() for _ in range(per_batch)], True, outcome)
    con.close()
    return outcome
