"""User-supplied text reaching SQL or the terminal, as an attacker would write it: a customer value
with an apostrophe in a DuckDB error, a [vars] key that is SQL, a Parquet column name that ends a
comment in a scaffolded model and reads the pseudonym key."""

from __future__ import annotations

from pathlib import Path

import duckdb

from churnwh.store import warehouse
from tests.helpers import churnwh
from tests.test_adversary_ids import flat_project
from tests.test_sources import customer_rows

NOTE = "Pat O'Brien 35 asked to be called at +1-555-0100"
CANARIES = ("Brien", "asked to be called", "555-0100", "Pat O")


def test_a_value_with_an_apostrophe_does_not_reach_the_terminal_in_a_duckdb_error(tmp_path):
    rows = customer_rows(60)
    rows[4][4] = NOTE  # a free-text value where a plan was expected
    project = flat_project(tmp_path, rows)
    (project / "sql" / "staging" / "plan_number.sql").write_text(
        "SELECT CAST(plan AS INTEGER) AS plan_number FROM raw.customers\n")
    result = churnwh(project, "build")
    said = result.stdout + result.stderr
    assert result.returncode == 1 and "plan_number" in result.stderr and "INT" in result.stderr, said
    assert not [canary for canary in CANARIES if canary in said], said


def test_first_line_scrubs_every_quoting_a_value_can_break():
    for text in (f"Conversion Error: Could not convert string '{NOTE}' to INT32",
                 f"Conversion Error: string '{NOTE}",  # a lone quote: the rest of the line goes
                 f"Conversion Error: string 'x\n{NOTE}' to INT32"):
        line = warehouse.first_line(Exception(text))
        assert line.startswith("Conversion Error:") and not [c for c in CANARIES if c in line], line
    assert warehouse.first_line(Exception("Binder Error: no quotes here")) == "Binder Error: no quotes here"


def test_a_vars_key_that_is_sql_is_refused_whole_and_values_are_bound(tmp_path):
    project = flat_project(tmp_path, customer_rows(60))
    config = project / "churnwh.toml"
    plain = config.read_text()
    assert "\n[vars]\n" in plain
    config.write_text(plain.replace("\n[vars]\n", '\n[vars]\n"x = 1; CREATE SCHEMA pwn; SELECT 1 -- .z" = 1\n', 1))
    result = churnwh(project, "build")
    message = result.stderr.strip()
    assert result.returncode == 1 and len(message.splitlines()) == 1 and "[vars] name" in message, message
    private = project / "warehouse" / "private.duckdb"
    if private.exists():
        with duckdb.connect(str(private), read_only=True) as con:
            assert not con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'pwn'").fetchone()[0]

    with duckdb.connect() as con:
        warehouse.set_variables(con, {"note": "1'; CREATE SCHEMA pwn; --", "as_of": __import__("datetime").date(2025, 1, 1)})
        assert con.execute("SELECT getvariable('note'), typeof(getvariable('as_of'))").fetchone() == (
            "1'; CREATE SCHEMA pwn; --", "DATE")
        assert not con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'pwn'").fetchone()[0]
