"""Issue 14: exact birth dates must not leave raw, whatever the SQL looks like.

The generalisation check was a substring test: `coalesce(birth_date, date_trunc('month', birth_date))`
contained `date_trunc(` and passed, keeping exact dates. The publish check looked at text columns
only, and data_quality.freshest_date published the latest birth month (one person's).
"""

from __future__ import annotations

import shutil

import duckdb
import pytest

from tests.helpers import churnwh, make_project, private

GENERALISATION = """CASE
        WHEN birth_date >= DATE '1900-01-01' AND birth_date <= coalesce(signup_date, birth_date)
            THEN CAST(date_trunc('month', birth_date) AS DATE)
    END AS birth_month"""


@pytest.mark.parametrize("expression", [
    "coalesce(birth_date, date_trunc('month', birth_date))",  # the exact date whenever it is there
    "CAST(date_trunc('day', birth_date) AS DATE)",  # a 'generalisation' to the day
    "CAST(date_trunc('month', birth_date) + to_days(CAST(day(birth_date) - 1 AS INTEGER)) AS DATE)",  # day added back
])
def test_lineage_refuses_a_generalisation_that_keeps_the_exact_date(tmp_path, expression):
    project = make_project(tmp_path / "p", customers=60)
    model = project / "sql" / "staging" / "customers.sql"
    text = model.read_text()
    assert GENERALISATION in text
    model.write_text(text.replace(GENERALISATION, f"{expression} AS birth_month"))
    result = churnwh(project, "build")
    assert result.returncode != 0
    assert "lineage violation" in result.stderr and "birth_month" in result.stderr
    assert not (project / "warehouse" / "churn.duckdb").exists()


def test_freshness_is_never_a_quasi_identifier(built_project):
    project, _ = built_project
    with duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True) as con:
        freshest = dict(con.execute("SELECT model, freshest_date FROM data_quality").fetchall())
    with private(project) as con:
        latest_birth_month = con.execute("SELECT max(birth_month) FROM staging.customers").fetchone()[0]
    assert latest_birth_month is not None
    # staging.customers has two dates, birth_month and signup_date, both quasi-identifiers
    assert freshest["staging.customers"] is None
    assert latest_birth_month not in set(freshest.values())
    assert freshest["features.customer_features"] is not None  # observation_date is a business date


def test_publish_check_finds_exact_dates_in_date_columns(built_project, tmp_path):
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    with private(project) as con:
        births = [row[0] for row in con.execute(
            "SELECT CAST(birth_date AS DATE) FROM raw.customers WHERE birth_date IS NOT NULL LIMIT 3").fetchall()]
    with duckdb.connect(str(project / "warehouse" / "churn.duckdb")) as con:  # a leaky table, as a bad model would make
        con.execute("CREATE TABLE cohort_birthdays (day DATE)")
        con.executemany("INSERT INTO cohort_birthdays VALUES (?)", [[day] for day in births])
    doctor = churnwh(project, "doctor")
    assert doctor.returncode != 0
    assert "cohort_birthdays.day holds 3 values equal to a raw direct-identifier value" in doctor.stdout + doctor.stderr
