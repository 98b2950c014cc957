"""Probes: one SQL construct at a time, on DuckDB and on a real local Spark session, same rows.

Each probe is DuckDB SQL over ``probe.t`` (and ``probe.events`` for ASOF joins); ``to_spark``
carries it to Spark SQL and both results are compared row by row (types may widen, values may
not differ). Refusals are checked without Spark.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from churnwh.spark.dialect import to_spark
from tests.spark_support import requires_spark, rows_differ, sort_key, spark_session, write_parquet_view

PROBE_DATA = {
    "t": """
        SELECT * FROM (VALUES
            (1, 1, 2.5::DOUBLE, 2.50::DECIMAL(10, 2), 'banana', DATE '2024-01-06', DATE '2024-01-08',
             TIMESTAMP '2024-01-01 23:59:59.900', TIMESTAMP '2024-01-02 00:00:00.100', [1, 2, 3]),
            (2, 1, -2.5::DOUBLE, -2.50::DECIMAL(10, 2), 'Apple pie', DATE '2023-12-31', DATE '2024-03-01',
             TIMESTAMP '2024-02-28 10:30:00', TIMESTAMP '2024-03-01 09:15:00', [4]),
            (3, 2, 0.5::DOUBLE, 0.50::DECIMAL(10, 2), NULL, DATE '2024-02-29', DATE '2023-02-28',
             TIMESTAMP '2023-12-31 12:00:00', TIMESTAMP '2024-01-01 11:00:00', []),
            (4, 2, 65.9695::DOUBLE, 1.55::DECIMAL(10, 2), 'aaa', DATE '2024-01-20', DATE '2024-01-08',
             TIMESTAMP '2024-01-01 00:00:00', TIMESTAMP '2024-01-01 00:00:00', NULL),
            (5, 2, NULL, NULL, 'x-y-z', NULL, DATE '2024-05-05', NULL, TIMESTAMP '2025-01-01 00:00:00', [7, 8]),
            (6, 3, 1.5::DOUBLE, 7.25::DECIMAL(10, 2), 'AaA', DATE '2024-01-07', DATE '2024-01-07',
             TIMESTAMP '2024-06-30 23:00:00', TIMESTAMP '2024-07-01 01:00:00', [9])
        ) AS v(i, k, x, m, s, a, b, t1, t2, l)
    """,
    "events": """
        SELECT * FROM (VALUES
            (1, DATE '2024-01-01', 10), (1, DATE '2024-01-05', 20), (1, DATE '2024-01-08', 30),
            (2, DATE '2024-01-02', 40), (3, DATE '2024-02-01', 50)
        ) AS v(k, day, value)
    """,
}

PROBES = {
    "date_diff parts on dates": """
        SELECT i, date_diff('day', a, b), date_diff('week', a, b), date_diff('month', a, b),
               date_diff('quarter', a, b), date_diff('year', a, b) FROM probe.t""",
    "date_diff parts on timestamps": """
        SELECT i, date_diff('second', t1, t2), date_diff('minute', t1, t2), date_diff('hour', t1, t2),
               date_diff('day', t1, t2), date_diff('millisecond', t1, t2), date_diff('month', t1, t2) FROM probe.t""",
    "date - date and date +- integer": "SELECT i, b - a, a + 30, a - 7, 3 + a FROM probe.t",
    "log is base 10": "SELECT i, log(abs(x) + 1), log(100), ln(abs(x) + 1), log(2, 8), log(0) FROM probe.t",
    "day of week": "SELECT i, dayofweek(a), isodow(a), extract(dow FROM a), extract(isodow FROM a) FROM probe.t",
    "percentile_cont is exact": """
        SELECT k, percentile_cont(0.5) WITHIN GROUP (ORDER BY x), quantile_cont(x, 0.25), median(x),
               percentile_cont(0.9) WITHIN GROUP (ORDER BY x)
        FROM probe.t GROUP BY k""",
    "percentiles over integers and empty groups": """
        SELECT k, median(i), quantile_cont(i, 0.3), quantile_cont(x, 0.75) FILTER (WHERE x > 100)
        FROM probe.t GROUP BY k""",
    "ordered list keeps order and NULLs": """
        SELECT k, list(s ORDER BY i), array_agg(x ORDER BY i DESC), list(i ORDER BY x NULLS FIRST, i)
        FROM probe.t GROUP BY k""",
    "regexp_replace first match unless g": """
        SELECT i, regexp_replace(s, 'a', 'o'), regexp_replace(s, 'a', 'o', 'g'), regexp_replace(s, 'a', 'o', 'gi'),
               regexp_replace(s, '-', '+') FROM probe.t""",
    "casts of fractions to integers round": """
        SELECT i, CAST(x AS INTEGER), CAST(m AS INTEGER), CAST(x AS BIGINT), CAST(m * 3 AS SMALLINT),
               CAST(x * 10 AS INTEGER) FROM probe.t""",
    "division by zero is IEEE": """
        SELECT i, x / 0, i / 0, (i - i) / 0, 0.0 / 0, m / 0, i / 2, m / 3 FROM probe.t""",
    "list index past the end is NULL": "SELECT i, l[1], l[2], l[5] FROM probe.t",
    "round of doubles": """
        SELECT i, round(x, 3), round(x), round(x * 100, 1), round(m, 1), round(x / 7, 4), round(-x, 2),
               round(CAST(0.125 AS DOUBLE), 2), round(CAST(2.675 AS DOUBLE), 2), round(CAST(-0.5 AS DOUBLE))
        FROM probe.t""",
    "casts of doubles to decimals round the DOUBLE product": """
        SELECT i, CAST(x AS DECIMAL(18, 3)), CAST(x / 7 AS DECIMAL(18, 2)), CAST(x * 1.99 AS DECIMAL(10, 1)),
               CAST(CAST(129.6975 AS DOUBLE) AS DECIMAL(18, 3)), CAST(CAST(-884.15 AS DOUBLE) AS DECIMAL(10, 1)),
               TRY_CAST(x * 1e20 AS DECIMAL(18, 2)), CAST(x AS DECIMAL(5, 0)), CAST(x AS DECIMAL),
               CAST(coalesce(x, 0) AS DECIMAL(18, 2)), CAST(m AS DECIMAL(18, 1))
        FROM probe.t""",
    "star exclude and qualify": """
        SELECT * EXCLUDE (l, t1, t2) FROM probe.t QUALIFY row_number() OVER (PARTITION BY k ORDER BY x DESC) = 1""",
    "asof join strict": """
        SELECT t.i, t.k, t.a, e.day, e.value
        FROM probe.t AS t ASOF LEFT JOIN probe.events AS e ON e.k = t.k AND t.a > e.day""",
    "asof join inclusive, inner": """
        SELECT t.i, e.day, e.value
        FROM probe.t AS t ASOF JOIN probe.events AS e ON t.k = e.k AND e.day <= t.b""",
    "generate_series with months": """
        SELECT CAST(generate_series AS DATE) AS d
        FROM generate_series(TIMESTAMP '2024-01-15', TIMESTAMP '2024-06-30', to_months(1))""",
    "getvariable": "SELECT i, getvariable('not_set') FROM probe.t WHERE a < getvariable('as_of') AND i <= getvariable('max_i')",
    "filter, named window, greatest skips NULLs": """
        SELECT k, count(*) FILTER (WHERE x > 0), sum(i) FILTER (WHERE s IS NOT NULL),
               max(greatest(x, 0)), max(least(x, 1.0)), bool_or(x > 2), arg_max(s, i)
        FROM probe.t GROUP BY k""",
    "window running totals": """
        SELECT i, sum(x) OVER w, lag(a) OVER w, row_number() OVER w
        FROM probe.t WINDOW w AS (PARTITION BY k ORDER BY i ROWS UNBOUNDED PRECEDING)""",
    "string functions": """
        SELECT i, lower(trim(s)), nullif(s, ''), replace(s, 'a', 'b'), s || '!', concat(s, '-', i),
               length(s), upper(s) FROM probe.t""",
    "null ordering": "SELECT i, s FROM probe.t ORDER BY s, i",
    "date_trunc and casts": """
        SELECT i, CAST(date_trunc('month', a) AS DATE), CAST(t1 AS DATE), date_trunc('day', a), date_trunc('week', a),
               CAST(date_trunc('day', CAST(t1 AS DATE)) AS DATE), TRY_CAST('2024-01-31' AS DATE)
        FROM probe.t""",
    "signed zeros, floor, arg_max skipping NULLs, avg of decimals": """
        SELECT k, arg_max(s, i), arg_min(x, i), avg(m), min(floor(x)), max(x / CAST('-0.0' AS DOUBLE)),
               min(round(x) / 0), max(round(-x * 0))
        FROM probe.t GROUP BY k""",
    "mode breaks a tie at the lowest value": """
        SELECT k, mode(s ORDER BY s), mode(i ORDER BY i) FILTER (WHERE x > 0) FROM probe.t GROUP BY k""",
    "case mappings and trim as DuckDB's": """
        SELECT i, upper(s || 'ß'), lower(s || 'İΣ'), trim(s || ' '), upper(trim(lower(s)))
        FROM probe.t""",
}

VARIABLES = {"as_of": dt.date(2024, 2, 1), "max_i": 5}


def probe_schema(con: duckdb.DuckDBPyConnection) -> dict:
    schema: dict = {"probe": {}}
    for name in PROBE_DATA:
        rows = con.execute(f"DESCRIBE probe.{name}").fetchall()
        schema["probe"][name] = {row[0]: row[1] for row in rows}
    return schema


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    spark = spark_session()
    folder = tmp_path_factory.mktemp("probes")
    con = duckdb.connect()
    con.execute("CREATE SCHEMA probe")
    for name, sql in PROBE_DATA.items():
        con.execute(f"CREATE TABLE probe.{name} AS {sql}")
        write_parquet_view(spark, con, f"SELECT * FROM probe.{name}", f"probe__{name}", folder)
    for name, value in VARIABLES.items():
        literal = f"DATE '{value}'" if isinstance(value, dt.date) else repr(value)
        con.execute(f"SET VARIABLE {name} = {literal}")
    yield con, spark, probe_schema(con)
    con.close()


@requires_spark
@pytest.mark.parametrize("name", sorted(PROBES))
def test_probe_gives_identical_rows(engines, name):
    con, spark, schema = engines
    sql = PROBES[name]
    compiled = to_spark(sql, schema=schema, variables=VARIABLES)
    assert not compiled.refusals, [str(r) for r in compiled.refusals]
    duck = con.execute(sql)
    columns = [d[0] for d in duck.description]
    expected = duck.fetchall()
    got = [tuple(row) for row in spark.sql(compiled.sql).collect()]
    if "ORDER BY s, i" not in sql:
        expected, got = sorted(expected, key=sort_key), sorted(got, key=sort_key)
    assert rows_differ(expected, got, columns) == [], compiled.sql


@pytest.mark.parametrize(
    "sql, construct",
    [
        ("SELECT hash(s) FROM probe.t", "hash"),
        ("SELECT list(s) FROM probe.t", "unordered list"),
        ("SELECT quantile_disc(x, 0.5) FROM probe.t", "percentile_disc"),
        ("SELECT date_diff('decade', a, b) FROM probe.t", "date_diff part"),
        ("SELECT regexp_replace(s, '(a)', '\\1') FROM probe.t", "regexp_replace"),
        ("SELECT regexp_replace(s, 'a', 'b', 'm') FROM probe.t", "regexp_replace"),
        ("SELECT random() FROM probe.t", "random"),
        ("SELECT getvariable(s) FROM probe.t", "unknown variable"),
        ("SELECT t.i FROM probe.t AS t ASOF JOIN probe.events AS e ON t.k <> e.k AND t.a > e.day", "asof join"),
        ("SELECT * FROM probe.t USING SAMPLE 10%", "sample"),
        ("SELECT round(x, -1) FROM probe.t", "unsupported function"),
        ("SELECT CAST(x AS DECIMAL(38, 3)) FROM probe.t", "decimal cast"),
        ("SELECT TRY_CAST(s AS DATE) FROM probe.t", "text cast"),
        ("SELECT mode(s) FROM probe.t", "mode"),
        ("SELECT CAST(replace(s, 'a', '1') AS INTEGER) FROM probe.t", "text cast"),
        ("SELECT CAST(x AS VARCHAR) FROM probe.t", "text cast"),
        ("SELECT CAST(CAST(x AS FLOAT) AS DECIMAL(18, 3)) FROM probe.t", "decimal cast"),
        ("SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY x DESC) FROM probe.t", "percentile_disc"),
        ("SELECT * FROM generate_series(TIMESTAMP '2024-01-31', TIMESTAMP '2024-06-30', to_months(1))", "table function"),
    ],
)
def test_refused_constructs_name_the_construct_and_line(sql, construct):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA probe")
    for name, data in PROBE_DATA.items():
        con.execute(f"CREATE TABLE probe.{name} AS {data}")
    compiled = to_spark("\n" + sql, schema=probe_schema(con), variables=VARIABLES)
    assert [r.construct for r in compiled.refusals][:1] == [construct]
    assert compiled.refusals[0].line == 2
    assert compiled.refusals[0].detail


def test_lint_and_engine_options_have_help_with_an_example(tmp_path):
    from tests.helpers import churnwh

    lint = churnwh(tmp_path, "lint", "--help")
    assert lint.returncode == 0 and "Example: churnwh lint --engine spark" in lint.stdout
    build = churnwh(tmp_path, "build", "--help")
    assert "--engine" in build.stdout and "--master" in build.stdout


def test_an_unset_variables_alternative_never_reaches_spark():
    """A restatement's key list is unset on Spark (it builds in full): ``NULL IS NULL OR x IN (SELECT
    unnest(NULL))`` would not even type-check there, so the rewrite keeps only the TRUE branch."""
    sql = ("SELECT customer_pseudonym FROM features.observation_spine WHERE observation_date >= DATE '2024-01-01' "
           "AND (getvariable('incremental_keys') IS NULL "
           "OR customer_pseudonym IN (SELECT unnest(getvariable('incremental_keys'))))")
    schema = {"features": {"observation_spine": {"customer_pseudonym": "VARCHAR", "observation_date": "DATE"}}}
    compiled = to_spark(sql, schema=schema, variables={})
    assert compiled.refusals == [] and "EXPLODE" not in compiled.sql.upper() and "(TRUE)" in compiled.sql
    bound = to_spark(sql.replace("getvariable('incremental_keys') IS NULL", "getvariable('k') IS NULL"),
                     schema=schema, variables={"k": 1})
    assert "EXPLODE" in bound.sql.upper()  # the control: a set variable keeps both branches
