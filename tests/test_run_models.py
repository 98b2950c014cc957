from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from churnwh.errors import ModelError
from churnwh.sqlmodels.project import load_project
from churnwh.sqlmodels.run_models import run_models
from churnwh.store import warehouse

VARIABLES = {"min_amount": 0}


@pytest.fixture
def con(tmp_path):
    with warehouse.connect(tmp_path / "private.duckdb") as connection:
        connection.execute("CREATE SCHEMA raw")
        connection.execute(
            "CREATE TABLE raw.events AS SELECT 'p' || (i % 7) AS customer_pseudonym, i AS amount FROM range(50) t(i)"
        )
        yield connection


def models(write_models, amount_check: str = "range = [0, 1000]"):
    return write_models(
        {
            "staging/events.sql": f"""
                /*
                description = "Cleaned events."
                [columns.amount]
                description = "Purchase amount."
                {amount_check}
                */
                SELECT customer_pseudonym, amount FROM raw.events WHERE amount >= getvariable('min_amount')
            """,
            "features/totals.sql": """
                /*
                grain = ["customer_pseudonym"]
                [columns.customer_pseudonym]
                description = "Keyed pseudonym of the customer."
                checks = ["not_null", "unique"]
                */
                SELECT customer_pseudonym, sum(amount) AS total FROM staging.events GROUP BY 1
            """,
            "features/recent.sql": """
                /*
                materialized = "view"
                */
                SELECT * FROM staging.events WHERE amount > 40
            """,
        }
    )


def statuses(results):
    return {result.name: result.status for result in results}


def test_builds_in_order_then_skips_unchanged(con, write_models):
    project = load_project(models(write_models), known_sources={"raw.events"})
    first = run_models(con, project, VARIABLES)
    assert [r.name for r in first] == ["staging.events", "features.recent", "features.totals"]
    assert set(statuses(first).values()) == {"built"}
    assert con.execute("SELECT sum(total) FROM features.totals").fetchone()[0] == sum(range(50))
    assert warehouse.relations(con)["features.recent"] == "view"

    assert set(statuses(run_models(con, project, VARIABLES)).values()) == {"skipped"}
    assert set(statuses(run_models(con, project, VARIABLES, full_refresh=True)).values()) == {"built"}


def test_changed_source_data_or_variable_rebuilds(con, write_models):
    project = load_project(models(write_models), known_sources={"raw.events"})
    run_models(con, project, VARIABLES)
    con.execute("UPDATE raw.events SET amount = amount + 1 WHERE amount = 3")
    assert set(statuses(run_models(con, project, VARIABLES)).values()) == {"built"}
    assert set(statuses(run_models(con, project, {"min_amount": 10})).values()) == {"built"}
    assert con.execute("SELECT min(amount) FROM staging.events").fetchone()[0] == 10


def test_changed_sql_rebuilds_it_and_downstream_only(con, write_models, tmp_path):
    sql = models(write_models)
    project = load_project(sql, known_sources={"raw.events"})
    run_models(con, project, VARIABLES)
    path = sql / "features" / "recent.sql"
    path.write_text(path.read_text().replace("> 40", "> 45"))
    result = statuses(run_models(con, load_project(sql), VARIABLES))
    assert result == {"staging.events": "skipped", "features.recent": "built", "features.totals": "skipped"}


def test_select_builds_model_and_downstream(con, write_models):
    project = load_project(models(write_models), known_sources={"raw.events"})
    results = run_models(con, project, VARIABLES, selected=project.select("staging.events+"), full_refresh=True)
    assert [r.name for r in results] == ["staging.events", "features.recent", "features.totals"]
    results = run_models(con, project, VARIABLES, selected=project.select("features.totals"), full_refresh=True)
    assert [r.name for r in results] == ["features.totals"]


