"""Carry a DuckDB-dialect model to Spark SQL so that it gives the same rows, or refuse it.

Plain ``sqlglot.transpile(read="duckdb", write="spark")`` is silently wrong on some constructs
(measured here on pyspark 4.3 with ANSI mode on, DuckDB 2.0.1):

==============================  ===========================================  =====================================
DuckDB                          Spark                                        what ``to_spark`` writes
==============================  ===========================================  =====================================
``date_diff(part, a, b)``       whole units elapsed                          calendar boundaries crossed
``log(x)`` (base 10)            natural logarithm                            ``LOG10`` (0 -> -inf, < 0 -> NaN)
``dayofweek`` 0 = Sunday        1 = Sunday                                   ``(WEEKDAY(d) + 1) % 7``
``percentile_cont``             ``PERCENTILE_APPROX``                        exact ``PERCENTILE``
``list(x ORDER BY y)``          ``COLLECT_LIST`` drops order and NULLs       sorted array of (y, x) structs
``regexp_replace`` (1st match)  every match                                  first match only unless 'g'
``CAST(2.5 AS INT)`` rounds     truncates                                    ``ROUND``/``BROUND`` first
``CAST(double AS DECIMAL)``     rounds the decimal text                      DuckDB's rounded product, exactly
``date - date`` (days)          an interval                                  ``DATEDIFF``
``a / 0`` = +-inf, NaN          error (ANSI)                                 IEEE result (signed zeros too)
``floor(double)`` a DOUBLE      a BIGINT (fails on NaN, inf, > 2^63)         a DOUBLE, -0.0 kept
``arg_max(x, y)`` skips NULL x  ``MAX_BY`` returns a NULL x                  y NULL where x is NULL
``avg(decimal)`` a DOUBLE       a DECIMAL rounded to scale + 4               the exact sum over the count (1 ULP)
``date_trunc('day', date)``     ``TRUNC``: a DATE, NULL for 'DAY'            ``DATE_TRUNC``: a TIMESTAMP
``mode(x ORDER BY x)``          ``MODE(x)`` breaks ties at random            ``MODE(x, TRUE)``, the lowest
``upper``/``lower``/``trim``     full case mappings ('ß' -> 'SS'), ' ' only   DuckDB's letter-by-letter mapping
``CAST(text AS DATE/number)``   parsed differently                           refused (declare the type)
``list[i]`` out of range NULL   error (ANSI)                                 ``TRY_ELEMENT_AT``
``ASOF JOIN``                   no such join                                 interval join on ``LEAD``
``* EXCLUDE``, ``QUALIFY``      not in open-source Spark                     expanded columns, a subquery
==============================  ===========================================  =====================================

What cannot be made identical is refused (see ``REFUSED``) with the file line and the construct,
before any Spark job starts. The rewrite needs column types, so it qualifies and annotates the
model with sqlglot's optimizer against the schema of every table the model reads.

The pipeline is an explicit, ordered tuple of plain functions (``REWRITES``), one rewrite each:
``rewrite_relations`` holds those of what a query reads (variables, table functions, joins, windows, table
names), ``rewrite_values`` those of values computed differently; ``dialect_core`` what they share (the
refusals, the ``ChurnSpark`` writer, the rewrite context, type helpers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import sqlglot
from sqlglot import exp

from churnwh.spark.dialect_core import READ, REFUSED, ChurnSpark, SparkRefusal, _Context, _type
from churnwh.spark.rewrite_relations import (
    bind_variables,
    inline_named_windows,
    name_table_functions,
    qualify_and_annotate,
    refuse_constructs,
    refuse_month_series_from_late_days,
    rename_tables,
    rewrite_asof_joins,
    spell_table_functions,
)
from churnwh.spark.rewrite_values import (
    refuse_text_casts,
    retype_decimal_rounding,
    rewrite_arg_extremes,
    rewrite_date_arithmetic,
    rewrite_date_diff,
    rewrite_integer_casts,
    rewrite_list_index,
    rewrite_mode,
    rewrite_values,
)

__all__ = ["REFUSED", "REWRITES", "ChurnSpark", "Compiled", "SparkRefusal", "default_table_name", "to_spark"]


@dataclass
class Compiled:
    sql: str
    columns: dict[str, str]
    """Output column -> DuckDB type name as inferred (UNKNOWN when it cannot be)."""
    refusals: list[SparkRefusal] = field(default_factory=list)


REWRITES: tuple[Callable[[exp.Expression, "_Context"], exp.Expression], ...] = (
    bind_variables,
    refuse_constructs,
    refuse_month_series_from_late_days,
    name_table_functions,
    qualify_and_annotate,
    rewrite_asof_joins,
    inline_named_windows,
    retype_decimal_rounding,
    refuse_text_casts,
    rewrite_arg_extremes,
    rewrite_mode,
    rewrite_date_diff,
    rewrite_date_arithmetic,
    rewrite_integer_casts,
    rewrite_list_index,
    # the rewrites below write Spark SQL that the ones above must not touch again
    rewrite_values,
    spell_table_functions,
    rename_tables,
)


def default_table_name(schema: str, table: str) -> str:
    return f"{schema}__{table}"


def to_spark(
    sql: str,
    *,
    schema: dict | None = None,
    variables: dict[str, Any] | None = None,
    table_name: Callable[[str, str], str] = default_table_name,
) -> Compiled:
    """Rewrite one DuckDB SELECT into Spark SQL with identical results, or list the refusals.

    ``schema`` is ``{schema: {table: {column: duckdb type}}}`` for every table the SQL reads.
    """
    ctx = _Context(schema=schema or {}, variables=dict(variables or {}), table_name=table_name)
    tree = sqlglot.parse_one(sql, read=READ)
    for rewrite in REWRITES:
        tree = rewrite(tree, ctx)
    columns = {}
    if isinstance(tree, exp.Query):
        for select in tree.selects:
            columns[select.alias_or_name] = _type(select).sql(dialect=READ)
    return Compiled(sql=tree.sql(dialect=ChurnSpark, comments=False), columns=columns, refusals=ctx.refusals)
