"""Erasure (`churnwh forget`) and physical rewrites of the private file.

A forget request deletes the customers from every raw table (by customer id) and from every
derived table (by pseudonym; bookkeeping tables with a pseudonym column too), records the request in the audit log (a request id and counts, no
identifier), withdraws every model version trained on the customers (``churnwh.privacy.withdrawal``:
no rollback or score can use them again, their artifacts are deleted) and marks the current model
stale (``_churnwh.meta`` 'erasure_since_model', read by the train stage), rewrites the private file
with ``COPY FROM DATABASE`` into a new file renamed over the old one (DuckDB's DELETE leaves values
readable in the file), rebuilds what the customers contributed to (``refresh_derived``: the SQL
models, and the scores and model-based aggregates, or drops those when their model was withdrawn),
and re-publishes. Ids enter SQL only as rows of a registered Arrow table, never as SQL text. Ids are
normalised exactly as `load` normalises the id column (``warehouse.normalised_id_sql``); how many
matched no customer is reported, never which. The rewritten file is owner-only
(``warehouse.owner_only``), whatever mode the old had.

Crash safety: the deletions, the marks and the audit entry commit in one transaction; the
'rewrite_pending' mark makes the next build finish a rewrite (and so the republish) that a killed
`forget` or `rotate-key` left undone.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.privacy import audit, publish, withdrawal
from churnwh.store import faults, lock, warehouse
from churnwh.store.warehouse import quote_relation

ERASURE_MARK = "erasure_since_model"
REWRITE_PENDING = "rewrite_pending"
"""_churnwh.meta: set while the private file still holds bytes that a rewrite must remove."""
KEYS = f"{warehouse.RAW_SCHEMA}.customer_keys"
UNTOUCHED_SCHEMAS = {warehouse.META_SCHEMA, audit.SCHEMA}
"""Never deleted from by table scans, except the meta tables of ``per_customer_meta_tables``."""
MAX_ID_LENGTH = warehouse.ID_MAX_LENGTH
_BAD_CHARS = re.compile(warehouse.ID_FORBIDDEN)


@dataclass
class ForgetResult:
    request_id: str
    requested: int
    found: int
    rows_deleted: dict[str, int] = field(default_factory=dict)
    published: bool = False

    @property
    def hint(self) -> str:
        """What to do about ids that matched no customer (a count, never the ids); empty if all matched."""
        missing = self.requested - self.found
        if not missing:
            return ""
        return (f"; {missing} {'id' if missing == 1 else 'ids'} matched no customer: ids are compared as `load` "
                "stores them (surrounding spaces removed, case and every other character exact): check their "
                "spelling against the source, or the customer was erased before")


def read_id_file(path: Path) -> list[str]:
    """One customer id per line; blank lines and lines starting with '#' are skipped.

    A line with a control character (a tab, say), a comma, or more than 128 characters is
    malformed: the error names the line number, never its content.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not part of the first id
    except FileNotFoundError:
        raise ChurnwhError(f"id file {path} does not exist: pass a file with one customer id per line") from None
    except UnicodeDecodeError:
        raise ChurnwhError(f"id file {path} is not UTF-8 text: save it as UTF-8, one customer id per line") from None
    ids: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip(" \r\n")
        if not value or value.startswith("#"):
            continue
        if _BAD_CHARS.search(value) or len(value) > MAX_ID_LENGTH:
            raise ChurnwhError(
                f"{path}:{number}: malformed line: write one customer id per line (no tabs, commas or control "
                f"characters, at most {MAX_ID_LENGTH} characters); nothing was changed"
            )
        ids.append(value)
    return ids


def check_ids(ids: list[str]) -> None:
    """Ids given as arguments follow the id file's rules: UTF-8 text (a shell passes other bytes as
    lone surrogates), no control character or comma, at most 128 characters. Names the position only."""
    for number, value in enumerate(ids, start=1):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ChurnwhError(f"customer id number {number} is not valid UTF-8 text: pass ids as UTF-8 text; "
                               "nothing was changed") from None
        if _BAD_CHARS.search(value) or len(value) > MAX_ID_LENGTH:
            raise ChurnwhError(
                f"customer id number {number} is malformed: one id per argument (no commas, tabs or control "
                f"characters, at most {MAX_ID_LENGTH} characters); nothing was changed"
            )


