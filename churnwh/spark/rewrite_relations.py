"""Rewrites of what a query reads and how: variables, refused constructs, qualification and types,
table functions, ASOF joins, named windows, table names.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from churnwh.spark.dialect_core import _DATES, _UNSUPPORTED_FUNCTIONS, READ, REFUSED, ChurnSpark, _Context, _is


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
    return _drop_unset_alternatives(tree)


def _drop_unset_alternatives(tree: exp.Expression) -> exp.Expression:
    """``NULL IS NULL OR x`` -> TRUE: the branch a filter takes when its variable is unset (a list of
    restated keys, ``unnest(NULL)``, does not even type-check in Spark)."""
    for node in list(tree.find_all(exp.Or)):
        if any(isinstance(side, exp.Is) and isinstance(side.this, exp.Null) and isinstance(side.expression, exp.Null)
               for side in (node.left, node.right)):
            node.replace(exp.true())
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
