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
``date - date`` (days)          an interval                                  ``DATEDIFF``
``a / 0`` = +-inf, NaN          error (ANSI)                                 IEEE result
``list[i]`` out of range NULL   error (ANSI)                                 ``TRY_ELEMENT_AT``
``ASOF JOIN``                   no such join                                 interval join on ``LEAD``
``* EXCLUDE``, ``QUALIFY``      not in open-source Spark                     expanded columns, a subquery
==============================  ===========================================  =====================================

What cannot be made identical is refused (see ``REFUSED``) with the file line and the construct,
before any Spark job starts. The rewrite needs column types, so it qualifies and annotates the
model with sqlglot's optimizer against the schema of every table the model reads.

The pipeline is an explicit, ordered tuple of plain functions (``REWRITES``), one rewrite each.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

READ = "duckdb"

REFUSED = {
    "hash": "DuckDB's hash() and Spark's murmur3 hash() give different numbers; use md5() or sha256()",
    "unordered list": "list()/array_agg() without ORDER BY has no defined element order on either engine; "
    "add ORDER BY inside the call",
    "percentile_disc": "discrete percentiles are computed differently; use percentile_cont/quantile_cont",
    "date_diff part": "only year, quarter, month, week, day, hour, minute, second and millisecond are carried",
    "regexp_replace": "only literal patterns and replacements without backslashes or '$', with flags g and i, "
    "are carried (RE2 and Java regular expressions differ)",
    "list index": "only positive literal list indexes are carried",
    "cast of unknown type": "a cast to an integer of a column whose type cannot be inferred "
    "(DuckDB rounds fractions, Spark truncates): cast it to DOUBLE or DECIMAL first",
    "date arithmetic of unknown type": "a - b where one side's type cannot be inferred: DuckDB subtracts "
    "dates into days, Spark into an interval; cast both sides",
    "asof join": "an ASOF join needs equality conditions and exactly one >, >=, < or <= between the two sides",
    "table function": "only generate_series/range with a named alias or the default column are carried",
    "unknown variable": "getvariable() needs a literal variable name",
    "sample": "TABLESAMPLE/USING SAMPLE draws different rows on each engine",
    "random": "random()/uuid() differ on each engine and each run",
    "unsupported function": "this DuckDB function has no equivalent with identical results on Spark",
}
_UNSUPPORTED_FUNCTIONS = {
    "hash": "hash",
    "random": "random",
    "uuid": "random",
    "gen_random_uuid": "random",
    "setseed": "random",
    "quantile_disc": "percentile_disc",
    "list_sort": "unsupported function",
    "strftime": "unsupported function",
    "strptime": "unsupported function",
    "epoch_ms": "unsupported function",
    "to_months": None,  # handled by the table-function rewrite
}


class SparkRefusal(Exception):
    """A construct that would not give identical results on Spark."""

    def __init__(self, construct: str, node: exp.Expression | None = None, detail: str = ""):
        self.construct = construct
        self.line = _line_of(node) if node is not None else None
        self.text = _snippet(node) if node is not None else ""
        self.detail = detail or REFUSED.get(construct, "")
        super().__init__(f"{construct}: {self.detail}")


@dataclass
class Compiled:
    sql: str
    columns: dict[str, str]
    """Output column -> DuckDB type name as inferred (UNKNOWN when it cannot be)."""
    refusals: list[SparkRefusal] = field(default_factory=list)


class ChurnSpark(Spark):
    """sqlglot's Spark dialect with the context-free fixes of this module."""

    class Generator(Spark.Generator):
        TRANSFORMS = {
            **Spark.Generator.TRANSFORMS,
            exp.DayOfWeek: lambda self, e: f"((WEEKDAY({self.sql(e, 'this')}) + 1) % 7)",
            exp.DayOfWeekIso: lambda self, e: f"(WEEKDAY({self.sql(e, 'this')}) + 1)",
            exp.Median: lambda self, e: f"PERCENTILE({self.sql(e, 'this')}, 0.5)",
        }

        def log_sql(self, expression: exp.Log) -> str:
            if expression.expression:
                return self.func("LOG", expression.this, expression.expression)
            value = self.sql(expression, "this")
            return (
                f"CASE WHEN {value} > 0 THEN LOG10({value}) WHEN {value} = 0 THEN CAST('-Infinity' AS DOUBLE) "
                f"WHEN {value} < 0 THEN CAST('NaN' AS DOUBLE) END"
            )

        def extract_sql(self, expression: exp.Extract) -> str:
            part = expression.this.name.upper()
            value = self.sql(expression, "expression")
            if part in ("DOW", "DAYOFWEEK"):
                return f"((WEEKDAY({value}) + 1) % 7)"
            if part in ("ISODOW",):
                return f"(WEEKDAY({value}) + 1)"
            return super().extract_sql(expression)

        def percentilecont_sql(self, expression: exp.PercentileCont) -> str:
            return self.func("PERCENTILE", expression.this, expression.expression)

        def withingroup_sql(self, expression: exp.WithinGroup) -> str:
            inner = expression.this
            if isinstance(inner, exp.PercentileCont):
                ordered = expression.expression.expressions[0]
                fraction = inner.this
                if ordered.args.get("desc"):
                    fraction = exp.Sub(this=exp.Literal.number(1), expression=fraction.copy())
                return self.func("PERCENTILE", ordered.this, fraction)
            return super().withingroup_sql(expression)

        def cte_sql(self, expression: exp.CTE) -> str:
            expression = expression.copy()
            expression.set("materialized", None)
            return super().cte_sql(expression)