def test_failed_check_keeps_previous_table_and_names_model_and_count(con, write_models):
    project = load_project(models(write_models), known_sources={"raw.events"})
    run_models(con, project, VARIABLES)
    before = con.execute("SELECT * FROM staging.events ORDER BY ALL").fetchall()
    con.execute("UPDATE raw.events SET amount = 5000 WHERE amount IN (1, 2, 3)")
    with pytest.raises(ModelError) as err:
        run_models(con, project, VARIABLES)
    message = str(err.value)
    assert "range(amount, 0, 1000)" in message and "staging.events" in message and "3 bad rows" in message
    assert "(e.g. p1, p2, p3)" in message
    assert con.execute("SELECT * FROM staging.events ORDER BY ALL").fetchall() == before


def test_unique_and_grain_checks_fail_with_examples(con, write_models):
    sql = write_models(
        {
            "s/dupes.sql": """
                /*
                grain = ["customer_pseudonym"]
                */
                SELECT customer_pseudonym FROM raw.events
            """
        }
    )
    with pytest.raises(ModelError, match=r"grain \(customer_pseudonym\) unique failed .* 50 bad rows \(e\.g\. p0, p1"):
        run_models(con, load_project(sql), VARIABLES)
    assert "s.dupes" not in warehouse.relations(con)


def test_audit_uses_this_and_reports_count(con, write_models):
    sql = write_models(
        {
            "s/audited.sql": """
                /*
                [[audits]]
                name = "small_amounts_only"
                sql = "SELECT * FROM this AS t WHERE t.amount >= 45"
                */
                SELECT * FROM raw.events
            """
        }
    )
    with pytest.raises(ModelError, match="audit small_amounts_only failed for model s.audited: 5 bad rows"):
        run_models(con, load_project(sql), VARIABLES)


def test_sql_error_names_file_and_keeps_no_data_values(con, write_models):
    con.execute("CREATE TABLE raw.people AS SELECT 'canary.person@example.com' AS email")
    sql = write_models({"s/cast.sql": "SELECT CAST(email AS INTEGER) AS n FROM raw.people"})
    with pytest.raises(ModelError) as err:
        run_models(con, load_project(sql), VARIABLES)
    assert "cast.sql" in str(err.value)
    assert "canary" not in str(err.value)


def test_declared_column_must_exist(con, write_models):
    sql = write_models({"s/a.sql": "/*\n[columns.missing]\ndescription = 'x'\n*/\nSELECT 1 AS present"})
    with pytest.raises(ModelError, match="header names column 'missing'"):
        run_models(con, load_project(sql), VARIABLES)


def test_column_comments_are_written(con, write_models):
    project = load_project(models(write_models), known_sources={"raw.events"})
    run_models(con, project, VARIABLES)
    comment = con.execute(
        "SELECT comment FROM duckdb_columns() WHERE schema_name = 'staging' AND table_name = 'events' AND column_name = 'amount'"
    ).fetchone()[0]
    assert comment == "Purchase amount."


def test_switching_table_to_view(con, write_models):
    sql = models(write_models)
    run_models(con, load_project(sql), VARIABLES)
    path = sql / "features" / "totals.sql"
    path.write_text('/*\nmaterialized = "view"\n*/\n' + "SELECT customer_pseudonym FROM staging.events")
    run_models(con, load_project(sql), VARIABLES)
    assert warehouse.relations(con)["features.totals"] == "view"


def test_column_docs_are_inherited_from_upstream_unless_redeclared(con, write_models):
    sql = write_models(
        {
            "s/base.sql": """
                /*
                [columns.amount]
                description = "Purchase amount."
                privacy = "sensitive"
                range = [0, 100]
                [columns.customer_pseudonym]
                description = "Keyed pseudonym."
                */
                SELECT customer_pseudonym, amount FROM raw.events
            """,
            "s/mart.sql": """
                /*
                [columns.customer_pseudonym]
                description = "The customer."
                */
                SELECT * FROM s.base
            """,
        }
    )
    project = load_project(sql)
    docs = project.column_docs("s.mart")
    assert docs["amount"].description == "Purchase amount." and docs["amount"].privacy == "sensitive"
    assert docs["amount"].range is None  # checks are not inherited
    assert docs["customer_pseudonym"].description == "The customer."
    run_models(con, project, VARIABLES)
    comments = dict(
        con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 's' AND table_name = 'mart'"
        ).fetchall()
    )
    assert comments == {"customer_pseudonym": "The customer.", "amount": "Purchase amount."}


