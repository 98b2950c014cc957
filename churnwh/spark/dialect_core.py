"""What every rewrite of churnwh.spark.dialect shares: the refusals, the Spark writer with the context-free
fixes, the rewrite context, and the type and tree helpers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sqlglot import exp
from sqlglot.dialects.spark import Spark

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
    "decimal cast": "a cast to DECIMAL rounds a DOUBLE differently on each engine unless it is carried exactly: "
    "only a DOUBLE (not a FLOAT, not a column of unknown type) to DECIMAL(w, s) with w <= 18 is; "
    "cast to DOUBLE first, or to DECIMAL(18, s) and widen that",
    "text cast": "a cast of a text column to a number, date or timestamp parses differently on each engine "
    "(spaces, '2.5' to an integer, '1e3', partial dates): declare the column's type in [sources.NAME.columns] "
    "so it loads typed, or parse it with explicit string functions",
    "mode": "mode() breaks a tie between equally frequent values differently on each engine: write "
    "mode(x ORDER BY x) (the lowest of them, on both)",
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


class ChurnSpark(Spark):
    """sqlglot's Spark dialect with the context-free fixes of this module."""

    class Generator(Spark.Generator):
        TRANSFORMS = {
            **Spark.Generator.TRANSFORMS,
            exp.DayOfWeek: lambda self, e: f"((WEEKDAY({self.sql(e, 'this')}) + 1) % 7)",
            exp.DayOfWeekIso: lambda self, e: f"(WEEKDAY({self.sql(e, 'this')}) + 1)",
            exp.Median: lambda self, e: f"PERCENTILE({self.sql(e, 'this')}, 0.5)",
            # DuckDB's date_trunc of a DATE is a TIMESTAMP; Spark's TRUNC gives a DATE, and NULL for 'DAY'
            exp.DateTrunc: lambda self, e: self.func("DATE_TRUNC", exp.Literal.string(e.unit.name.upper()), e.this),
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


@dataclass
class _Context:
    schema: dict
    variables: dict[str, Any]
    table_name: Callable[[str, str], str]
    refusals: list[SparkRefusal] = field(default_factory=list)

    def refuse(self, construct: str, node: exp.Expression | None, detail: str = "") -> None:
        self.refusals.append(SparkRefusal(construct, node, detail))