# --- helpers -------------------------------------------------------------------------------------


def _snippet(node: exp.Expression) -> str:
    try:
        text = node.sql(dialect=READ, comments=False)
    except Exception:  # noqa: BLE001 - a snippet is only a hint
        text = node.key.upper()
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _line_of(node: exp.Expression | None) -> int | None:
    if node is None:
        return None
    for candidate in node.walk():
        line = candidate.meta.get("line") if hasattr(candidate, "meta") else None
        if line:
            return int(line)
    return None


def _type(node: exp.Expression) -> exp.DataType:
    return node.type or exp.DataType.build("unknown")


_FRACTIONAL = {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT, exp.DataType.Type.DECIMAL}
_DATES = {exp.DataType.Type.DATE, exp.DataType.Type.DATE32}
_INTEGERS = set(exp.DataType.INTEGER_TYPES)


def _bottom_up(*kinds, tree: exp.Expression) -> list:
    """Matching nodes, every node after its descendants (a rewrite then sees rewritten children)."""
    return list(reversed(list(tree.find_all(*kinds, bfs=False))))


def _is(node: exp.Expression, kinds: set) -> bool:
    return _type(node).this in kinds


def _unknown(node: exp.Expression) -> bool:
    return _type(node).this in (exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL)


def _as_double(node: exp.Expression) -> exp.Expression:
    if _type(node).this == exp.DataType.Type.DOUBLE:
        return node
    return exp.Cast(this=node, to=exp.DataType.build("double"))


def _replace(node: exp.Expression, new: exp.Expression) -> exp.Expression:
    new.meta["churnwh_rewritten"] = True
    new.type = node.type
    node.replace(new)
    return new


# --- rewrites, in order ---------------------------------------------------------------------------


