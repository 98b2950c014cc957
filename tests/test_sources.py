"""`churnwh load`: every kind of source, and every kind of bad input (one line, exit 1, warehouse untouched)."""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.helpers import churnwh, private

HEADER = ["customer_id", "full_name", "region", "signup_date", "plan", "monthly_fee", "support_calls", "churned"]
NAMES = ["Ada Quill", "Bo Marsh", "Cy Tern", "Di Vale"]


def customer_rows(n: int = 400, seed: int = 3) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        calls = rng.randint(0, 6)
        fee = round(rng.uniform(10, 90), 2)
        churned = "Yes" if rng.random() < 0.1 + 0.1 * calls else "No"
        rows.append([f"K{i:05d}", f"{NAMES[i % 4]} {i}", rng.choice(["north", "south", "east"]),
                     f"202{rng.randint(2, 4)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                     rng.choice(["basic", "plus"]), str(fee), str(calls), churned])
    return rows


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER, delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def flat_project(tmp_path_factory) -> Path:
    """`churnwh init --flat` with a CSV of 400 customers, loaded once (copy it before changing it)."""
    project = tmp_path_factory.mktemp("flat") / "shop"
    result = churnwh(Path("."), "init", str(project), "--flat")
    assert result.returncode == 0, result.stderr
    write_csv(project / "data" / "customers.csv", customer_rows())
    loaded = churnwh(project, "load")
    assert loaded.returncode == 0, loaded.stderr
    return project


def copy(project: Path, tmp_path: Path) -> Path:
    target = tmp_path / "p"
    shutil.copytree(project, target)
    return target


def raw_snapshot(project: Path) -> list:
    with private(project) as con:
        return con.execute("SELECT * FROM raw.customers ORDER BY customer_id").fetchall()


def set_source(project: Path, old: str, new: str) -> None:
    config = project / "churnwh.toml"
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new, 1))


def test_csv_loads_with_declared_types_id_and_label(flat_project):
    with private(flat_project) as con:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_schema = 'raw' AND table_name = 'customers'").fetchall())
        assert types["customer_id"] == "VARCHAR" and types["signup_date"] == "DATE"
        assert types["monthly_fee"] == "DOUBLE" and types["support_calls"] == "INTEGER"
        assert con.execute("SELECT count(*), sum(churned) > 0, min(churned), max(churned) FROM raw.customers"
                           ).fetchone() == (400, True, 0, 1)