# --- checks and audits run as one screening scan (run_models.verify) --------------------------------

TRICKY = """
    SELECT * FROM (VALUES
        ('p1', 'A', 0.0::DOUBLE, 1, DATE '2024-01-01'),
        ('p2', 'a', -0.0::DOUBLE, 2, DATE '2024-01-01'),
        ('p3', NULL, 'nan'::DOUBLE, NULL, NULL),
        ('p4', NULL, 'nan'::DOUBLE, NULL, NULL),
        ('p5', 'b', 5.0::DOUBLE, 3, DATE '2024-01-02')
    ) AS t(customer_pseudonym, code, score, n, day)
"""


def _one_by_one(con, model, columns):
    """The reference: every check and audit on its own, in header order (the behaviour before fusing)."""
    from churnwh.sqlmodels import run_models as rm

    for check in rm.model_checks(model) + rm.model_audits(model):
        rm._fail_if_rows(con, model, columns, check.what, check.bad_rows_sql)


@pytest.mark.parametrize(
    "header",
    [
        'grain = ["code"]',  # NULL duplicates only: the screen fires, the exact query finds 0 rows
        'grain = ["score"]',  # 0.0 and -0.0, two NaNs: equal for GROUP BY
        'grain = ["n", "day"]',  # (NULL, NULL) twice
        'grain = ["customer_pseudonym"]\n[columns.code]\nchecks = ["unique"]',
        '[columns.code]\nchecks = ["not_null"]\n[columns.n]\nrange = [1, 2]',  # two failures: the first is named
        '[columns.n]\nrange = [1, 2]\n[columns.code]\nchecks = ["not_null"]',
        '[columns.code]\naccepted_values = ["A", "b"]',
        '[columns.score]\nrange = [-1, 6]',  # NaN is above every number
        '[columns.score]\nrange = [-1.5, 1e300]',
        '[columns.n]\nrange = [-1, 3]\n[columns.day]\nchecks = ["unique"]',
        '[[audits]]\nname = "big"\nsql = "SELECT * FROM this AS t WHERE t.n >= 2"',
        '[[audits]]\nname = "two"\nsql = "SELECT * FROM this WHERE n >= 1 LIMIT 2"',
        '[[audits]]\nname = "alias"\nsql = "SELECT n AS big FROM this WHERE big > 1"',  # not screened
        '[[audits]]\nname = "distinct"\nsql = "SELECT DISTINCT day FROM this WHERE n >= 1"',
        '[[audits]]\nname = "joined"\n'
        'sql = "SELECT a.customer_pseudonym FROM this a JOIN this b ON a.day = b.day AND a.n < b.n"',
        '[[audits]]\nname = "sub"\nsql = "SELECT * FROM this WHERE n > (SELECT min(n) FROM this)"',
        '[[audits]]\nname = "var"\nsql = "SELECT * FROM this WHERE n > getvariable(\'min_amount\') + 2"',
        '[[audits]]\nname = "broken"\nsql = "SELECT * FROM this WHERE no_such_column > 1"',
        '[columns.n]\nrange = [1, 2]\n[[audits]]\nname = "broken"\nsql = "SELECT * FROM this WHERE no_such_column > 1"',
        '[columns.code]\nrange = [0, 1]',  # a range on text: cannot run, or compares as text, as before
        '[[audits]]\nname = "cast"\nsql = "SELECT * FROM this WHERE CAST(customer_pseudonym AS INTEGER) > 1"',
        '[columns.n]\nchecks = ["not_null"]\n'
        '[[audits]]\nname = "cast"\nsql = "SELECT * FROM this WHERE CAST(code AS INTEGER) > 1"',
        'grain = ["customer_pseudonym"]\n[[audits]]\nname = "none"\nsql = "SELECT * FROM this WHERE n > 100"',
    ],
)
def test_fused_checks_give_the_same_outcome_as_one_by_one(con, write_models, header):
    from churnwh.sqlmodels import run_models as rm

    collated = "SELECT customer_pseudonym, code COLLATE NOCASE AS code, score, n, day FROM raw.tricky"
    con.execute(f"CREATE TABLE raw.tricky AS {TRICKY}")
    warehouse.set_variables(con, VARIABLES)
    for body in ("SELECT * FROM raw.tricky", collated):
        sql = write_models({"s/m.sql": f"/*\n{header}\n*/\n{body}"})
        model = load_project(sql).models["s.m"]
        con.execute("CREATE SCHEMA IF NOT EXISTS s")
        con.execute(f"CREATE OR REPLACE TABLE s.m AS {body}")
        columns = warehouse.columns(con, "s.m")
        outcomes = []
        for run in (_one_by_one, rm.verify):
            try:
                run(con, model, columns)
                outcomes.append(None)
            except rm.ScreenFailed:
                outcomes.append("screen failed")
            except ModelError as err:
                outcomes.append(str(err))
        if outcomes[1] == "screen failed":  # build_model then builds again without the screen
            assert outcomes[0] is not None, header  # a check fails or cannot run either way
        else:
            assert outcomes[1] == outcomes[0], header
        # and through a build, in its transaction
        con.execute("DROP TABLE s.m")
        try:
            run_models(con, load_project(sql), VARIABLES)
            built = None
        except ModelError as err:
            built = str(err)
        assert built == outcomes[0], header
        assert ("s.m" in warehouse.relations(con)) == (built is None)
        con.execute(f"CREATE OR REPLACE TABLE s.m AS {body}")


