"""Issue 14: the audit log's hash chain is keyed, so deleting entries and recomputing the hashes
is detected (a plain SHA-256 chain could be recomputed by anyone who can write the file)."""

from __future__ import annotations

import secrets
import shutil

import duckdb

from churnwh.privacy import audit
from tests.helpers import churnwh


def recompute_plain_chain(con: duckdb.DuckDBPyConnection, key: bytes | None) -> None:
    """The attacker's move: re-chain the remaining rows with a hash they can compute."""
    rows = con.execute(f"SELECT * FROM {audit.TABLE} ORDER BY logged_at, entry_id").fetchall()
    prev = None
    for row in rows:
        *values, _, _ = row
        row_hash = audit._hash(prev, values, key)
        con.execute(f"UPDATE {audit.TABLE} SET prev_hash = ?, row_hash = ? WHERE entry_id = ?", [prev, row_hash, values[0]])
        prev = row_hash


def test_deleting_entries_and_recomputing_the_chain_is_detected(built_project, tmp_path):
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    someone = None
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        someone = con.execute("SELECT min(customer_id) FROM raw.customer_keys").fetchone()[0]
    forgotten = churnwh(project, "forget", someone)
    assert forgotten.returncode == 0, forgotten.stderr
    key = bytes.fromhex((project / ".churnwh.audit.key").read_text().strip())
    assert oct((project / ".churnwh.audit.key").stat().st_mode & 0o777) == "0o600"
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        assert audit.verify_chain(con, key) == 0
        assert con.execute(f"SELECT count(*) FROM {audit.TABLE} WHERE event = 'erasure'").fetchone()[0] == 1
        con.execute(f"DELETE FROM {audit.TABLE} WHERE event = 'erasure'")
        recompute_plain_chain(con, None)  # what passed before the chain was keyed
        assert audit.verify_chain(con, None) == 0
        assert audit.verify_chain(con, key) > 0
        recompute_plain_chain(con, secrets.token_bytes(32))  # a key of the attacker's own
        assert audit.verify_chain(con, key) > 0
    doctor = churnwh(project, "doctor")
    assert doctor.returncode != 0 and "audit log's keyed chain is broken" in doctor.stdout + doctor.stderr
    # and the next build does not launder it: the chain stays broken
    rebuilt = churnwh(project, "build")
    assert rebuilt.returncode == 0, rebuilt.stderr
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        assert audit.verify_chain(con, key) > 0


def test_a_log_written_before_the_chain_was_keyed_is_sealed_once(built_project, tmp_path):
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    (project / ".churnwh.audit.key").unlink()
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        recompute_plain_chain(con, None)  # as an older churnwh wrote it
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    key = bytes.fromhex((project / ".churnwh.audit.key").read_text().strip())
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        assert audit.verify_chain(con, key) == 0
        assert con.execute(f"SELECT count(*) FROM {audit.TABLE}").fetchone()[0] >= 4
