from __future__ import annotations

from churnwh.privacy import keys, pseudonyms
from churnwh.store import warehouse

KEY_A, KEY_B = bytes.fromhex("ab" * 32), bytes.fromhex("cd" * 32)


def test_customer_keys_cover_every_raw_table_and_follow_the_key(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.customers AS SELECT * FROM (VALUES ('C1'), ('C2')) t(customer_id)")
        con.execute("CREATE TABLE raw.orders AS SELECT * FROM (VALUES ('C2'), ('C3'), (NULL)) t(customer_id)")
        assert pseudonyms.refresh_customer_keys(con, KEY_A) == 3
        assert pseudonyms.refresh_customer_keys(con, KEY_A) == 0
        rows = dict(con.execute("SELECT * FROM raw.customer_keys").fetchall())
        assert rows == dict(zip(["C1", "C2", "C3"], keys.pseudonymize(["C1", "C2", "C3"], KEY_A)))
        con.execute("INSERT INTO raw.orders VALUES ('C4')")
        assert pseudonyms.refresh_customer_keys(con, KEY_A) == 1
        assert pseudonyms.refresh_customer_keys(con, KEY_B) == 4
        rows = dict(con.execute("SELECT * FROM raw.customer_keys").fetchall())
        assert rows["C1"] == keys.pseudonymize(["C1"], KEY_B)[0]


def test_content_fingerprint_changes_with_any_value(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        con.execute("CREATE TABLE t AS SELECT range AS i, 'x' AS s FROM range(100)")
        before = warehouse.content_fingerprint(con, "main.t")
        con.execute("UPDATE t SET s = 'y' WHERE i = 42")
        assert warehouse.content_fingerprint(con, "main.t") != before


def test_first_line_strips_quoted_values():
    error = ValueError("Conversion Error: Could not convert string 'canary@example.com' to INT32\nLINE 1: ...")
    assert warehouse.first_line(error) == "Conversion Error: Could not convert string '…' to INT32"