def _base_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Every base table (not views) as ``schema.name`` -> its columns, bookkeeping excluded."""
    tables = [name for name, kind in warehouse.relations(con).items() if kind == "table"]
    return {name: list(warehouse.columns(con, name)) for name in sorted(tables)}


def per_customer_meta_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Base tables of the bookkeeping schema (left out of ``_base_tables``) that hold a row per customer, by a
    ``customer_pseudonym`` column: the explain stage's sample attributions. Erasure deletes from them like
    from any derived table; the rest of the schema (meta marks, model state, proofs) holds no customer."""
    rows = con.execute(
        "SELECT DISTINCT t.table_name FROM duckdb_tables() AS t JOIN duckdb_columns() AS c "
        "ON c.database_name = t.database_name AND c.schema_name = t.schema_name AND c.table_name = t.table_name "
        "WHERE t.database_name = current_database() AND t.schema_name = ? AND c.column_name = 'customer_pseudonym' "
        "ORDER BY 1", [warehouse.META_SCHEMA]).fetchall()
    return [f"{warehouse.META_SCHEMA}.{name}" for (name,) in rows]


def delete_customers(con: duckdb.DuckDBPyConnection, ids: list[str]) -> tuple[int, dict[str, int]]:
    """Delete ``ids`` from raw and derived tables; return (found, rows per class).

    Runs inside the caller's transaction, so the deletions commit together with what marks them.
    """
    con.register("_forget_ids_arrow", pa.table({"customer_id": pa.array(sorted(set(ids)), pa.string())}))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _forget_ids AS SELECT customer_id FROM _forget_ids_arrow")
    finally:
        con.unregister("_forget_ids_arrow")
    tables = _base_tables(con)
    deleted = {"raw": 0, "derived": 0}
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _forget_pseudonyms (customer_pseudonym VARCHAR)")
        if KEYS in tables:
            con.execute(
                f"INSERT INTO _forget_pseudonyms SELECT customer_pseudonym FROM {KEYS} "
                "WHERE customer_id IN (SELECT customer_id FROM _forget_ids)"
            )
        found_ids = set()
        for table, columns in tables.items():
            if table.startswith(f"{warehouse.RAW_SCHEMA}.") and warehouse.CUSTOMER_ID in columns:
                found_ids |= {
                    row[0]
                    for row in con.execute(
                        f"SELECT DISTINCT CAST(customer_id AS VARCHAR) FROM {quote_relation(table)} "
                        "WHERE CAST(customer_id AS VARCHAR) IN (SELECT customer_id FROM _forget_ids)"
                    ).fetchall()
                }
        for table, columns in tables.items():
            schema = table.split(".")[0]
            if schema in UNTOUCHED_SCHEMAS:
                continue
            if schema == warehouse.RAW_SCHEMA and warehouse.CUSTOMER_ID in columns:
                count = con.execute(
                    f"DELETE FROM {quote_relation(table)} "
                    "WHERE CAST(customer_id AS VARCHAR) IN (SELECT customer_id FROM _forget_ids)"
                ).fetchone()[0]
                deleted["raw"] += count
            elif "customer_pseudonym" in columns:
                count = con.execute(
                    f"DELETE FROM {quote_relation(table)} "
                    "WHERE customer_pseudonym IN (SELECT customer_pseudonym FROM _forget_pseudonyms)"
                ).fetchone()[0]
                deleted["raw" if schema == warehouse.RAW_SCHEMA else "derived"] += count
        for table in per_customer_meta_tables(con):
            deleted["derived"] += con.execute(
                f"DELETE FROM {quote_relation(table)} "
                "WHERE customer_pseudonym IN (SELECT customer_pseudonym FROM _forget_pseudonyms)"
            ).fetchone()[0]
    finally:
        con.execute("DROP TABLE IF EXISTS _forget_ids")
        con.execute("DROP TABLE IF EXISTS _forget_pseudonyms")
    return len(found_ids), deleted


