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


def _division(node: exp.Expression, ctx: "_Context") -> None:
    """``a / b`` is a DOUBLE division in DuckDB, +-inf or NaN when b = 0 (the sign of a zero b counts);
    Spark (ANSI) raises."""
    left, right = _as_double(node.left.copy()), _as_double(node.right.copy())
    a, b = left.sql(dialect=ChurnSpark), right.sql(dialect=ChurnSpark)
    # x / -0.0 is -x / 0.0 (IEEE, as DuckDB); Spark shows the sign of a zero only in its text
    sql = (
        f"CASE WHEN {b} = 0 THEN CASE WHEN STARTSWITH(CAST({b} AS STRING), '-') THEN -({a}) ELSE {a} END * "
        f"CAST('Infinity' AS DOUBLE) ELSE TRY_DIVIDE({a}, {b}) END"
    )
    _replace(node, exp.Paren(this=sqlglot.parse_one(sql, read=ChurnSpark))).type = exp.DataType.build("double")


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


def _round(node: exp.Expression, ctx: "_Context") -> None:
    """DuckDB rounds a DOUBLE half away from zero on its exact binary value (65.9695, stored as
    65.96949999..., -> 65.969); Spark rounds its shortest decimal text (-> 65.970). Written out:
    p = |x| * 10^n, its fraction decides, and an exact tie in p is settled by the rounding error of
    the product (Dekker's two-product), so the result is DuckDB's to the last bit."""
    if _type(node.this).this not in (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT):
        return
    digits = node.args.get("decimals")
    if digits is not None and not (isinstance(digits, exp.Literal) and not digits.is_string):
        ctx.refuse("unsupported function", node, "round() of a DOUBLE to a negative or non-literal number of "
                   "digits: cast the value to DECIMAL first")
        return
    n = int(digits.this) if digits is not None else 0
    if n > 22:
        ctx.refuse("unsupported function", node, "round() of a DOUBLE to more than 22 digits")
        return
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


def _percentiles(node: exp.Expression, ctx: "_Context") -> None:
    """``percentile_cont``/``quantile_cont``/``median``: Spark's PERCENTILE interpolates as
    lo + (hi - lo) * d, DuckDB as lo * (1 - d) + hi * d, which differ in the last bits. Written out
    over the sorted non-NULL values, as DuckDB computes it."""
    if node.parent is None:
        return
    if isinstance(node, exp.WithinGroup):
        if not isinstance(node.this, exp.PercentileCont):
            return
        ordered = node.expression.expressions[0]
        if ordered.args.get("desc"):
            ctx.refuse("percentile_disc", node, "percentile_cont(p) WITHIN GROUP (ORDER BY x DESC): write "
                       "percentile_cont(1 - p) WITHIN GROUP (ORDER BY x)")
            return
        value, fraction = ordered.this, node.this.this
    elif isinstance(node, exp.PercentileCont):
        if isinstance(node.parent, exp.WithinGroup) or node.expression is None:
            return
        value, fraction = node.this, node.expression
    else:
        value, fraction = node.this, exp.Literal.number("0.5")
    if isinstance(node.parent, exp.Window):
        ctx.refuse("percentile_disc", node, "a percentile over a window: compute it in a GROUP BY and join")
        return
    if _type(value).this not in {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT} | _INTEGERS:
        ctx.refuse("percentile_disc", node, f"a percentile of a {_type(value).sql()} column: cast it to DOUBLE")
        return
    if not (isinstance(fraction, exp.Literal) and not fraction.is_string):
        ctx.refuse("percentile_disc", node, "a percentile needs a literal fraction")
        return
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


def _ordered_lists(node: exp.Expression, ctx: "_Context") -> None:
    """``list(x ORDER BY y)``: keep the order and the NULLs (COLLECT_LIST keeps neither)."""
    order = node.this
    if not isinstance(order, exp.Order):
        return
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