def test_every_screen_fires_when_its_check_finds_rows(con):
    """No false negative: for each check, bad rows exist => its screen is positive (NULLs, NaN, -0.0, collations)."""
    from churnwh.sqlmodels import run_models as rm
    from churnwh.sqlmodels.project import Audit, Column, Model

    con.execute("CREATE SCHEMA s")
    con.execute(f"CREATE TABLE s.m AS SELECT customer_pseudonym, code COLLATE NOCASE AS code, score, n, day "
                f"FROM ({TRICKY})")
    columns = {
        "code": Column("code", not_null=True, unique=True, accepted_values=("A",)),
        "score": Column("score", not_null=True, unique=True, range=(-1, 1)),
        "n": Column("n", not_null=True, unique=True, range=(1, 2)),
        "day": Column("day", not_null=True, unique=True),
    }
    model = Model("s.m", Path("s/m.sql"), "", "table", "", ("code", "score"), columns,
                  (Audit("a", "SELECT * FROM this WHERE n > 1"),), {})
    checks = rm.model_checks(model, warehouse.columns(con, "s.m")) + rm.model_audits(model)
    assert len(checks) == 13 and all(check.screen for check in checks)
    assert sum("min(" in check.screen for check in checks) == 2  # number ranges screen on extremes
    for check in checks:
        bad = con.execute(f"SELECT count(*) FROM ({check.bad_rows_sql})").fetchone()[0]
        screen = con.execute(f"SELECT count(*), {check.screen} FROM s.m").fetchone()[1]
        assert bad == 0 or screen > 0, check.what


def test_a_model_is_checked_in_one_scan_and_reports_its_timings(con, write_models, monkeypatch):
    from churnwh.sqlmodels import run_models as rm

    sql = write_models(
        {
            "s/m.sql": """
                /*
                grain = ["customer_pseudonym", "amount"]
                [columns.customer_pseudonym]
                checks = ["not_null"]
                [columns.amount]
                checks = ["not_null"]
                range = [0, 1000]
                [[audits]]
                name = "small"
                sql = "SELECT * FROM this WHERE amount > 999"
                */
                SELECT * FROM raw.events
            """
        }
    )
    queries = []
    original = rm._fail_if_rows
    monkeypatch.setattr(rm, "_fail_if_rows", lambda *args: queries.append(args[3]) or original(*args))
    (result,) = run_models(con, load_project(sql), VARIABLES)
    assert queries == []  # every screen was 0: no check ran its own query
    assert result.status == "built" and result.sql_seconds > 0 and result.check_seconds > 0
    assert result.sql_seconds + result.check_seconds <= result.seconds