def purge_orphans(con: duckdb.DuckDBPyConnection) -> int:
    """Delete derived rows whose pseudonym is no current one (erased customers, an old key)."""
    tables = _base_tables(con)
    if KEYS not in tables:
        return 0
    total = 0
    derived = [table for table, columns in tables.items() if table.split(".")[0] not in UNTOUCHED_SCHEMAS
               and table.split(".")[0] != warehouse.RAW_SCHEMA and "customer_pseudonym" in columns]
    for table in derived + per_customer_meta_tables(con):
        total += con.execute(
            f"DELETE FROM {quote_relation(table)} WHERE customer_pseudonym IS NOT NULL "
            f"AND customer_pseudonym NOT IN (SELECT customer_pseudonym FROM {KEYS})"
        ).fetchone()[0]
    return total


REWRITE_SUFFIX = ".rewrite"


def rewrite_file(path: Path, limits: dict | None = None) -> None:
    """Copy the database into a new file (COPY FROM DATABASE) and rename it over ``path``.

    Only live rows are copied, so deleted values no longer exist in the file's bytes. Schemas,
    tables, views, macros, constraints and comments are carried over. ``limits``: the
    ``warehouse.connect`` resource settings.
    """
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{REWRITE_SUFFIX}")
    try:
        with warehouse.connect(path, **(limits or {})) as con:
            catalog = con.execute("SELECT current_database()").fetchone()[0]
            con.execute(f"ATTACH {warehouse.sql_literal(str(temp))} AS _rewrite")
            con.execute(f'COPY FROM DATABASE "{catalog.replace(chr(34), chr(34) * 2)}" TO _rewrite')
            con.execute("CHECKPOINT _rewrite")
            faults.point("rewrite.temp_written")
            con.execute("DETACH _rewrite")
            con.execute("CHECKPOINT")
    except BaseException:
        for leftover in (temp, Path(str(temp) + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    # Both files were checkpointed, so neither has a WAL that could be replayed onto the wrong file.
    if Path(str(temp) + ".wal").exists() or Path(str(path) + ".wal").exists():
        for leftover in (temp, Path(str(temp) + ".wal")):
            leftover.unlink(missing_ok=True)
        raise ChurnwhError(f"rewriting {path.name} left a write-ahead log: nothing was renamed; run the command again")
    warehouse.fsync(temp)
    faults.point("rewrite.before_rename")
    os.replace(temp, path)
    warehouse.fsync(path.parent)
    faults.point("rewrite.after_rename")


def stale_rewrites(path: Path) -> list[Path]:
    """Rewritten copies (and their WALs) that a killed rewrite left beside ``path``: our names only."""
    return publish.temp_files_like(path, REWRITE_SUFFIX)


def finish_pending_rewrite(config: Config) -> bool:
    """Complete a rewrite that an erasure or a key rotation committed to but did not finish.

    The mark is set in the same transaction as the change that needs the rewrite and cleared
    after it, so a kill anywhere in between leaves it set. Returns whether there was one.
    """
    limits = warehouse.limits(config.warehouse)
    with warehouse.open_private(config) as con:
        if warehouse.get_meta(con, REWRITE_PENDING) is None:
            return False
        purge_orphans(con)
    rewrite_file(config.warehouse.private, limits)
    with warehouse.open_private(config) as con:
        con.execute(f"DELETE FROM {warehouse.META_SCHEMA}.meta WHERE name = ?", [REWRITE_PENDING])
    return True


UPLIFT_ARTIFACT = "uplift"
"""The uplift model's folder under the models directory (churnwh.action.uplift): it learned from campaign
members, so an erasure removes it and the next uplift step fits again without the erased customers."""
UPLIFT_ESTIMATES = ("ml.customer_uplift", "ml.uplift_validation", "ml.uplift_curve")
MODEL_AGGREGATES = ("ml.feature_importance", "ml.drift", *UPLIFT_ESTIMATES)
"""Aggregates computed with the current model: dropped when that model was withdrawn (the next
build's retrain recomputes them), so none computed over the erased customer's rows is republished."""


def refresh_derived(config: Config, rebuild: Callable[[tuple[str, ...]], None]) -> None:
    """Rebuild what the erased customers contributed to before the republish (call under the lock).

    The SQL models run again (with their lineage proof): staging, features and the marts
    (cohort_retention, churn_monthly, revenue_churn_monthly) no longer count the customers. With a
    usable current model the scores, drivers, feature importance, drift, data quality and uplift estimates are
    recomputed without them; when the erasure withdrew the current model (it was trained on them),
    the model-based aggregates are dropped instead until the next build retrains. ``rebuild`` runs the
    given build stages (the pipeline's: privacy does not sequence builds).
    """
    with warehouse.open_private(config) as con:
        usable = withdrawal.has_current(con)
        if not usable:
            for table in MODEL_AGGREGATES:
                con.execute(f"DROP TABLE IF EXISTS {table}")
    stages = ("pseudonymize", "classify", "lineage", "models") + (("score", "explain", "monitor", "uplift") if usable else ())
    rebuild(stages)


def forget(config: Config, ids: list[str], rebuild: Callable[[tuple[str, ...]], None]) -> ForgetResult:
    """Erase ``ids`` from both files; see the module docstring. ``rebuild`` runs build stages
    (``churnwh.pipeline.forget`` passes its own)."""
    if not ids:
        raise ChurnwhError("no customer ids given: pass ids as arguments or --file with one id per line")
    check_ids(ids)
    ids = sorted(set(warehouse.normalise_ids(ids)))  # matched as `load` stored them
    request_id = audit.new_id()
    with lock.write_lock(config.warehouse.private):
        with warehouse.open_private(config) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                withdrawn = withdrawal.withdraw_for_erasure(
                    con, pa.table({"customer_id": pa.array(sorted(set(ids)), pa.string())}))
                found, deleted = delete_customers(con, ids)
                warehouse.set_meta(con, ERASURE_MARK, request_id)
                warehouse.set_meta(con, REWRITE_PENDING, request_id)
                audit.append(
                    con,
                    event="erasure",
                    run_id=request_id,
                    config=config,
                    erasures=found,
                    detail={"request_id": request_id, "requested": len(set(ids)), "found": found,
                            "rows_deleted": deleted, "models_withdrawn": withdrawn},
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        with warehouse.open_private(config) as con:
            withdrawal.remove_artifacts(withdrawal.withdrawn_artifacts(con, config.warehouse.models))
        if found:
            shutil.rmtree(config.warehouse.models / UPLIFT_ARTIFACT, ignore_errors=True)
        faults.point("forget.after_delete")
        finish_pending_rewrite(config)
        result = ForgetResult(request_id, len(set(ids)), found, deleted)
        try:
            if found:
                refresh_derived(config, rebuild)
        except ChurnwhError as err:
            config.warehouse.published.unlink(missing_ok=True)
            raise ChurnwhError(
                f"erased from the private file, but rebuilding what the customer contributed to failed ({err}); "
                "the published file was removed instead: fix the cause and run `churnwh build`"
            ) from None
        faults.point("forget.before_publish")
        with warehouse.open_private(config) as con:
            warehouse.set_variables(con, config.variables)
            try:
                publish.publish(con, config, run_id=request_id)
            except publish.PublishError as err:
                # an erasure may not leave the customer in the old published file: withdraw it
                config.warehouse.published.unlink(missing_ok=True)
                raise ChurnwhError(
                    f"erased from the private file, but {err}; the published file was removed instead: "
                    "fix the cause and run `churnwh build`"
                ) from None
    result.published = True
    return result
