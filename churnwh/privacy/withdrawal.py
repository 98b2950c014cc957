"""Model versions withdrawn because a customer they were trained on was erased or objected.

An erasure that a rollback could undo is no erasure: a model trained on an erased customer's rows
must never score again. Each training run records its subjects (the pseudonyms of the training
set, ``ml.model_training_subjects``: private, deleted with the customer by ``forget`` and re-keyed
by a key rotation). When ``forget`` erases a customer, or a build sees a customer's (new) objection
to profiling, every version trained on that customer is marked ``withdrawn`` in ``ml.model_runs``
and its artifact removed (the current one's once a retrain replaced it): rollback refuses it,
scoring refuses it, and the next build trains a new current model. A version without recorded
subjects (trained before they were recorded) is withdrawn on any erasure that found a customer,
since nobody can tell whether the customer was in it; for objections it is kept (a limit).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa

from churnwh.store import warehouse

SUBJECTS = "ml.model_training_subjects"
RUNS = "ml.model_runs"
WITHDRAWN = "withdrawn"
REASONS = {
    "erasure": "withdrawn: trained on data of a customer who was since erased",
    "objection": "withdrawn: trained on data of a customer who since objected to profiling",
}


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute(f"CREATE TABLE IF NOT EXISTS {SUBJECTS} (version VARCHAR NOT NULL, customer_pseudonym VARCHAR NOT NULL)")
    comment = "Private: the customers each model version was trained on, so an erasure or objection can withdraw it."
    con.execute(f"COMMENT ON TABLE {SUBJECTS} IS {warehouse.sql_literal(comment)}")


def subjects_sql(version: str, relation: str, id_column: str) -> tuple[str, list]:
    """The statement (SQL, parameters) that records ``version``'s subjects: the ids of ``relation``."""
    column = '"' + id_column.replace('"', '""') + '"'
    return (f"INSERT INTO {SUBJECTS} SELECT DISTINCT ?, CAST({column} AS VARCHAR) FROM {relation} "
            f"WHERE {column} IS NOT NULL", [version])


def withdraw(con: duckdb.DuckDBPyConnection, pseudonyms_sql: str, reason: str, *, unrecorded: bool) -> list[str]:
    """Mark withdrawn every version (not yet withdrawn) trained on a pseudonym of ``pseudonyms_sql``
    (and, if ``unrecorded``, every version without recorded subjects). Returns the versions."""
    if RUNS not in warehouse.relations(con):
        return []
    ensure_table(con)
    versions = [row[0] for row in con.execute(
        f"""SELECT version FROM {RUNS} AS r WHERE status <> '{WITHDRAWN}' AND (
                EXISTS (SELECT 1 FROM {SUBJECTS} AS s WHERE s.version = r.version
                        AND s.customer_pseudonym IN ({pseudonyms_sql}))
                OR (? AND NOT EXISTS (SELECT 1 FROM {SUBJECTS} AS s WHERE s.version = r.version)))
            ORDER BY version""", [unrecorded]).fetchall()]
    for version in versions:
        con.execute(f"UPDATE {RUNS} SET status = '{WITHDRAWN}', decision = decision || '; ' || ? WHERE version = ?",
                    [REASONS[reason], version])
    return versions


def withdraw_for_erasure(con: duckdb.DuckDBPyConnection, ids: pa.Table) -> list[str]:
    """Before the deletion (in its transaction): withdraw the versions trained on customers ``ids``
    (one column customer_id), and those without recorded subjects if any of the ids is a customer."""
    keys = f"{warehouse.RAW_SCHEMA}.customer_keys"
    if keys not in warehouse.relations(con):
        return []
    con.register("_withdraw_ids", ids)
    try:
        erased = f"SELECT customer_pseudonym FROM {keys} WHERE customer_id IN (SELECT customer_id FROM _withdraw_ids)"
        found = con.execute(f"SELECT count(*) FROM ({erased})").fetchall()[0][0] > 0
        return withdraw(con, erased, "erasure", unrecorded=found) if found else []
    finally:
        con.unregister("_withdraw_ids")


def withdraw_for_objections(con: duckdb.DuckDBPyConnection, as_of: dt.date | None = None,
                            grace_days: int = 0) -> list[str]:
    """Withdraw the versions trained on a customer whose latest profiling decision is a withdrawal (with
    ``grace_days``: one in force at least that many days before ``as_of``)."""
    if "staging.consent_state" not in warehouse.relations(con):
        return []
    objectors = ("SELECT customer_pseudonym FROM staging.consent_state "
                 "WHERE purpose = 'profiling' AND is_latest AND state = 'withdrawn'")
    if grace_days and as_of is not None:
        objectors += f" AND valid_from <= DATE '{(as_of - dt.timedelta(days=grace_days)).isoformat()}'"
    return withdraw(con, objectors, "objection", unrecorded=False)


def has_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a model version is current (none is after the current one was withdrawn)."""
    return RUNS in warehouse.relations(con) and con.execute(
        f"SELECT count(*) FROM {RUNS} WHERE status = 'current'").fetchall()[0][0] > 0


def withdrawn_reason(con: duckdb.DuckDBPyConnection, version: str) -> str | None:
    """Why ``version`` was withdrawn (None when it was not)."""
    if RUNS not in warehouse.relations(con):
        return None
    rows = con.execute(f"SELECT status, decision FROM {RUNS} WHERE version = ?", [version]).fetchall()
    row = rows[0] if rows else None
    if row is None or row[0] != WITHDRAWN:
        return None
    return next((text.removeprefix("withdrawn: ") for text in REASONS.values() if text in row[1]), "withdrawn")


def withdrawn_artifacts(con: duckdb.DuckDBPyConnection, models_root: Path) -> list[Path]:
    """Artifact folders of withdrawn versions that are still on disk."""
    if RUNS not in warehouse.relations(con):
        return []
    versions = [row[0] for row in con.execute(f"SELECT version FROM {RUNS} WHERE status = '{WITHDRAWN}'").fetchall()]
    return [models_root / version for version in versions if (models_root / version).is_dir()]


def drop_unrestorable_subjects(con: duckdb.DuckDBPyConnection, models_root: Path) -> int:
    """Forget the subjects of versions whose artifact is gone (pruned or withdrawn): no rollback can
    restore them, so there is nothing left to withdraw, and the table stays the size of what is kept."""
    ensure_table(con)
    versions = [row[0] for row in con.execute(f"SELECT DISTINCT version FROM {SUBJECTS}").fetchall()]
    gone = [version for version in versions if not (models_root / version / "model.json").is_file()]
    for version in gone:
        con.execute(f"DELETE FROM {SUBJECTS} WHERE version = ?", [version])
    return len(gone)


def remove_artifacts(folders: list[Path]) -> None:
    """Delete withdrawn artifacts: renamed first, so a kill leaves a leftover a build clears, never half a model."""
    for folder in folders:
        doomed = folder.with_name(f".{folder.name}.partial")
        os.rename(folder, doomed)
        shutil.rmtree(doomed)