def test_failing_fused_check_keeps_previous_table_with_the_same_one_line_error(con, write_models):
    sql = models(write_models)
    project = load_project(sql, known_sources={"raw.events"})
    run_models(con, project, VARIABLES)
    assert_build_fails_keeping_table(
        con, project, "staging.events", "INSERT INTO raw.events VALUES ('p9', 5000)",
        f"{sql / 'staging' / 'events.sql'}: check range(amount, 0, 1000) failed for model staging.events: "
        "1 bad row (e.g. p9): fix the data or the model; the previous table is kept",
    )


def assert_build_fails_keeping_table(con, project, table: str, bad_data_sql: str, message: str) -> None:
    """After ``bad_data_sql`` the build fails with exactly ``message`` and ``table`` is unchanged."""
    before = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
    con.execute(bad_data_sql)
    with pytest.raises(ModelError) as err:
        run_models(con, project, VARIABLES)
    assert str(err.value) == message
    assert con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() == before


def test_an_empty_model_with_only_a_grain_passes(con, write_models):
    sql = write_models({"s/empty.sql": '/*\ngrain = ["customer_pseudonym"]\n*/\nSELECT * FROM raw.events WHERE amount < 0'})
    (result,) = run_models(con, load_project(sql), VARIABLES)
    assert (result.status, result.rows) == ("built", 0)


def test_only_plain_filters_of_this_are_screened():
    from churnwh.sqlmodels.project import Audit, Model
    from churnwh.sqlmodels.run_models import model_audits

    sqls = {
        "SELECT * FROM this AS t WHERE t.n > 1 AND this.m IS NULL": 'count(*) FILTER (WHERE n > 1 AND m IS NULL)',
        "SELECT a, b FROM this WHERE a > getvariable('x')": "count(*) FILTER (WHERE a > GETVARIABLE('x'))",
        "SELECT a AS b FROM this WHERE b > 1": None,
        "SELECT DISTINCT a FROM this WHERE a > 1": None,
        "SELECT a FROM this WHERE a > 1 LIMIT 1": None,
        "SELECT a FROM this JOIN s.o USING (a) WHERE a > 1": None,
        "SELECT a FROM s.other WHERE a > 1": None,
        "SELECT a FROM this WHERE a > (SELECT 1)": None,
        "SELECT a FROM this WHERE x.a > 1": None,
        "SELECT unnest(a) FROM this WHERE b > 1": None,
        "SELECT a FROM this GROUP BY a HAVING count(*) > 1": None,
        "WITH w AS (SELECT * FROM this) SELECT * FROM w WHERE a > 1": None,
    }
    audits = tuple(Audit(f"a{n}", sql) for n, sql in enumerate(sqls))
    model = Model("s.m", Path("s/m.sql"), "", "table", "", (), {}, audits, {})
    assert [check.screen for check in model_audits(model)] == list(sqls.values())


# --- unique and grain checks the SQL's structure guarantees (run_models.unique_by_structure) -------

PROVEN = [
    ("SELECT id, count(*) AS n FROM t GROUP BY id", ["id"]),
    ("SELECT t.id AS key, max(x) AS x FROM t JOIN u USING (v) GROUP BY t.id", ["key"]),
    ("SELECT a, b, sum(x) AS s FROM t GROUP BY b, a HAVING count(*) > 1 ORDER BY 1", ["a", "b"]),
    ("SELECT a, b, sum(x) AS s FROM t GROUP BY 1, 2", ["b", "a"]),
    ("SELECT a, b, sum(x) / count(*) AS r FROM t GROUP BY ALL", ["a", "b"]),
    ("WITH w AS (SELECT * FROM t) SELECT a, count(*) AS n, row_number() OVER () AS r FROM w GROUP BY a", ["a"]),
    ("SELECT id, x FROM t QUALIFY row_number() OVER (PARTITION BY id ORDER BY x) = 1", ["id"]),
    ("SELECT id, x FROM t WHERE x > 0 QUALIFY row_number() OVER (PARTITION BY id ORDER BY x DESC) <= 1", ["id"]),
    ("SELECT k.id, x, lower(y) AS y FROM t AS k QUALIFY 1 = row_number() OVER (PARTITION BY k.id) AND x > 1",
     ["id"]),
    ("SELECT a, b, x FROM t QUALIFY row_number() OVER (PARTITION BY a ORDER BY x) = 1", ["a", "b"]),
    ("SELECT DISTINCT a, lower(y) AS b FROM t", ["a", "b"]),
    ("SELECT DISTINCT ON (id) id, x FROM t ORDER BY id, x", ["id"]),
    ("SELECT DISTINCT ON (a, b) a, b, x FROM t", ["a", "b"]),
]