def bind_variables(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``getvariable('name')`` -> the literal value from ``[vars]`` (DuckDB variables do not exist in Spark)."""
    for node in list(tree.find_all(exp.Anonymous, exp.Func)):
        name = node.name.lower() if isinstance(node, exp.Anonymous) else ""
        if name != "getvariable":
            continue
        argument = node.expressions[0] if node.expressions else None
        if not isinstance(argument, exp.Literal) or not argument.is_string:
            ctx.refuse("unknown variable", node)
            continue
        # DuckDB: getvariable() of a variable that is not set is NULL
        node.replace(_literal(ctx.variables[argument.this]) if argument.this in ctx.variables else exp.Null())
    return tree


def _literal(value: Any) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        return exp.Cast(this=exp.Literal.string(repr(value)), to=exp.DataType.build("double"))
    if isinstance(value, dt.datetime):
        return exp.Cast(this=exp.Literal.string(value.isoformat(sep=" ")), to=exp.DataType.build("timestamp"))
    if isinstance(value, dt.date):
        return exp.Cast(this=exp.Literal.string(value.isoformat()), to=exp.DataType.build("date"))
    return exp.Literal.string(str(value))


def refuse_constructs(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """Constructs that cannot be made identical, whatever the types."""
    for node in tree.walk():
        if isinstance(node, exp.Anonymous):
            construct = _UNSUPPORTED_FUNCTIONS.get(node.name.lower())
            if construct:
                ctx.refuse(construct, node, f"{node.name}(): {REFUSED[construct]}")
        elif isinstance(node, (exp.Rand, exp.Uuid)):
            ctx.refuse("random", node)
        elif isinstance(node, exp.PercentileDisc):
            ctx.refuse("percentile_disc", node)
        elif isinstance(node, exp.TableSample):
            ctx.refuse("sample", node)
        elif isinstance(node, exp.ArrayAgg) and not isinstance(node.this, exp.Order):
            ctx.refuse("unordered list", node)
        elif isinstance(node, exp.Join) and str(node.args.get("method") or "").upper() == "POSITIONAL":
            ctx.refuse("unsupported function", node, "POSITIONAL JOIN has no Spark equivalent")
    return tree


def qualify_and_annotate(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """Expand stars (``* EXCLUDE`` included), qualify columns and infer every expression's type."""
    tree = qualify(
        tree,
        schema=ctx.schema,
        dialect=READ,
        validate_qualify_columns=False,
        quote_identifiers=False,
        identify=False,
    )
    return annotate_types(tree, schema=ctx.schema, dialect=READ)


_DATE_PARTS = {
    "YEAR": "year",
    "YEARS": "year",
    "QUARTER": "quarter",
    "MONTH": "month",
    "MONTHS": "month",
    "WEEK": "week",
    "WEEKS": "week",
    "DAY": "day",
    "DAYS": "day",
    "HOUR": "hour",
    "HOURS": "hour",
    "MINUTE": "minute",
    "MINUTES": "minute",
    "SECOND": "second",
    "SECONDS": "second",
    "MILLISECOND": "millisecond",
    "MILLISECONDS": "millisecond",
}


def rewrite_date_diff(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """DuckDB counts calendar boundaries crossed (``week``: whole weeks); write that in Spark SQL."""
    for node in _bottom_up(exp.DateDiff, tree=tree):
        unit = (node.unit.name if node.unit is not None else "DAY").upper()
        part = _DATE_PARTS.get(unit)
        if part is None:
            ctx.refuse("date_diff part", node, f"date_diff('{unit.lower()}', ...): {REFUSED['date_diff part']}")
            continue
        end, start = node.this.sql(dialect=ChurnSpark), node.expression.sql(dialect=ChurnSpark)
        if part == "year":
            sql = f"(YEAR({end}) - YEAR({start}))"
        elif part == "quarter":
            sql = f"((YEAR({end}) - YEAR({start})) * 4 + QUARTER({end}) - QUARTER({start}))"
        elif part == "month":
            sql = f"((YEAR({end}) - YEAR({start})) * 12 + MONTH({end}) - MONTH({start}))"
        elif part == "day":
            sql = f"DATEDIFF(CAST({end} AS DATE), CAST({start} AS DATE))"
        elif part == "week":
            sql = f"(DATEDIFF(CAST({end} AS DATE), CAST({start} AS DATE)) DIV 7)"
        else:
            trunc = {"hour": "HOUR", "minute": "MINUTE", "second": "SECOND", "millisecond": "MILLISECOND"}[part]
            unit_micros = {"hour": 3_600_000_000, "minute": 60_000_000, "second": 1_000_000, "millisecond": 1_000}[part]
            sql = (
                f"((UNIX_MICROS(CAST(DATE_TRUNC('{trunc}', {end}) AS TIMESTAMP)) "
                f"- UNIX_MICROS(CAST(DATE_TRUNC('{trunc}', {start}) AS TIMESTAMP))) DIV {unit_micros})"
            )
        new = exp.Cast(this=sqlglot.parse_one(sql, read=ChurnSpark), to=exp.DataType.build("bigint"))
        _replace(node, new).type = exp.DataType.build("bigint")
    return tree


def rewrite_date_arithmetic(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``date - date`` -> DATEDIFF (days); ``date +- integer`` -> DATE_ADD / DATE_SUB."""
    for node in _bottom_up(exp.Sub, exp.Add, tree=tree):
        left, right = node.left, node.right
        if _is(left, _DATES) and _is(right, _DATES) and isinstance(node, exp.Sub):
            new = exp.Cast(
                this=exp.Anonymous(this="DATEDIFF", expressions=[left.copy(), right.copy()]),
                to=exp.DataType.build("bigint"),
            )
            _replace(node, new).type = exp.DataType.build("bigint")
        elif _is(left, _DATES) and _is(right, _INTEGERS):
            name = "DATE_ADD" if isinstance(node, exp.Add) else "DATE_SUB"
            _replace(node, exp.Anonymous(this=name, expressions=[left.copy(), right.copy()])).type = (
                exp.DataType.build("date")
            )
        elif isinstance(node, exp.Add) and _is(right, _DATES) and _is(left, _INTEGERS):
            _replace(node, exp.Anonymous(this="DATE_ADD", expressions=[right.copy(), left.copy()])).type = (
                exp.DataType.build("date")
            )
        elif isinstance(node, exp.Sub) and (
            (_is(left, _DATES) and _unknown(right)) or (_unknown(left) and _is(right, _DATES))
        ):
            ctx.refuse("date arithmetic of unknown type", node)
    return tree


def rewrite_division(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``a / b`` is a DOUBLE division in DuckDB, +-inf or NaN when b = 0; Spark (ANSI) raises."""
    for node in _bottom_up(exp.Div, tree=tree):
        left, right = _as_double(node.left.copy()), _as_double(node.right.copy())
        sql = (
            f"CASE WHEN {right.sql(dialect=ChurnSpark)} = 0 THEN {left.sql(dialect=ChurnSpark)} * "
            f"CAST('Infinity' AS DOUBLE) ELSE TRY_DIVIDE({left.sql(dialect=ChurnSpark)}, "
            f"{right.sql(dialect=ChurnSpark)}) END"
        )
        _replace(node, exp.Paren(this=sqlglot.parse_one(sql, read=ChurnSpark))).type = exp.DataType.build("double")
    return tree


def rewrite_integer_casts(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """DuckDB rounds when casting a fraction to an integer (DECIMAL half away from zero, DOUBLE half
    to even); Spark truncates. ROUND / BROUND first."""
    integer_series = {
        table.alias_or_name
        for table in tree.find_all(exp.Table)
        if isinstance(table.this, exp.GenerateSeries) and _is(table.this.args["start"], _INTEGERS)
    }
    for node in _bottom_up(exp.Cast, tree=tree):
        if node.to.this not in _INTEGERS or node.meta.get("churnwh_rewritten"):
            continue
        source = node.this
        if isinstance(source, exp.Null) or (isinstance(source, exp.Column) and source.table in integer_series):
            continue
        kind = _type(source).this
        if kind == exp.DataType.Type.DECIMAL:
            source.replace(exp.Anonymous(this="ROUND", expressions=[source.copy(), exp.Literal.number(0)]))
        elif kind in (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT):
            source.replace(exp.Anonymous(this="BROUND", expressions=[source.copy(), exp.Literal.number(0)]))
        elif kind in (exp.DataType.Type.UNKNOWN,) and not isinstance(source, exp.Literal):
            ctx.refuse("cast of unknown type", node)
    return tree


def _split(value: float) -> tuple[float, float]:
    """Veltkamp split: value = high + low, each with at most 26 significant bits."""
    scaled = 134217729.0 * value
    high = scaled - (scaled - value)
    return high, value - high


def _double(value: float) -> str:
    return f"CAST('{value!r}' AS DOUBLE)"


def rewrite_round(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """DuckDB rounds a DOUBLE half away from zero on its exact binary value (65.9695, stored as
    65.96949999..., -> 65.969); Spark rounds its shortest decimal text (-> 65.970). Written out:
    p = |x| * 10^n, its fraction decides, and an exact tie in p is settled by the rounding error of
    the product (Dekker's two-product), so the result is DuckDB's to the last bit."""
    for node in _bottom_up(exp.Round, tree=tree):
        if _type(node.this).this not in (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT):
            continue
        digits = node.args.get("decimals")
        if digits is not None and not (isinstance(digits, exp.Literal) and not digits.is_string):
            ctx.refuse("unsupported function", node, "round() of a DOUBLE to a negative or non-literal number of "
                       "digits: cast the value to DECIMAL first")
            continue
        n = int(digits.this) if digits is not None else 0
        if n > 22:
            ctx.refuse("unsupported function", node, "round() of a DOUBLE to more than 22 digits")
            continue
        scale = float(10**n)
        high, low = _split(scale)
        value = node.this.sql(dialect=ChurnSpark)
        error = (
            "TRANSFORM(ARRAY(CAST(134217729 AS DOUBLE) * __a), __c -> TRANSFORM(ARRAY(__c - (__c - __a)), __h -> "
            f"((__h * {_double(high)} - __p) + __h * {_double(low)} + (__a - __h) * {_double(high)}) "
            f"+ (__a - __h) * {_double(low)})[0])[0]"
        )
        whole = "(__p - (__p % CAST(1 AS DOUBLE)))"
        up = (
            f"CASE WHEN __p - {whole} > 0.5 THEN 1 WHEN __p - {whole} < 0.5 THEN 0 "
            f"WHEN {error} >= 0 THEN 1 ELSE 0 END"
        )
        sql = (
            f"TRANSFORM(ARRAY(CAST({value} AS DOUBLE)), __x -> CASE WHEN __x IS NULL OR ISNAN(__x) "
            f"OR ABS(__x) = CAST('Infinity' AS DOUBLE) THEN __x ELSE SIGNUM(__x) * "
            f"TRANSFORM(ARRAY(ABS(__x)), __a -> TRANSFORM(ARRAY(__a * {_double(scale)}), __p -> "
            f"({whole} + {up}) / {_double(scale)})[0])[0] END)[0]"
        )
        _replace(node, sqlglot.parse_one(sql, read=ChurnSpark)).type = exp.DataType.build("double")
    return tree


def rewrite_percentiles(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``percentile_cont``/``quantile_cont``/``median``: Spark's PERCENTILE interpolates as
    lo + (hi - lo) * d, DuckDB as lo * (1 - d) + hi * d, which differ in the last bits. Written out
    over the sorted non-NULL values, as DuckDB computes it."""
    for node in _bottom_up(exp.WithinGroup, exp.PercentileCont, exp.Median, tree=tree):
        if node.parent is None:
            continue
        if isinstance(node, exp.WithinGroup):
            if not isinstance(node.this, exp.PercentileCont):
                continue
            ordered = node.expression.expressions[0]
            if ordered.args.get("desc"):
                ctx.refuse("percentile_disc", node, "percentile_cont(p) WITHIN GROUP (ORDER BY x DESC): write "
                           "percentile_cont(1 - p) WITHIN GROUP (ORDER BY x)")
                continue
            value, fraction = ordered.this, node.this.this
        elif isinstance(node, exp.PercentileCont):
            if isinstance(node.parent, exp.WithinGroup) or node.expression is None:
                continue
            value, fraction = node.this, node.expression
        else:
            value, fraction = node.this, exp.Literal.number("0.5")
        if isinstance(node.parent, exp.Window):
            ctx.refuse("percentile_disc", node, "a percentile over a window: compute it in a GROUP BY and join")
            continue
        if _type(value).this not in {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT} | _INTEGERS:
            ctx.refuse("percentile_disc", node, f"a percentile of a {_type(value).sql()} column: cast it to DOUBLE")
            continue
        if not (isinstance(fraction, exp.Literal) and not fraction.is_string):
            ctx.refuse("percentile_disc", node, "a percentile needs a literal fraction")
            continue
        x = value.sql(dialect=ChurnSpark)
        target = node
        if isinstance(node.parent, exp.Filter):  # agg(...) FILTER (WHERE c): NULLs are skipped anyway
            target = node.parent
            condition = target.expression.this.sql(dialect=ChurnSpark)
            x = f"CASE WHEN {condition} THEN {x} END"
        q = _double(float(fraction.this))
        lo, hi = "__s[CAST(FLOOR(__rn) AS INT)]", "__s[CAST(CEIL(__rn) AS INT)]"
        sql = (
            f"TRANSFORM(ARRAY(ARRAY_SORT(COLLECT_LIST(CAST({x} AS DOUBLE)))), __s -> CASE WHEN SIZE(__s) = 0 THEN "
            f"CAST(NULL AS DOUBLE) ELSE TRANSFORM(ARRAY(CAST(SIZE(__s) - 1 AS DOUBLE) * {q}), __rn -> "
            f"CASE WHEN FLOOR(__rn) = CEIL(__rn) THEN {lo} ELSE {lo} * (1 - (__rn - FLOOR(__rn))) "
            f"+ {hi} * (__rn - FLOOR(__rn)) END)[0] END)[0]"
        )
        _replace(target, sqlglot.parse_one(sql, read=ChurnSpark)).type = exp.DataType.build("double")
    return tree


_FRAMELESS = (exp.Lag, exp.Lead, exp.RowNumber, exp.Rank, exp.DenseRank, exp.Ntile, exp.PercentRank, exp.CumeDist)


def inline_named_windows(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """DuckDB ignores a frame on lag/lead/rank functions; Spark refuses one. Named windows whose
    frame would reach such a function are written out in place, without the frame."""
    for select in tree.find_all(exp.Select):
        named = {w.this.name: w for w in select.args.get("windows") or []}
        if not named:
            continue
        for window in select.find_all(exp.Window):
            alias = window.args.get("alias")
            if window.parent is select and window in (select.args.get("windows") or []):
                continue
            if not isinstance(window.this, _FRAMELESS) or alias is None or alias.name not in named:
                continue
            definition = named[alias.name]
            window.set("alias", None)
            window.set("partition_by", [p.copy() for p in definition.args.get("partition_by") or []])
            if definition.args.get("order") is not None:
                window.set("order", definition.args["order"].copy())
    return tree


def refuse_month_series_from_late_days(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """generate_series(start, stop, to_months(n)): DuckDB adds the months one step after another
    (Jan 31, Feb 29, Mar 29), Spark from the start (Jan 31, Feb 29, Mar 31). Identical only when the
    start is a month start (date_trunc('month', ...) [+ INTERVAL n MONTH]) or a literal day <= 28."""
    for series in tree.find_all(exp.GenerateSeries):
        step = series.args.get("step")
        monthly = step is not None and (
            (isinstance(step, exp.Anonymous) and step.name.lower() == "to_months")
            or (isinstance(step, exp.Interval) and step.unit is not None and "MONTH" in step.unit.name.upper())
            or (isinstance(step, exp.Interval) and step.unit is not None and "YEAR" in step.unit.name.upper())
        )
        if monthly and not _month_start(series.args.get("start")):
            ctx.refuse(
                "table function",
                series,
                "generate_series with a month step must start on a month start (date_trunc('month', ...) or a "
                "literal day <= 28): DuckDB adds months step by step, Spark from the start",
            )
    return tree


def _month_start(node: exp.Expression | None) -> bool:
    while isinstance(node, (exp.Cast, exp.TryCast, exp.Paren)):
        node = node.this
    if isinstance(node, exp.Add) and isinstance(node.expression, exp.Interval):
        unit = node.expression.unit.name.upper() if node.expression.unit is not None else ""
        return ("MONTH" in unit or "YEAR" in unit) and _month_start(node.this)
    if isinstance(node, (exp.DateTrunc, exp.TimestampTrunc)):
        unit = node.args.get("unit")
        return unit is not None and unit.name.upper() in ("MONTH", "QUARTER", "YEAR")
    if isinstance(node, exp.Literal) and node.is_string:
        try:
            return dt.date.fromisoformat(node.this[:10]).day <= 28
        except ValueError:
            return False
    return False


def rewrite_ordered_lists(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``list(x ORDER BY y)``: keep the order and the NULLs (COLLECT_LIST keeps neither)."""
    for node in _bottom_up(exp.ArrayAgg, tree=tree):
        order = node.this
        if not isinstance(order, exp.Order):
            continue
        keys = order.expressions
        fields = ", ".join(f"{k.this.sql(dialect=ChurnSpark)} AS k{i}" for i, k in enumerate(keys))
        value = order.this.sql(dialect=ChurnSpark)
        compare = []
        for i, key in enumerate(keys):
            desc = bool(key.args.get("desc"))
            nulls_first = bool(key.args.get("nulls_first"))
            lt, gt = ("1", "-1") if desc else ("-1", "1")
            nl, nr = ("-1", "1") if nulls_first else ("1", "-1")
            compare.append(
                f"WHEN l.k{i} IS NULL AND r.k{i} IS NULL THEN NULL WHEN l.k{i} IS NULL THEN {nl} "
                f"WHEN r.k{i} IS NULL THEN {nr} WHEN l.k{i} < r.k{i} THEN {lt} WHEN l.k{i} > r.k{i} THEN {gt}"
            )
        # a NULL result means "equal on this key": fall through to the next key
        comparator = "0"
        for clause in reversed(compare):
            comparator = f"COALESCE(CASE {clause} ELSE NULL END, {comparator})"
        sql = (
            f"TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT({fields}, {value} AS v)), (l, r) -> {comparator}), e -> e.v)"
        )
        _replace(node, sqlglot.parse_one(sql, read=ChurnSpark))
    return tree


def rewrite_regexp_replace(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """DuckDB replaces the first match unless the flags hold 'g'; Spark replaces every match."""
    for node in _bottom_up(exp.RegexpReplace, tree=tree):
        pattern, replacement = node.expression, node.args.get("replacement")
        modifiers = node.args.get("modifiers")
        literal = all(isinstance(x, exp.Literal) and x.is_string for x in (pattern, replacement))
        flags = modifiers.this if isinstance(modifiers, exp.Literal) else ("" if modifiers is None else None)
        if not literal or flags is None or set(flags) - {"g", "i"}:
            ctx.refuse("regexp_replace", node)
            continue
        if "\\" in replacement.this or "$" in replacement.this:
            ctx.refuse("regexp_replace", node)
            continue
        prefix = "(?i)" if "i" in flags else ""
        subject = node.this.sql(dialect=ChurnSpark)
        if "g" in flags:
            sql = f"REGEXP_REPLACE({subject}, {exp.Literal.string(prefix + pattern.this).sql()}, {replacement.sql()})"
        else:
            first = prefix + "^(?s)(.*?)(?:" + pattern.this + ")"
            sql = f"REGEXP_REPLACE({subject}, {exp.Literal.string(first).sql()}, {exp.Literal.string('$1' + replacement.this).sql()})"
        _replace(node, sqlglot.parse_one(sql, read=ChurnSpark))
    return tree


def rewrite_list_index(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """An index past the end is NULL in DuckDB and an error in Spark (ANSI): TRY_ELEMENT_AT."""
    for node in _bottom_up(exp.Bracket, tree=tree):
        index = node.expressions[0] if len(node.expressions) == 1 else None
        if not isinstance(index, exp.Literal) or index.is_string or int(index.this) < 0:
            ctx.refuse("list index", node)
            continue
        position = int(index.this) + 1 - int(node.args.get("offset") or 0)
        _replace(node, exp.Anonymous(this="TRY_ELEMENT_AT", expressions=[node.this.copy(), exp.Literal.number(position)]))
    return tree


def rewrite_asof_joins(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``A ASOF [LEFT] JOIN B ON A.k = B.k AND A.t > B.t`` -> an interval join: B's row whose ``t`` is
    the last one before ``A.t`` is the one whose next ``t`` (LEAD) is not before ``A.t``."""
    for join in list(tree.find_all(exp.Join)):
        if str(join.args.get("method") or "").upper() != "ASOF":
            continue
        right = join.this
        alias = right.alias_or_name
        conjuncts = list(join.args["on"].flatten()) if isinstance(join.args.get("on"), exp.And) else [join.args.get("on")]
        equal_keys, inequality = [], None
        for condition in conjuncts:
            if isinstance(condition, exp.EQ):
                sides = _split_sides(condition, alias)
                if sides is None:
                    break
                equal_keys.append(sides[1])
            elif isinstance(condition, (exp.GT, exp.GTE, exp.LT, exp.LTE)) and inequality is None:
                inequality = condition
            else:
                inequality = None
                break
        else:
            if inequality is not None and _split_sides(inequality, alias) is not None:
                _asof_to_interval(join, right, alias, equal_keys, inequality)
                continue
        ctx.refuse("asof join", join)
    return tree


def _split_sides(condition: exp.Binary, alias: str) -> tuple[exp.Expression, exp.Expression] | None:
    """(left-side expression, right-side column) of a comparison, or None."""
    def on_right(node):
        tables = {column.table for column in node.find_all(exp.Column)}
        return tables == {alias}

    def on_left(node):
        return alias not in {column.table for column in node.find_all(exp.Column)}

    if on_right(condition.right) and on_left(condition.left):
        return condition.left, condition.right
    if on_right(condition.left) and on_left(condition.right):
        return condition.right, condition.left
    return None


def _asof_to_interval(join: exp.Join, right: exp.Expression, alias: str, keys, inequality: exp.Binary) -> None:
    left_expr, right_col = _split_sides(inequality, alias)
    # normalise to: left_expr OP right_col
    op = type(inequality)
    if inequality.left is not left_expr:
        op = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE}[op]
    before = op in (exp.GT, exp.GTE)  # B's row at or before A's value: the latest one
    partition = ", ".join(exp.column(k.name).sql(dialect=ChurnSpark) for k in keys)
    column = exp.column(right_col.name).sql(dialect=ChurnSpark)
    neighbour = "LEAD" if before else "LAG"
    order = "ASC NULLS FIRST" if before else "DESC NULLS FIRST"
    source = right.copy()
    source.set("alias", None)
    over = f"PARTITION BY {partition} ORDER BY {column} {order}" if partition else f"ORDER BY {column} {order}"
    inner = sqlglot.parse_one(
        f"SELECT *, {neighbour}({column}) OVER ({over}) AS __asof_next FROM x", read=ChurnSpark
    )
    inner.args["from_"].set("this", source) if "from_" in inner.args else inner.args["from"].set("this", source)
    subquery = exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias)))
    join.set("this", subquery)
    join.set("method", None)
    if not join.args.get("side"):
        join.set("kind", "INNER")
    lhs = left_expr.sql(dialect=ChurnSpark)
    rcol = f"{alias}.{column}"
    nxt = f"{alias}.__asof_next"
    strict = op in (exp.GT, exp.LT)
    if before:
        match = f"{rcol} < {lhs}" if strict else f"{rcol} <= {lhs}"
        next_out = f"{nxt} >= {lhs}" if strict else f"{nxt} > {lhs}"
    else:
        match = f"{rcol} > {lhs}" if strict else f"{rcol} >= {lhs}"
        next_out = f"{nxt} <= {lhs}" if strict else f"{nxt} < {lhs}"
    equalities = [c.sql(dialect=ChurnSpark) for c in (join.args["on"].flatten() if isinstance(join.args["on"], exp.And) else [join.args["on"]]) if isinstance(c, exp.EQ)]
    condition = " AND ".join(equalities + [match, f"({nxt} IS NULL OR {next_out})"])
    join.set("on", sqlglot.parse_one(condition, read=ChurnSpark))


def spell_table_functions(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``generate_series(a, b, step) AS t(c)`` -> ``(SELECT EXPLODE(SEQUENCE(a, b, step)) AS c) AS t``."""
    for table in list(tree.find_all(exp.Table)):
        function = table.this
        if not isinstance(function, exp.GenerateSeries):
            continue
        alias = table.args.get("alias")
        table_alias = alias.name if alias is not None and alias.name else "generate_series"
        column = alias.columns[0].name if alias is not None and alias.columns else "generate_series"
        parts = [function.args.get(k) for k in ("start", "end", "step") if function.args.get(k) is not None]
        step = function.args.get("step")
        if step is not None and (isinstance(step, exp.Neg) or (isinstance(step, exp.Interval) and "-" in step.sql())):
            ctx.refuse("table function", table, "generate_series/range with a negative step")
            continue
        texts = []
        for part in parts[:2]:
            text = part.sql(dialect=ChurnSpark)
            if _is(part, _DATES):  # DuckDB counts dates as timestamps here
                text = f"CAST({text} AS TIMESTAMP_NTZ)"
            texts.append(text)
        start, end = texts
        rest = [part.sql(dialect=ChurnSpark) for part in parts[2:]]
        sequence = f"SEQUENCE({', '.join([start, end, *rest])})"
        if function.args.get("is_end_exclusive"):
            # Spark's SEQUENCE includes its end and fails when start > end; DuckDB's range() is empty
            sequence = f"CASE WHEN {start} < {end} THEN FILTER({sequence}, __v -> __v < {end}) ELSE ARRAY() END"
        else:
            sequence = f"CASE WHEN {start} <= {end} THEN {sequence} ELSE ARRAY() END"
        subquery = sqlglot.parse_one(
            f"SELECT * FROM (SELECT EXPLODE({sequence}) AS {column}) AS {table_alias}", read=ChurnSpark
        ).args["from_" if "from_" in exp.Select.arg_types else "from"].this
        table.replace(subquery)
    return tree


def rename_tables(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``schema.table`` -> the name the engine registered the table under."""
    for table in list(tree.find_all(exp.Table)):
        if not table.db or isinstance(table.this, (exp.Func, exp.Anonymous)):
            continue
        new = ctx.table_name(table.db, table.name)
        alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(table.name))
        table.set("this", exp.to_identifier(new))
        table.set("db", None)
        table.set("catalog", None)
        table.set("alias", alias)
    return tree


def name_table_functions(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``FROM generate_series(...)``: DuckDB names the column after the function; say so, so that
    Spark's EXPLODE(SEQUENCE(...)) keeps the name; ``to_months(n)`` -> a year-month interval."""
    for node in list(tree.find_all(exp.Anonymous)):
        if node.name.lower() == "to_months":
            months = node.expressions[0]
            node.replace(exp.Anonymous(this="MAKE_YM_INTERVAL", expressions=[exp.Literal.number(0), months.copy()]))
    for table in list(tree.find_all(exp.Table)):
        function = table.this
        if not isinstance(function, (exp.Func, exp.Anonymous)):
            continue
        name = (function.name if isinstance(function, exp.Anonymous) else function.key).lower()
        if isinstance(function, exp.GenerateSeries) or name in ("generate_series", "generateseries", "range"):
            column = "range" if name == "range" else "generate_series"
            alias = table.args.get("alias")
            if alias is not None and alias.columns:
                continue
            table_alias = alias.name if alias is not None and alias.name else column
            table.set("alias", exp.TableAlias(this=exp.to_identifier(table_alias), columns=[exp.to_identifier(column)]))
        else:
            ctx.refuse("table function", table)
    return tree


REWRITES: tuple[Callable[[exp.Expression, "_Context"], exp.Expression], ...] = (
    bind_variables,
    refuse_constructs,
    refuse_month_series_from_late_days,
    name_table_functions,
    qualify_and_annotate,
    rewrite_asof_joins,
    inline_named_windows,
    rewrite_date_diff,
    rewrite_date_arithmetic,
    rewrite_integer_casts,
    rewrite_list_index,
    # the rewrites below write Spark SQL that the ones above must not touch again
    rewrite_division,
    rewrite_round,
    rewrite_percentiles,
    rewrite_ordered_lists,
    rewrite_regexp_replace,
    spell_table_functions,
    rename_tables,
)


@dataclass
class _Context:
    schema: dict
    variables: dict[str, Any]
    table_name: Callable[[str, str], str]
    refusals: list[SparkRefusal] = field(default_factory=list)

    def refuse(self, construct: str, node: exp.Expression | None, detail: str = "") -> None:
        self.refusals.append(SparkRefusal(construct, node, detail))


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
