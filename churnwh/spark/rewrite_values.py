"""Rewrites of values DuckDB and Spark compute differently: date differences and arithmetic, division,
integer and decimal casts, rounding, percentiles, ordered lists, regexp_replace, list indexes.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from churnwh.spark.dialect_core import (
    _DATES,
    _INTEGERS,
    REFUSED,
    ChurnSpark,
    _as_double,
    _bottom_up,
    _Context,
    _is,
    _replace,
    _type,
    _unknown,
)

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


_MAX_EXACT_DECIMAL_WIDTH = 18
"""Wider targets would pass the rounded value through a DOUBLE's decimal text (inexact past 2^53)."""


def rewrite_decimal_casts(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``CAST(double AS DECIMAL(w, s))``: DuckDB multiplies by 10^s in DOUBLE and rounds that product half
    away from zero (129.6975, stored as 129.69749999..., times 1000 is 129697.49999999999 -> 129.697);
    Spark rounds the double's shortest decimal text (-> 129.698). Written out as DuckDB computes it: the
    product, ROUND (exact on a DOUBLE whose text ends in .5, which below 2^52 is an exact half), a BIGINT
    (exact, NaN and infinities fail as in DuckDB), then the decimal point put back by an exact DECIMAL product."""
    for node in _bottom_up(exp.Cast, tree=tree):
        if node.to.this != exp.DataType.Type.DECIMAL or node.meta.get("churnwh_rewritten"):
            continue
        kind = _type(node.this).this
        if kind == exp.DataType.Type.FLOAT:
            ctx.refuse("decimal cast", node, "a cast of a FLOAT (REAL) to DECIMAL rounds differently on "
                       "each engine: cast it to DOUBLE first")
            continue
        if kind == exp.DataType.Type.UNKNOWN and not isinstance(node.this, (exp.Literal, exp.Null)):
            ctx.refuse("decimal cast", node, "a cast to DECIMAL of a column whose type cannot be inferred "
                       "(a DOUBLE rounds differently on each engine): cast it to DOUBLE or VARCHAR first")
            continue
        if kind != exp.DataType.Type.DOUBLE:
            continue
        params = node.to.expressions
        width = int(params[0].this.this) if params else 18
        scale = int(params[1].this.this) if len(params) > 1 else (3 if not params else 0)
        if width > _MAX_EXACT_DECIMAL_WIDTH:
            ctx.refuse("decimal cast", node, f"a cast of a DOUBLE to DECIMAL({width}, {scale}) rounds "
                       f"differently on each engine past 18 digits: cast it to DECIMAL(18, {scale}) first")
            continue
        cast = "TRY_CAST" if isinstance(node, exp.TryCast) else "CAST"
        value = node.this.sql(dialect=ChurnSpark)
        product = f"ROUND(CAST({value} AS DOUBLE) * CAST({float(10**scale)!r} AS DOUBLE), 0)"
        unit = f"CAST('{1 / 10**scale:.{scale}f}' AS DECIMAL({scale + 1}, {scale}))"
        sql = (f"{cast}({cast}({cast}({product} AS BIGINT) AS DECIMAL({width}, 0)) * {unit} "
               f"AS DECIMAL({width}, {scale}))")
        new = sqlglot.parse_one(sql, read=ChurnSpark)
        new.meta["churnwh_rewritten"] = True
        _replace(node, new)
    return tree