def _regexp_replace(node: exp.Expression, ctx: "_Context") -> None:
    """DuckDB replaces the first match unless the flags hold 'g'; Spark replaces every match."""
    pattern, replacement = node.expression, node.args.get("replacement")
    modifiers = node.args.get("modifiers")
    literal = all(isinstance(x, exp.Literal) and x.is_string for x in (pattern, replacement))
    flags = modifiers.this if isinstance(modifiers, exp.Literal) else ("" if modifiers is None else None)
    if not literal or flags is None or set(flags) - {"g", "i"}:
        ctx.refuse("regexp_replace", node)
        return
    if "\\" in replacement.this or "$" in replacement.this:
        ctx.refuse("regexp_replace", node)
        return
    prefix = "(?i)" if "i" in flags else ""
    subject = node.this.sql(dialect=ChurnSpark)
    if "g" in flags:
        sql = f"REGEXP_REPLACE({subject}, {exp.Literal.string(prefix + pattern.this).sql()}, {replacement.sql()})"
    else:
        first = prefix + "^(?s)(.*?)(?:" + pattern.this + ")"
        sql = f"REGEXP_REPLACE({subject}, {exp.Literal.string(first).sql()}, {exp.Literal.string('$1' + replacement.this).sql()})"
    _replace(node, sqlglot.parse_one(sql, read=ChurnSpark))


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


def _decimal_casts(node: exp.Expression, ctx: "_Context") -> None:
    """``CAST(double AS DECIMAL(w, s))``: DuckDB multiplies by 10^s in DOUBLE and rounds that product half
    away from zero (129.6975, stored as 129.69749999..., times 1000 is 129697.49999999999 -> 129.697);
    Spark rounds the double's shortest decimal text (-> 129.698). Written out as DuckDB computes it: the
    product, ROUND (exact on a DOUBLE whose text ends in .5, which below 2^52 is an exact half), a BIGINT
    (exact, NaN and infinities fail as in DuckDB), then the decimal point put back by an exact DECIMAL product."""
    if node.to.this != exp.DataType.Type.DECIMAL or node.meta.get("churnwh_rewritten"):
        return
    kind = _type(node.this).this
    if kind == exp.DataType.Type.FLOAT:
        ctx.refuse("decimal cast", node, "a cast of a FLOAT (REAL) to DECIMAL rounds differently on "
                   "each engine: cast it to DOUBLE first")
        return
    if kind == exp.DataType.Type.UNKNOWN and not isinstance(node.this, (exp.Literal, exp.Null)):
        ctx.refuse("decimal cast", node, "a cast to DECIMAL of a column whose type cannot be inferred "
                   "(a DOUBLE rounds differently on each engine): cast it to DOUBLE or VARCHAR first")
        return
    if kind != exp.DataType.Type.DOUBLE:
        return
    params = node.to.expressions
    width = int(params[0].this.this) if params else 18
    scale = int(params[1].this.this) if len(params) > 1 else (3 if not params else 0)
    if width > _MAX_EXACT_DECIMAL_WIDTH:
        ctx.refuse("decimal cast", node, f"a cast of a DOUBLE to DECIMAL({width}, {scale}) rounds "
                   f"differently on each engine past 18 digits: cast it to DECIMAL(18, {scale}) first")
        return
    cast = "TRY_CAST" if isinstance(node, exp.TryCast) else "CAST"
    value = node.this.sql(dialect=ChurnSpark)
    product = f"ROUND(CAST({value} AS DOUBLE) * CAST({float(10**scale)!r} AS DOUBLE), 0)"
    unit = f"CAST('{1 / 10**scale:.{scale}f}' AS DECIMAL({scale + 1}, {scale}))"
    sql = (f"{cast}({cast}({cast}({product} AS BIGINT) AS DECIMAL({width}, 0)) * {unit} "
           f"AS DECIMAL({width}, {scale}))")
    new = sqlglot.parse_one(sql, read=ChurnSpark)
    new.meta["churnwh_rewritten"] = True
    _replace(node, new)


def _floor(node: exp.Expression, ctx: "_Context") -> None:
    """``floor``/``ceil`` of a DOUBLE is a DOUBLE in DuckDB (NaN, infinities, -0.0 and values past 2^52 kept);
    Spark returns a BIGINT, which fails on those."""
    if _type(node.this).this not in (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT) or node.args.get("decimals"):
        return
    name = "FLOOR" if isinstance(node, exp.Floor) else "CEIL"
    value = node.this.sql(dialect=ChurnSpark)
    sql = (
        f"TRANSFORM(ARRAY(CAST({value} AS DOUBLE)), __f -> CASE WHEN __f IS NULL OR ISNAN(__f) OR __f = 0 "
        f"OR ABS(__f) >= CAST(4503599627370496 AS DOUBLE) THEN __f ELSE CAST({name}(__f) AS DOUBLE) END)[0]"
    )
    _replace(node, sqlglot.parse_one(sql, read=ChurnSpark)).type = exp.DataType.build("double")