NOT_PROVEN = [
    ("SELECT a, b, count(*) AS n FROM t GROUP BY a, b", ["a"]),  # GROUP BY a superset of the keys
    ("SELECT lower(id) AS id, count(*) AS n FROM t GROUP BY id", ["id"]),  # a transformed key
    ("SELECT lower(id) AS id, count(*) AS n FROM t GROUP BY lower(id)", ["id"]),
    ("SELECT CAST(id AS INTEGER) AS id FROM t GROUP BY id", ["id"]),
    ("SELECT x AS id, id AS x FROM t GROUP BY x", ["id"]),  # an alias names a grouping column
    ("SELECT id FROM t GROUP BY id UNION ALL SELECT id FROM u GROUP BY id", ["id"]),  # a set operation on top
    ("(SELECT id FROM t GROUP BY id)", ["id"]),
    ("SELECT id, unnest(xs) AS x FROM t GROUP BY id, xs", ["id"]),  # unnest in the select list
    ("SELECT id, generate_series(1, 3) AS g FROM t GROUP BY id", ["id"]),
    ("SELECT id, range(n) AS r FROM t GROUP BY id, n", ["id"]),
    ("SELECT *, 1 AS one FROM t GROUP BY ALL", ["id"]),  # a star
    ("SELECT id FROM t GROUP BY ROLLUP (id)", ["id"]),
    ("SELECT id FROM t GROUP BY GROUPING SETS ((id), ())", ["id"]),
    ("SELECT id, lower(x) AS lx, count(*) AS n FROM t GROUP BY ALL", ["id"]),  # GROUP BY ALL has lx as a key too
    ("SELECT g.id, k.p FROM (SELECT id FROM t GROUP BY id) AS g JOIN k USING (id)", ["id"]),  # join after grouping
    ("WITH g AS (SELECT id, count(*) AS n FROM t GROUP BY id) SELECT id, n FROM g", ["id"]),  # final SELECT ungrouped
    ("WITH g AS (SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY id) = 1) SELECT id FROM g", ["id"]),
    ("SELECT id, x FROM t QUALIFY row_number() OVER (PARTITION BY id ORDER BY x) = 2", ["id"]),
    ("SELECT id, x FROM t QUALIFY row_number() OVER (PARTITION BY id ORDER BY x) <= 2", ["id"]),
    ("SELECT id, x FROM t QUALIFY rank() OVER (PARTITION BY id ORDER BY x) = 1", ["id"]),  # ties
    ("SELECT id, x FROM t QUALIFY dense_rank() OVER (PARTITION BY id ORDER BY x) = 1", ["id"]),
    ("SELECT id, x FROM t QUALIFY row_number() OVER (PARTITION BY id, x) = 1", ["id"]),  # partition wider than keys
    ("SELECT id, x FROM t QUALIFY row_number() OVER (PARTITION BY id) = 1 OR x > 1", ["id"]),
    ("SELECT id, x FROM t QUALIFY row_number() OVER (ORDER BY id) = 1 ", ["x"]),  # no partition: not looked at
    ("SELECT id, x FROM t QUALIFY row_number() OVER w = 1 WINDOW w AS (PARTITION BY id)", ["id"]),
    ("SELECT lower(id) AS id FROM t QUALIFY row_number() OVER (PARTITION BY id) = 1", ["id"]),
    ("SELECT u.id FROM t JOIN u USING (id) QUALIFY row_number() OVER (PARTITION BY id) = 1", ["id"]),
    ("SELECT id, unnest(xs) AS x FROM t QUALIFY row_number() OVER (PARTITION BY id) = 1", ["id"]),
    ("SELECT DISTINCT a, b FROM t", ["a"]),  # DISTINCT over more than the keys
    ("SELECT DISTINCT ON (lower(id)) id, x FROM t", ["id"]),
    ("SELECT DISTINCT ON (id, x) id, x, y FROM t", ["id"]),
    ("SELECT id, x FROM t", ["id"]),
    ("SELECT id FROM t GROUP BY id; SELECT 1", ["id"]),
    ("SELECT id, id FROM t GROUP BY id", ["id"]),  # the key output twice
]


