from __future__ import annotations

import duckdb
import pytest

from churnwh import warehouse
from churnwh.errors import ModelError
from churnwh.project import load_project
from churnwh.run_models import run_models

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