def rewrite_arg_extremes(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``arg_max(x, y)``/``arg_min``: DuckDB skips the rows where x is NULL, Spark's MAX_BY/MIN_BY return it.
    Rows with a NULL x get a NULL y, which both skip."""
    for node in _bottom_up(exp.ArgMax, exp.ArgMin, tree=tree):
        if node.args.get("count") is not None:
            ctx.refuse("unsupported function", node, "arg_max/arg_min with a count: use a window with row_number()")
            continue
        value, order = node.this, node.expression
        if isinstance(value, exp.Literal) or order is None:
            continue
        guarded = exp.Case(ifs=[exp.If(this=exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                                        true=order.copy())])
        guarded.type = order.type
        order.replace(guarded)
    return tree


_TEXT_FUNCTIONS = (exp.Replace, exp.Lower, exp.Upper, exp.Trim, exp.DPipe, exp.Concat, exp.Substring, exp.RegexpReplace)


def _textual(node: exp.Expression) -> bool:
    """Text by its shape where sqlglot infers no type (replace(), a CASE of text, ...)."""
    if isinstance(node, exp.Literal):
        return node.is_string
    if _type(node).this in _TEXT or isinstance(node, _TEXT_FUNCTIONS):
        return True
    if isinstance(node, (exp.Paren, exp.Case, exp.If, exp.Coalesce, exp.Nullif)):
        branches = [node.this] if isinstance(node, exp.Paren) else list(node.args.get("ifs") or []) + [
            node.args.get(key) for key in ("true", "false", "default", "this", "expression")]
        branches += list(node.args.get("expressions") or []) if isinstance(node, exp.Coalesce) else []
        return any(_textual(branch) for branch in branches if isinstance(branch, exp.Expression))
    return False


_TEXT = {exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT, exp.DataType.Type.CHAR, exp.DataType.Type.NVARCHAR}


def refuse_text_casts(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """Text is parsed differently by each engine (DuckDB casts ' 2024-01-01 ' to a DATE but not a TIMESTAMP,
    '2.5' to the INTEGER 3, '1e3' to 1000; Spark trims, truncates or refuses), and a DOUBLE is written
    differently ('1e-300' and '1.0E-300'). Literals are kept: both read an ISO date or a plain number alike."""
    for node in _bottom_up(exp.Cast, tree=tree):
        source, target = node.this, node.to.this
        if isinstance(source, (exp.Literal, exp.Null)) or node.meta.get("churnwh_rewritten"):
            continue
        kind = _type(source).this
        if (kind in _TEXT or _textual(source)) and target not in _TEXT:
            ctx.refuse("text cast", node)
        elif kind in (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT) and target in _TEXT:
            ctx.refuse("text cast", node, "a DOUBLE is written as text differently by each engine ('1e-300', "
                       "'1.0E-300'): cast it to DECIMAL(18, s) first, or keep it a DOUBLE")
    return tree


DUCKDB_TRIMMED = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
"""What DuckDB's trim() removes (measured over the Basic Multilingual Plane); Spark's removes ' ' only."""


def _special_uppercase() -> dict[str, str]:
    """Letters whose full uppercase (Java's, Spark's) is several letters ('ß' -> 'SS'), with the single
    letter DuckDB writes instead ('ß' -> 'ẞ'; 'ﬁ' stays 'ﬁ'). DuckDB itself says what it writes."""
    import sys

    import duckdb

    letters = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000 and len(chr(c).upper()) > 1]
    with duckdb.connect() as con:
        return dict(con.execute("SELECT c, upper(c) FROM unnest(?::VARCHAR[]) AS u(c)", [letters]).fetchall())


_SPECIAL_UPPERCASE: dict[str, str] | None = None


def _spark_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _text_case(node: exp.Expression, ctx: "_Context") -> None:
    """DuckDB maps case letter by letter; Spark (Java) uses the full mappings: lower('İ') is 'i̇' and a
    final 'Σ' becomes 'ς', upper('ß') is 'SS'. Those letters are mapped first (lower) or one by one
    (upper, only in a value holding one of them), as DuckDB does. trim() removes DuckDB's set of spaces."""
    global _SPECIAL_UPPERCASE
    value = node.this.sql(dialect=ChurnSpark)
    if isinstance(node, exp.Trim):
        if node.expression is not None or node.args.get("position"):
            return
        sql = f"TRIM(BOTH {_spark_string(DUCKDB_TRIMMED)} FROM {value})"
    elif isinstance(node, exp.Lower):
        sql = f"LOWER(TRANSLATE({value}, 'İΣ', 'iσ'))"
    else:
        if _SPECIAL_UPPERCASE is None:
            _SPECIAL_UPPERCASE = _special_uppercase()
        keys = ", ".join(_spark_string(k) for k in _SPECIAL_UPPERCASE)
        values = ", ".join(_spark_string(v) for v in _SPECIAL_UPPERCASE.values())
        letters = "".join(_SPECIAL_UPPERCASE)
        sql = (
            f"TRANSFORM(ARRAY({value}), __u -> CASE WHEN __u RLIKE {_spark_string('[' + letters + ']')} THEN "
            f"ARRAY_JOIN(TRANSFORM(REGEXP_EXTRACT_ALL(__u, '(?s)(.)', 1), __c -> COALESCE(TRY_ELEMENT_AT("
            f"MAP_FROM_ARRAYS(ARRAY({keys}), ARRAY({values})), __c), UPPER(__c))), '') ELSE UPPER(__u) END)[0]"
        )
    _replace(node, sqlglot.parse_one(sql, read=ChurnSpark)).type = exp.DataType.build("varchar")


def retype_decimal_rounding(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """sqlglot types round()/floor()/abs() of a DECIMAL as a DOUBLE; DuckDB keeps a DECIMAL, and the casts
    after it must round it as one (``CAST(round(-2.500, 2) AS INTEGER)`` is -3, not BROUND's -2)."""
    for node in _bottom_up(exp.Round, exp.Floor, exp.Ceil, exp.Abs, tree=tree):
        if _type(node.this).this == exp.DataType.Type.DECIMAL:
            node.type = exp.DataType.build("decimal")
    for node in _bottom_up(exp.Paren, exp.Neg, tree=tree):
        if _type(node.this).this == exp.DataType.Type.DECIMAL:
            node.type = _type(node.this).copy()
    return tree


def _decimal_average(node: exp.Expression, ctx: "_Context") -> None:
    """DuckDB's avg() of a DECIMAL is a DOUBLE (the exact sum divided by the count); Spark's is a DECIMAL
    rounded to 4 more digits (1/3 -> 0.3333333). Written as the exact sum, as a DOUBLE, over the count:
    within 1 ULP of DuckDB's (DuckDB divides in extended precision, Spark in DOUBLE)."""
    if _type(node.this).this != exp.DataType.Type.DECIMAL or isinstance(node.parent, exp.Window):
        return
    value = node.this.sql(dialect=ChurnSpark)
    sql = f"(CAST(SUM({value}) AS DOUBLE) / COUNT({value}))"
    _replace(node, sqlglot.parse_one(sql, read=ChurnSpark)).type = exp.DataType.build("double")


_WRITERS = (
    ((exp.Div,), _division),
    ((exp.Round,), _round),
    ((exp.Floor, exp.Ceil,), _floor),
    ((exp.Cast,), _decimal_casts),
    ((exp.Avg,), _decimal_average),
    ((exp.WithinGroup, exp.PercentileCont, exp.Median,), _percentiles),
    ((exp.ArrayAgg,), _ordered_lists),
    ((exp.RegexpReplace,), _regexp_replace),
    ((exp.Lower, exp.Upper, exp.Trim,), _text_case),
)
"""Rewrites that write Spark SQL text in place of a DuckDB node. They run in one bottom-up pass: each sees
its children already rewritten (a round() inside a division, a division inside a cast), which separate
passes would hide from each other."""


def rewrite_values(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    kinds = tuple(kind for group, _ in _WRITERS for kind in group)
    for node in _bottom_up(*kinds, tree=tree):
        for group, write in _WRITERS:
            if isinstance(node, group) and not node.meta.get("churnwh_rewritten"):
                write(node, ctx)
                break
    return tree


def rewrite_mode(tree: exp.Expression, ctx: "_Context") -> exp.Expression:
    """``mode(x ORDER BY x)``: DuckDB breaks a tie by the order, the lowest value; Spark's MODE(x, TRUE) too.
    Without that ORDER BY each engine picks any of the tied values."""
    for node in _bottom_up(exp.Mode, tree=tree):
        order = node.this
        keys = order.expressions if isinstance(order, exp.Order) else []
        if not (len(keys) == 1 and not keys[0].args.get("desc") and keys[0].this == order.this):
            ctx.refuse("mode", node)
            continue
        _replace(node, exp.Anonymous(this="MODE", expressions=[order.this.copy(), exp.true()]))
    return tree
