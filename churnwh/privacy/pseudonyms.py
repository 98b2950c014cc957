"""``raw.customer_keys``: the keyed pseudonym of every customer id in the raw tables (the pseudonymize stage)."""

from __future__ import annotations

import duckdb

from churnwh.privacy import keys
from churnwh.store import faults
from churnwh.store.warehouse import CUSTOMER_ID, KEYLESS_SOURCES, RAW_SCHEMA, columns, get_meta, relations, set_meta


def refresh_customer_keys(con: duckdb.DuckDBPyConnection, key: bytes) -> int:
    """Keep ``raw.customer_keys`` (customer_id -> pseudonym) complete for every raw table.

    Pseudonyms are computed in Python (DuckDB has no HMAC) once per new customer id. A different key
    than the one the table was built with recomputes all of them, in one transaction with the key
    version. Returns the number computed.
    """
    table = f"{RAW_SCHEMA}.customer_keys"
    con.execute("BEGIN TRANSACTION")
    try:
        computed = _refresh_customer_keys(con, key, table)
        faults.point("pseudonymize.mid")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return computed


def _refresh_customer_keys(con: duckdb.DuckDBPyConnection, key: bytes, table: str) -> int:
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} (customer_id VARCHAR PRIMARY KEY, customer_pseudonym VARCHAR NOT NULL)")
    current_key = keys.key_id(key)
    if not keys.is_key_version(key, get_meta(con, "key_id")):
        con.execute(f"DELETE FROM {table}")
    sources = [
        relation
        for relation in sorted(relations(con))
        if relation.startswith(f"{RAW_SCHEMA}.") and relation != table and relation not in KEYLESS_SOURCES
        and CUSTOMER_ID in columns(con, relation)
    ]
    if not sources:
        set_meta(con, "key_id", current_key)
        return 0
    union = " UNION ".join(f"SELECT {CUSTOMER_ID} FROM {relation} WHERE {CUSTOMER_ID} IS NOT NULL" for relation in sources)
    new_ids = [
        row[0]
        for row in con.execute(
            f"SELECT DISTINCT CAST({CUSTOMER_ID} AS VARCHAR) FROM ({union}) AS ids "
            f"WHERE CAST({CUSTOMER_ID} AS VARCHAR) NOT IN (SELECT customer_id FROM {table}) ORDER BY 1"
        ).fetchall()
    ]
    if new_ids:
        import pyarrow as pa

        batch = pa.table({"customer_id": new_ids, "customer_pseudonym": keys.pseudonymize(new_ids, key)})
        con.register("_new_customer_keys", batch)
        try:
            con.execute(f"INSERT INTO {table} SELECT * FROM _new_customer_keys")
        finally:
            con.unregister("_new_customer_keys")
    set_meta(con, "key_id", current_key)
    return len(new_ids)
