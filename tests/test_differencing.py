"""Differencing attacks on the published segment tables, and one k-anonymity setting everywhere.

Issue 14, finding 3: subtracting the shown segments of a cohort (or month) from its 'all' row
recovered hidden cohorts of 1-4 customers; `[publish] k_anonymity` never reached the SQL models;
the publish check ignored cohort_customers and active_customers.
"""

from __future__ import annotations

import json
import shutil

import duckdb
import polars as pl

from tests.helpers import churnwh

SEGMENT_TABLES = {"cohort_retention": ("cohort_customers", ["cohort_month", "months_since_signup"]),
                  "churn_monthly": ("active_customers", ["month"])}
GROUP_SIZES = ("customers", "cohort_customers", "active_customers")


def published_tables(project) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True) as con:
        names = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {name: pl.from_arrow(con.sql(f'SELECT * FROM "{name}"').to_arrow_table()) for name in names}


def subtraction_attack(table: pl.DataFrame, size: str, grain: list[str]) -> pl.Series:
    """Per grain and segment type: the 'all' row minus the sum of the shown segments, which is the
    size of the hidden segments taken together."""
    totals = table.filter(pl.col("segment_type") == "all").select(*grain, pl.col(size).alias("total"))
    shown = (table.filter(pl.col("segment_type") != "all").group_by(*grain, "segment_type")
             .agg(pl.col(size).sum().alias("shown")))
    return totals.join(shown, on=grain).select((pl.col("total") - pl.col("shown")).alias("hidden"))["hidden"]


def recovered_small_groups(project, k: int) -> tuple[int, int]:
    """(hidden groups of 1..k-1 customers recovered, hidden groups of any size) over the segment tables."""
    tables = published_tables(project)
    small = hidden = 0
    for name, (size, grain) in SEGMENT_TABLES.items():
        remainders = subtraction_attack(tables[name], size, grain)
        small += int(((remainders > 0) & (remainders < k)).sum())
        hidden += int((remainders > 0).sum())
    return small, hidden


def test_no_hidden_segment_is_recovered_by_subtraction(built_project):
    project, _ = built_project
    small, hidden = recovered_small_groups(project, 5)
    assert hidden > 0  # segments were hidden, so the attack had something to look for
    assert small == 0, f"{small} hidden groups of fewer than 5 customers recovered by subtraction"


def test_k_anonymity_reaches_the_models_and_every_count_column(built_project, tmp_path):
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("k_anonymity = 5", "k_anonymity = 20"))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    tables = published_tables(project)
    assert tables["churn_monthly"].height > 0  # (a 400-customer demo has no cohort of 20)
    for name, table in tables.items():
        for column in GROUP_SIZES:
            if column in table.columns:
                assert (table[column] < 20).sum() == 0, f"{name}.{column} shows a group smaller than 20"
    small, _ = recovered_small_groups(project, 20)
    assert small == 0
    entry = tables["audit_log"].filter(pl.col("event") == "publish").sort("logged_at")[-1]
    assert json.loads(entry["detail"].item())["k"] == 20


def test_publish_refuses_a_model_that_allows_differencing(built_project, tmp_path):
    """A project's own segment model without complementary suppression: the publish check finds the
    hidden groups by subtraction and keeps the old published file."""
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    published = project / "warehouse" / "churn.duckdb"
    before = published.read_bytes()
    model = project / "sql" / "marts" / "churn_monthly.sql"
    text = model.read_text()
    guard = "  AND NOT (segment_type <> 'all' AND suppressed > 0 AND suppressed < k AND size_order = 1)\n"
    assert guard in text
    model.write_text(text.replace(guard, ""))
    result = churnwh(project, "build")
    assert result.returncode != 0
    assert "churn_monthly has" in result.stderr and "subtracting its segments from the all row" in result.stderr
    assert published.read_bytes() == before


def test_k_anonymity_in_vars_is_refused(tmp_path):
    from tests.helpers import make_project

    project = make_project(tmp_path / "p", extra="")
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("[vars]\n", "[vars]\nk_anonymity = 2\n"))
    result = churnwh(project, "build")
    assert result.returncode != 0
    assert "vars.k_anonymity" in result.stderr and "[publish] k_anonymity" in result.stderr