@pytest.mark.parametrize("sql, keys", PROVEN)
def test_uniqueness_guaranteed_by_the_sql_is_recognised(sql, keys):
    from churnwh.sqlmodels.run_models import unique_by_structure

    assert unique_by_structure(sql, keys)
    with duckdb.connect() as db:  # and DuckDB agrees, on data full of duplicates and NULLs
        db.execute("CREATE TABLE t AS SELECT CASE WHEN i % 5 = 0 THEN NULL ELSE i % 4 END AS id, i % 3 AS a, "
                   "i % 2 AS b, i AS x, 'Y' || (i % 2) AS y, i % 2 AS v FROM range(40) AS r(i)")
        db.execute("CREATE TABLE u AS SELECT i % 2 AS v, i AS id FROM range(6) AS r(i)")
        quoted = ", ".join(keys)
        assert db.execute(f"SELECT count(*) FROM ({sql}) GROUP BY {quoted} HAVING count(*) > 1").fetchall() == []
        assert db.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0] > 1


@pytest.mark.parametrize("sql, keys", NOT_PROVEN)
def test_near_misses_are_not_taken_as_proof(sql, keys):
    from churnwh.sqlmodels.run_models import unique_by_structure

    assert not unique_by_structure(sql, keys)


def test_a_proven_grain_skips_its_screen_and_an_unproven_one_still_fails(con, write_models):
    from churnwh.sqlmodels import run_models as rm

    header = '/*\ngrain = ["customer_pseudonym"]\n[columns.customer_pseudonym]\nchecks = ["unique"]\n*/\n'
    sql = write_models(
        {
            "s/grouped.sql": header + "SELECT customer_pseudonym, sum(amount) AS total FROM raw.events GROUP BY 1",
            # unique per customer while the raw table is, but nothing in the SQL guarantees it
            "s/latest.sql": header + "SELECT customer_pseudonym, amount FROM raw.events WHERE amount >= 43",
        }
    )
    project = load_project(sql)
    grouped, latest = project.models["s.grouped"], project.models["s.latest"]
    assert [check.proven for check in rm.model_checks(grouped)] == [True, True]
    assert [check.proven for check in rm.model_checks(latest)] == [False, False]
    assert statuses(run_models(con, project, VARIABLES)) == {"s.grouped": "built", "s.latest": "built"}
    assert_build_fails_keeping_table(
        con, project, "s.latest", "INSERT INTO raw.events VALUES ('p43', 1000), ('p43', 1001)",
        f"{sql / 's' / 'latest.sql'}: check unique(customer_pseudonym) failed for model s.latest: "
        "2 bad rows (e.g. p43): fix the data or the model; the previous table is kept",
    )
    assert con.execute("SELECT count(*) FROM s.grouped").fetchone()[0] == 8  # rebuilt before it, checks passed
    # only the screen is skipped: checked one by one (the error path, Spark) a proven check still runs
    con.execute("INSERT INTO s.grouped VALUES ('p43', 1)")
    columns = warehouse.columns(con, "s.grouped")
    rm.verify(con, grouped, columns)
    with pytest.raises(ModelError, match=r"check unique\(customer_pseudonym\) failed for model s.grouped: 2 bad rows"):
        rm.verify(con, grouped, columns, screen=False)
