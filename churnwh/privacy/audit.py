"""The audit log: ``audit.audit_log`` in the private warehouse, append-only, no identifiers.

One row per event (a build, a publish, an erasure, a key rotation, a contacts export, a subject
report). Rows hold run ids, counts, fingerprints and versions, never a customer id, a name, a
pseudonym or key material. The code only ever INSERTs; each row carries the hash of the previous
row (``prev_hash``) and its own (``row_hash``), so an edited or deleted row breaks the chain
(``verify_chain``). The published file carries a copy of the log.

The chain is keyed: ``row_hash`` is HMAC-SHA256 under the audit key (``keys.load_audit_key``: a
0600 file beside the pseudonym key, or an environment variable; never in a warehouse file). With a
plain SHA-256 anyone who could write the file could delete rows and recompute every later hash;
without the audit key they cannot. What it proves: every entry was written by someone holding the
key, in this order, and none was removed from the middle or edited. What it does not prove: that
the newest entries were not cut off the end (truncation keeps a valid chain: compare the entry
count with a copy kept elsewhere, e.g. an older published file), that the key holder did not
rewrite the log, or that the logged counts are true. Readers of the published file cannot verify
the chain (they lack the key); the operator does, with `churnwh doctor`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import duckdb

from churnwh.config import Config

SCHEMA = "audit"
TABLE = f"{SCHEMA}.audit_log"
EVENTS = ("build", "publish", "erasure", "key_rotation", "contacts_export", "subject_report")

COLUMNS = {
    "entry_id": "Unique id of this audit entry.",
    "run_id": "Id of the build or command run that wrote the entry.",
    "logged_at": "When the entry was written (UTC).",
    "event": "What happened: build, publish, erasure, key_rotation, contacts_export, subject_report.",
    "config_fingerprint": "Fingerprint of the project configuration in force.",
    "key_version": "Public fingerprint of the pseudonym key in force (never the key).",
    "model_version": "Current model version (ml.model_runs), empty before the first model.",
    "rows_read": "Rows read from the raw source tables.",
    "rows_excluded": "Rows and customers excluded, by reason, as JSON counts (never who).",
    "erasures": "Customers erased by this event.",
    "outcome": "ok, or failed with the reason.",
    "detail": "Further counts and verification results as JSON (no identifiers).",
    "prev_hash": "row_hash of the previous entry (tamper evidence).",
    "row_hash": "HMAC-SHA256 (under the operator's audit key) over prev_hash and this entry's fields.",
}


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            entry_id VARCHAR NOT NULL, run_id VARCHAR NOT NULL, logged_at TIMESTAMP NOT NULL,
            event VARCHAR NOT NULL, config_fingerprint VARCHAR, key_version VARCHAR, model_version VARCHAR,
            rows_read BIGINT, rows_excluded VARCHAR, erasures BIGINT, outcome VARCHAR NOT NULL,
            detail VARCHAR, prev_hash VARCHAR, row_hash VARCHAR NOT NULL)"""
    )
    con.execute(
        f"COMMENT ON TABLE {TABLE} IS 'Append-only audit log of churnwh runs: counts and versions, no identifiers.'"
    )
    for column, text in COLUMNS.items():
        con.execute(f"COMMENT ON COLUMN {TABLE}.{column} IS '{text.replace(chr(39), chr(39) * 2)}'")


def config_fingerprint(config: Config) -> str:
    """A fingerprint of the configuration in force (paths relative to the project)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            try:
                return str(value.relative_to(config.root))
            except ValueError:
                return str(value)
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()
        return value

    fields = {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.name != "root"}
    for name, value in list(fields.items()):
        if dataclasses.is_dataclass(getattr(config, name)):
            fields[name] = plain(dataclasses.asdict(getattr(config, name)))
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def model_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The current model version from the registry, None before the first model."""
    from churnwh.store import warehouse

    # looked up, not tried: a failed statement would abort the caller's transaction (`forget`
    # before the first build)
    if "ml.model_runs" not in warehouse.relations(con):
        return None
    row = con.execute("SELECT version FROM ml.model_runs WHERE status = 'current'").fetchone()
    return row[0] if row else None


def _stored_key_version(con: duckdb.DuckDBPyConnection) -> str | None:
    from churnwh.store import warehouse

    try:
        return warehouse.get_meta(con, "key_id")
    except duckdb.CatalogException:
        return None


def new_id() -> str:
    # 32 hex characters, like every public id here: a 16-character one can be all digits and look like a card number
    return uuid.uuid4().hex