def test_unchanged_sources_are_not_reloaded(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    assert "sources unchanged" in churnwh(project, "load").stdout
    assert "1 sources loaded" in churnwh(project, "load", "--force").stdout


@pytest.mark.parametrize("kind", ["parquet", "duckdb", "glob"])
def test_other_kinds_of_source(flat_project, tmp_path, kind):
    project = copy(flat_project, tmp_path)
    source = project / "data" / "customers.csv"
    con = duckdb.connect()
    relation = f"read_csv('{source}', all_varchar = true)"
    if kind == "parquet":
        con.execute(f"COPY (SELECT * FROM {relation}) TO '{project}/data/customers.parquet' (FORMAT parquet)")
        set_source(project, 'path = "data/customers.csv"', 'path = "data/customers.parquet"')
    elif kind == "duckdb":
        other = duckdb.connect(str(project / "data" / "crm.duckdb"))
        other.execute(f"CREATE TABLE clients AS SELECT * REPLACE (CAST(monthly_fee AS DOUBLE) AS monthly_fee, "
                      f"CAST(signup_date AS DATE) AS signup_date) FROM {relation}")
        other.close()
        set_source(project, 'path = "data/customers.csv"', 'path = "data/crm.duckdb"\ntable = "main.clients"')
    else:
        rows = customer_rows()
        write_csv(project / "data" / "parts" / "a.csv", rows[:150])
        write_csv(project / "data" / "parts" / "b.csv", rows[150:])
        set_source(project, 'path = "data/customers.csv"', 'path = "data/parts/*.csv"')
    con.close()
    result = churnwh(project, "load")
    assert result.returncode == 0, result.stderr
    assert raw_snapshot(project) == raw_snapshot(flat_project)


def check_bad(project: Path, *expected: str, absent: tuple[str, ...] = ()) -> str:
    before = raw_snapshot(project)
    result = churnwh(project, "load")
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and message.startswith("error: "), message
    for text in expected:
        assert text in message, message
    for text in absent:
        assert text not in message, message
    assert raw_snapshot(project) == before  # the warehouse is untouched
    return message


def test_missing_and_unexpected_column_all_at_once(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    header = [h if h != "plan" else "plan_name" for h in HEADER]
    rows = customer_rows()
    rows[4][3] = "04/05/2023"
    write_csv(project / "data" / "customers.csv", rows, header)
    message = check_bad(project, "column plan is missing", "column plan_name is in the file but not declared",
                        "column signup_date", "row 5", absent=("04/05/2023", "K00004"))
    assert "problems" in message


def test_wrong_delimiter_is_named(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    write_csv(project / "data" / "customers.csv", customer_rows(), delimiter=";")
    check_bad(project, "source customers", "';'-delimited", 'delimiter = ";"')


def test_header_only(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    write_csv(project / "data" / "customers.csv", [])
    check_bad(project, "source customers", "no data rows")


def test_mixed_date_formats_name_column_and_row(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    rows = customer_rows()
    rows[6][3] = "17/03/2023"
    rows[9][3] = "03-17-2023"
    write_csv(project / "data" / "customers.csv", rows)
    check_bad(project, "column signup_date", "2 values are not a date", "first at row 7", "date_format",
              absent=("17/03/2023", "03-17-2023"))


def test_wrong_type(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    rows = customer_rows()
    rows[2][5] = "twelve"
    write_csv(project / "data" / "customers.csv", rows)
    check_bad(project, "column monthly_fee", "DOUBLE", "row 3", absent=("twelve",))


def test_a_decimal_in_an_integer_column_is_reported_not_rounded(flat_project, tmp_path):
    """DuckDB casts '2.5' to the integer 3 (and '1e3' to 1000): the loader must refuse, not round."""
    project = copy(flat_project, tmp_path)
    rows = customer_rows()
    rows[2][6] = "2.5"
    rows[7][6] = "1e3"
    write_csv(project / "data" / "customers.csv", rows)
    check_bad(project, "column support_calls", "2 values do not parse as INTEGER", "row 3", absent=("2.5", "1e3"))


def test_label_values_other_than_declared(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    rows = customer_rows()
    rows[10][7] = "maybe"
    rows[11][7] = "yes "
    write_csv(project / "data" / "customers.csv", rows)
    check_bad(project, "label column churned", "2 rows have values", "row 11", "positive ['Yes']",
              absent=("maybe",))


def test_duplicate_customer_ids_in_a_flat_table(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    rows = customer_rows()
    rows[20][0] = rows[3][0]
    write_csv(project / "data" / "customers.csv", rows)
    check_bad(project, "id column customer_id", "1 customer id appears more than once", "row 21",
              absent=(rows[3][0],))


def test_missing_source_path(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    set_source(project, 'path = "data/customers.csv"', 'path = "data/nowhere.csv"')
    check_bad(project, "source customers", "nowhere.csv does not exist", "--source customers=PATH")


def test_source_path_override_on_the_command_line(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    elsewhere = write_csv(tmp_path / "elsewhere.csv", customer_rows(50))
    result = churnwh(project, "load", "--source", f"customers={elsewhere}")
    assert result.returncode == 0, result.stderr
    assert len(raw_snapshot(project)) == 50
    bad = churnwh(project, "load", "--source", "customer=x.csv")
    assert bad.returncode == 1 and "did you mean 'customers'" in bad.stderr


@pytest.mark.parametrize("old,new,hint", [
    ("id_column = ", "id_colum = ", "did you mean 'id_column'"),
    ("[source]\nkind", "[source]\nknd", "did you mean 'kind'"),
    ('class = "quasi_identifier"', 'clas = "quasi_identifier"', "did you mean 'class'"),
])
def test_config_key_typo_suggests_the_closest_key(flat_project, tmp_path, old, new, hint):
    project = copy(flat_project, tmp_path)
    set_source(project, old, new)
    result = churnwh(project, "load")
    assert result.returncode == 1 and hint in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_undeclared_class_and_bad_type_are_config_errors(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    set_source(project, 'plan = { type = "VARCHAR", class = "plain" }', 'plan = { type = "TEXTY", class = "plain" }')
    result = churnwh(project, "load")
    assert result.returncode == 1 and "sources.customers.columns.plan.type" in result.stderr


def test_check_only_reports_and_writes_nothing(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    shutil.rmtree(project / "warehouse")
    result = churnwh(project, "load", "--check")
    assert result.returncode == 0 and "400 rows" in result.stdout
    assert not (project / "warehouse" / "private.duckdb").exists()


def test_first_load_failing_leaves_no_warehouse(flat_project, tmp_path):
    project = copy(flat_project, tmp_path)
    shutil.rmtree(project / "warehouse")
    write_csv(project / "data" / "customers.csv", [])
    result = churnwh(project, "load")
    assert result.returncode == 1 and not (project / "warehouse" / "private.duckdb").exists()


# --- allow_empty: a consent file where nobody has objected ---------------------------------------------------

CONSENT_HEADER = ["event_id", "customer_id", "purpose", "action", "event_ts", "source", "regulation"]


@pytest.fixture
def consent_project(tmp_path) -> Path:
    """`churnwh init --flat --consent` with a header-only consent file (nobody has objected yet)."""
    consent = write_csv(tmp_path / "consent.csv", [], CONSENT_HEADER)
    project = tmp_path / "shop"
    result = churnwh(Path("."), "init", str(project), "--flat", "--consent", str(consent))
    assert result.returncode == 0 and "(0 decisions)" in result.stdout, result.stderr
    write_csv(project / "data" / "customers.csv", customer_rows(60))
    return project


def test_a_header_only_consent_file_loads_as_no_rows_only_with_allow_empty(consent_project):
    project = consent_project
    assert "allow_empty = true" in (project / "churnwh.toml").read_text()
    loaded = churnwh(project, "load")
    assert loaded.returncode == 0 and "2 sources loaded, 60 rows" in loaded.stdout, loaded.stderr
    with private(project) as con:
        assert con.execute("SELECT count(*) FROM raw.consent_events").fetchone()[0] == 0
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_schema = 'raw' AND table_name = 'consent_events'").fetchall())
        assert types["event_ts"] == "TIMESTAMP" and types["customer_id"] == "VARCHAR"
    set_source(project, "allow_empty = true", "")  # without it a header-only file is an error, as for any source
    check_bad(project, "source consent_events", "has a header but no data rows", "allow_empty = true")


@pytest.mark.parametrize("old,new,expected", [
    ("allow_empty = true", 'allow_empty = "yes"', "sources.consent_events.allow_empty"),
    ('label = "churned"', 'label = "churned"\nallow_empty = true', "the labelled customer table"),
])
def test_allow_empty_is_checked_by_config(consent_project, old, new, expected):
    set_source(consent_project, old, new)
    result = churnwh(consent_project, "load")
    message = result.stderr.strip()
    assert result.returncode == 1 and expected in message and len(message.splitlines()) == 1, message


def test_a_declared_consent_source_that_no_model_applies_stops_the_load(consent_project):
    """Objectors would be profiled: the load refuses before anything is written."""
    from churnwh.sources.scaffold import CONSENT_FILTER

    staging = consent_project / "sql" / "staging" / "customers.sql"
    staging.write_text(staging.read_text().replace(CONSENT_FILTER, ""))
    result = churnwh(consent_project, "load")
    message = result.stderr.strip()
    assert result.returncode == 1 and len(message.splitlines()) == 1, message
    assert "sources.consent_events is declared but marts.training_set does not read it" in message
    assert not (consent_project / "warehouse" / "private.duckdb").exists()
