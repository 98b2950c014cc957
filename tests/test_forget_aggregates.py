"""Issue 14: after `forget`, the aggregates the customer contributed to are rebuilt before the
republish (they were republished unchanged until the next build)."""

from __future__ import annotations

import shutil

import duckdb

from tests.helpers import churnwh, private


def published(project, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def test_forget_rebuilds_the_aggregates_before_republishing(built_project, tmp_path):
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    with private(project) as con:
        # a consenting customer in a published cohort big enough to stay published without them
        customer, cohort = con.execute(
            """SELECT k.customer_id, CAST(date_trunc('month', p.period_start) AS DATE) AS cohort
               FROM staging.active_periods AS p JOIN raw.customer_keys AS k USING (customer_pseudonym)
               JOIN marts.cohort_retention AS r
                 ON r.cohort_month = date_trunc('month', p.period_start) AND r.segment_type = 'all'
                AND r.months_since_signup = 0 AND r.cohort_customers >= 8
               WHERE p.period_number = 1 ORDER BY k.customer_id LIMIT 1""").fetchone()
    query = ("SELECT cohort_customers FROM cohort_retention WHERE cohort_month = ? AND segment_type = 'all' "
             "AND months_since_signup = 0")
    before = published(project, query, [cohort])[0][0]
    tables_before = {row[0] for row in published(project, "SELECT table_name FROM duckdb_tables()")}
    assert {"feature_importance", "drift"} <= tables_before
    forgotten = churnwh(project, "forget", customer)
    assert forgotten.returncode == 0, forgotten.stderr
    assert published(project, query, [cohort])[0][0] == before - 1
    with private(project) as con:
        for table in ("cohort_retention", "churn_monthly", "revenue_churn_monthly"):
            private_rows = sorted(con.execute(f"SELECT * FROM marts.{table}").fetchall())
            assert sorted(published(project, f"SELECT * FROM {table}")) == private_rows, table
    # the model was trained on the customer and withdrawn: what it computed is not republished
    tables_after = {row[0] for row in published(project, "SELECT table_name FROM duckdb_tables()")}
    assert not {"feature_importance", "drift"} & tables_after
    rebuilt = churnwh(project, "build")
    assert rebuilt.returncode == 0, rebuilt.stderr
    tables_rebuilt = {row[0] for row in published(project, "SELECT table_name FROM duckdb_tables()")}
    assert {"feature_importance", "drift"} <= tables_rebuilt
