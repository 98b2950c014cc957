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


# --- finding 1: a column name that becomes SQL and publishes the pseudonym key -----------------------

PAYLOAD = ("email\nSELECT k.customer_pseudonym, (SELECT content FROM read_text('**/.churnwh.key')) AS value_bucket "
           "FROM raw.customer_keys AS k --")


def parquet_with_column(path: Path, name: str, rows: int = 200) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = customer_rows(rows)
    columns = {"customer_id": [r[0] for r in data], name: [f"p{i}@example.org" for i in range(rows)],
               "plan": [r[4] for r in data], "monthly_fee": [float(r[5]) for r in data],
               "support_calls": [int(r[6]) for r in data], "churned": [r[7] for r in data]}
    pq.write_table(pa.table(columns), path)
    return path


def key_fragment_in(data: bytes, key_hex: str) -> bool:
    from churnwh.privacy import canary

    return not canary._windows(data.decode("latin-1").lower()).isdisjoint(canary._windows(key_hex))


def test_a_column_name_that_ends_a_comment_is_refused_by_init(tmp_path):
    data = parquet_with_column(tmp_path / "customers.parquet", PAYLOAD)
    result = churnwh(Path("."), "init", str(tmp_path / "proj"), "--flat", "--from", str(data))
    message = result.stderr.strip()
    assert result.returncode == 1 and len(message.splitlines()) == 1, result.stdout + message
    assert "column number 2" in message and "line break" in message and "read_text" not in message
    assert not (tmp_path / "proj").exists()


def test_names_with_quotes_and_comment_ends_round_trip_into_toml_and_sql(tmp_path):
    import tomllib

    odd = 'plan "tier" */ -- #x'
    data = parquet_with_column(tmp_path / "shop\nx = 1 #.parquet", odd, rows=60)  # the file name, in a comment
    result = churnwh(Path("."), "init", str(tmp_path / "proj"), "--flat", "--from", str(data))
    assert result.returncode == 0, result.stderr
    config = tomllib.loads((tmp_path / "proj" / "churnwh.toml").read_text())
    assert odd in config["sources"]["customers"]["columns"] and "x" not in config
    check = churnwh(tmp_path / "proj", "load", "--check")
    assert check.returncode == 0 and "60 rows" in check.stdout, check.stderr


def test_a_model_reading_the_key_is_refused_and_the_key_never_reaches_the_published_file(tmp_path):
    """The same payload written as a model by hand: the lineage proof refuses the file read with one
    line and the published file stays as it was; DuckDB's own sandbox refuses the read; and a key that
    reached a published table anyway (hex, upper-case or base64) fails the publish check."""
    import base64

    from churnwh.config import load_config
    from churnwh.errors import ChurnwhError
    from churnwh.privacy import publish

    project = flat_project(tmp_path, customer_rows(200))
    built = churnwh(project, "build")
    assert built.returncode == 0, built.stderr
    published = project / "warehouse" / "churn.duckdb"
    before = published.read_bytes()
    key_hex = (project / ".churnwh.key").read_text().strip()

    leak = project / "sql" / "marts" / "leak.sql"
    for sql in ("SELECT content AS value_bucket FROM read_text('**/.churnwh.key')",
                "SELECT (SELECT content FROM read_text('.churnwh.key')) AS value_bucket FROM raw.customer_keys",
                "SELECT * FROM query('SELECT content FROM read_text(''.churnwh.key'')')",
                "SELECT getenv('CHURNWH_KEY') AS value_bucket FROM raw.customer_keys"):
        leak.write_text(sql + "\n")
        result = churnwh(project, "build")
        message = result.stderr.strip()
        assert result.returncode == 1 and "reads outside the warehouse" in message and "leak.sql" in message, message
        assert len(message.splitlines()) == 1 and key_hex not in message
        assert published.read_bytes() == before and not key_fragment_in(before, key_hex)
    leak.unlink()

    with warehouse.connect(project / "warehouse" / "private.duckdb", sandboxed=True) as con:
        for attempt in ("SELECT content FROM read_text('**/.churnwh.key')", "SET enable_external_access = true"):
            try:
                con.execute(attempt)
                raise AssertionError(f"the sandbox ran {attempt}")
            except duckdb.Error:
                pass

    config = load_config(project)
    key = bytes.fromhex(key_hex)
    for planted in (key_hex, key_hex.upper()[8:40], base64.b64encode(key).decode()):
        with warehouse.open_private(config) as con:
            con.execute("CREATE OR REPLACE TEMP TABLE keep AS SELECT * FROM ml.churn_drivers")
            con.execute("UPDATE ml.churn_drivers SET value_bucket = ? WHERE rank = 1 AND customer_pseudonym = "
                        "(SELECT min(customer_pseudonym) FROM ml.churn_drivers)", [planted])
            try:
                publish.publish(con, config, run_id="leaktest")
                raise AssertionError("a published key passed the publish check")
            except ChurnwhError as err:
                assert "churn_drivers.value_bucket holds the pseudonym key" in str(err) and planted not in str(err)
            finally:
                con.execute("DELETE FROM ml.churn_drivers")
                con.execute("INSERT INTO ml.churn_drivers SELECT * FROM keep")
        assert published.read_bytes() == before