def _hash(prev: str | None, values: list[Any], key: bytes | None) -> str:
    """HMAC-SHA256 under the audit key; plain SHA-256 (``key`` None) only for logs written before
    the chain was keyed."""
    text = json.dumps([prev, *[str(v) if v is not None else None for v in values]], sort_keys=True)
    if key is None:
        return hashlib.sha256(text.encode()).hexdigest()
    return hmac.new(key, text.encode(), "sha256").hexdigest()


def chain_key(config: Config | None, *, create: bool = True) -> tuple[bytes | None, bool]:
    """The audit key of ``config`` (see ``keys.load_audit_key``); (None, False) without a config."""
    from churnwh.privacy import keys

    if config is None:
        return None, False
    return keys.load_audit_key(config.key, create=create)


def seal_unkeyed_log(con: duckdb.DuckDBPyConnection, key: bytes) -> int:
    """Re-chain a log written before the chain was keyed, once, when the audit key is first created,
    and only if its plain chain is intact. Returns the entries sealed.

    Only when the key is new: later, a log whose keyed chain breaks is reported, never re-sealed
    (else deleting rows and recomputing plain hashes would be laundered by the next append)."""
    rows = con.execute(f"SELECT * FROM {TABLE} ORDER BY logged_at, entry_id").fetchall()
    if not rows or _broken(rows, None):
        return 0
    prev = None
    for row in rows:
        *values, _, _ = row
        row_hash = _hash(prev, values, key)
        con.execute(f"UPDATE {TABLE} SET prev_hash = ?, row_hash = ? WHERE entry_id = ?", [prev, row_hash, values[0]])
        prev = row_hash
    return len(rows)


def append(
    con: duckdb.DuckDBPyConnection,
    *,
    event: str,
    run_id: str,
    config: Config | None = None,
    key_version: str | None = None,
    rows_read: int | None = None,
    rows_excluded: dict | None = None,
    erasures: int | None = None,
    outcome: str = "ok",
    detail: dict | None = None,
    also_into: str | None = None,
    defer_own: bool = False,
) -> dict[str, Any]:
    """Append one entry (and the same entry to ``also_into``, e.g. the published copy); return it.

    With ``defer_own`` the entry goes only to ``also_into``; the caller records it in the private
    log with ``insert`` once the action it describes has happened.
    """
    assert event in EVENTS, event
    ensure_table(con)
    key, created = chain_key(config)
    if created:
        seal_unkeyed_log(con, key)
    prev = con.execute(f"SELECT row_hash FROM {TABLE} ORDER BY logged_at DESC, entry_id DESC LIMIT 1").fetchone()
    prev_hash = prev[0] if prev else None

    entry = {
        "entry_id": new_id(),
        "run_id": run_id,
        "logged_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        "event": event,
        "config_fingerprint": config_fingerprint(config) if config is not None else None,
        "key_version": key_version if key_version is not None else _stored_key_version(con),
        "model_version": model_version(con),
        "rows_read": rows_read,
        "rows_excluded": json.dumps(rows_excluded, sort_keys=True) if rows_excluded is not None else None,
        "erasures": erasures,
        "outcome": outcome,
        "detail": json.dumps(detail, sort_keys=True, default=str) if detail is not None else None,
    }
    values = list(entry.values())
    entry["prev_hash"] = prev_hash
    entry["row_hash"] = _hash(prev_hash, values, key)
    if not defer_own:
        insert(con, entry)
    if also_into:
        insert(con, entry, also_into)
    return entry


def insert(con: duckdb.DuckDBPyConnection, entry: dict[str, Any], table: str = TABLE) -> None:
    placeholders = ", ".join("?" for _ in entry)
    con.execute(f"INSERT INTO {table} VALUES ({placeholders})", list(entry.values()))


def verify_chain(con: duckdb.DuckDBPyConnection, key: bytes | None, table: str = TABLE) -> int:
    """Number of entries whose hash chain is broken (0 when the log is intact) under the audit key.

    ``key`` None checks the plain SHA-256 chain of a log written before the chain was keyed."""
    return _broken(con.execute(f"SELECT * FROM {table} ORDER BY logged_at, entry_id").fetchall(), key)


def _broken(rows: list[tuple], key: bytes | None) -> int:
    broken, prev = 0, None
    for row in rows:
        *values, prev_hash, row_hash = row
        if prev_hash != prev or _hash(prev_hash, values, key) != row_hash:
            broken += 1
        prev = row_hash
    return broken
