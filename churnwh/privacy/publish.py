"""The one place that writes the published file: allowlisted tables, verified, atomically renamed.

``publish`` copies the allowlisted tables from the private warehouse into a NEW DuckDB file next to
the published one (storage version v1.0.0, so DuckDB 1.x clients and the BI tools that bundle them
read it), carries the table and column comments over, verifies the copy, and only then renames it
over the published file with ``os.replace``. The job never opens the published file itself: a
reader holding it open read-only keeps reading the old inode while a build runs.

Verification before the rename (any hit fails the publish with one line, the temporary file is
removed and the old published file stays):

- no column is named like a direct identifier;
- every text value is scanned for e-mail addresses, phone numbers, card numbers (Luhn) and IBANs
  (mod 97), and compared with the values of every direct-identifier column of ``raw``; date and
  timestamp values (as dates) and integers of 7 digits or more are compared with them too (an
  exact birth date, a phone number stored as a number);
- every pseudonym is a current one (in raw.customer_keys: no erased or pre-rotation pseudonym) and
  no customer who objected to profiling as of the build appears;
- every group-size column (``customers``, ``cohort_customers``, ``active_customers``) is at least k,
  no hidden segment of 1..k-1 customers can be recovered by subtracting the shown segments from the
  'all' row, and row-level tables with quasi-identifier columns have no quasi-identifier
  combination shared by fewer than k rows;
- no column and no byte of the file holds a fragment of the pseudonym key (``churnwh.privacy.canary``);
- uplift (``churnwh.privacy.uplift_publish``): every published expected_uplift is rounded to 0.01 and
  shared by at least k customers, expected_saved_value is the published expected_uplift x the banded value over the horizon,
  'contact' is recommended only to contactable customers, and validation rows and Qini curve points
  cover at least k held-out pilot members.

The new file is created owner-only (it is written while the private file is open) and then given
the mode of the file it replaces, or the one the user's umask asks for.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.privacy import about, audit, canary, classification, uplift_publish
from churnwh.store import faults, warehouse
from churnwh.store.warehouse import quote_relation

PUB = "_churnwh_pub"
STORAGE_VERSION = "v1.0.0"

ALLOWLIST: tuple[tuple[str, str], ...] = (
    ("ml.churn_scores", "churn_scores"),
    ("ml.churn_drivers", "churn_drivers"),
    ("ml.feature_importance", "feature_importance"),
    # issue 5 (aggregates only; row-level plans and score history stay private)
    ("ml.drift", "drift"),
    ("ml.data_quality", "data_quality"),
    ("ml.backtest", "backtest"),
    ("ml.backtest_by_tier", "backtest_by_tier"),
    ("ml.backtest_by_decile", "backtest_by_decile"),
    ("ml.pilot_results", "pilot_results"),
    ("marts.churn_monthly", "churn_monthly"),
    ("marts.revenue_churn_monthly", "revenue_churn_monthly"),
    ("marts.cohort_retention", "cohort_retention"),
    ("ml.model_metrics", "model_metrics"),
    ("ml.model_runs", "model_runs"),
    (audit.TABLE, "audit_log"),
)
"""Private table -> published name (main schema of the published file). Nothing else is published."""

SCORES = "ml.churn_scores"
PUBLISHED_VALUE_COMMENT = (
    "churn_probability x banded monthly revenue x the value horizon in months, to the cent. The monthly revenue "
    "is rounded to two significant digits, and a rounded value that fewer than {k} scored customers share is "
    "replaced by the most common one, so value_at_risk / churn_probability discloses no exact price."
)
TIER_SUMMARY = "tier_summary"
PSEUDONYM_COLUMN = "customer_pseudonym"
GROUP_SIZE_COLUMNS = ("customers", "cohort_customers", "active_customers")
"""Columns that count the customers of a published group: each must be at least k. (Outcome counts
inside a group, such as retained_customers, are not group sizes.)"""
SEGMENT_COLUMNS = ("segment_type", "segment")
MIN_IDENTIFYING_DIGITS = 7
MEASURE_TYPES = ("BIGINT", "HUGEINT", "DOUBLE", "FLOAT", "DECIMAL")
IDENTIFIER_NAMES = {column for _, column in classification.direct_identifiers()} | {"name", "first_name", "last_name"}

# RE2 (DuckDB) prefilters; Python confirms (Luhn, mod 97) on the candidates only.
EMAIL_RE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
PHONE_RE = (
    r"(^|[^0-9A-Za-z_-])"
    r"(\+[0-9]{1,3}[ .-]?([0-9]{2,4}|\([0-9]{2,4}\))[ .-]?[0-9]{3,4}[ .-]?[0-9]{3,4}"  # +1-555-123-4567
    r"|(\([0-9]{2,4}\) ?|[0-9]{2,4}[ .-])[0-9]{3,4}[ .-][0-9]{3,4})"  # (555) 123-4567, 555-123-4567
    r"($|[^0-9A-Za-z_-])"
)
CARD_RE = r"(^|[^0-9A-Za-z])[0-9]([ -]?[0-9]){12,18}($|[^0-9A-Za-z])"
IBAN_RE = r"(^|[^0-9A-Za-z])[A-Z]{2}[0-9]{2}( ?[A-Z0-9]){11,30}($|[^0-9A-Za-z])"
_CARD_PY = re.compile(r"(?<![0-9A-Za-z])[0-9](?:[ -]?[0-9]){12,18}(?![0-9A-Za-z])")
_IBAN_PY = re.compile(r"(?<![0-9A-Za-z])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?![0-9A-Za-z])")


class PublishError(ChurnwhError):
    """The published copy failed verification; the old published file was kept."""


@dataclass
class PublishResult:
    path: Path
    tables: dict[str, int]
    checks: dict[str, Any]
    seconds: float
    entry: dict[str, Any] = field(default_factory=dict)


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in moved))
    except ValueError:
        return False
    return number % 97 == 1


def _pub_tables(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = 'main' ORDER BY table_name, ordinal_position",
        [PUB],
    ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        tables.setdefault(table, {})[column] = kind
    return tables


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _copy_comments(con: duckdb.DuckDBPyConnection, source: str, target: str) -> None:
    schema, table = source.split(".")
    catalog = con.execute("SELECT current_database()").fetchone()[0]
    row = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
        [catalog, schema, table],
    ).fetchone()
    if row and row[0]:
        con.execute(f"COMMENT ON TABLE {PUB}.main.{_q(target)} IS {warehouse.sql_literal(row[0])}")
    for column, comment in con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ? AND comment IS NOT NULL",
        [catalog, schema, table],
    ).fetchall():
        con.execute(f"COMMENT ON COLUMN {PUB}.main.{_q(target)}.{_q(column)} IS {warehouse.sql_literal(comment)}")


def published_scores_sql(k: int, horizon: int, *, uplift: bool = False) -> str:
    """ml.churn_scores as published: value at risk from a banded monthly value, priorities re-ranked.

    The private value at risk is churn_probability x monthly value x horizon, so dividing the
    published columns gave back each customer's exact price (an exact price can single a customer
    out). The monthly value is rounded to two significant digits; a rounded value shared by fewer
    than ``k`` scored customers becomes the most common rounded value. Whatever an analyst divides
    out is then shared by at least ``k`` customers (or by all of them, if fewer are scored).
    The priority rank follows the published value, so its order adds nothing beyond it.

    The uplift columns (expected_uplift, expected_saved_value, recommended_action) come from
    ml.customer_uplift when ``uplift`` (churnwh.privacy.uplift_publish), else they are NULL.
    """
    ctes, uplift_select, relation = uplift_publish.score_columns_sql(k, "banded", available=uplift)
    temporary = "_monthly, _band, _sharing, _common, _horizon_value, _value" + (", _u_round, _u_action, _uplift" if uplift else "")
    return f"""
        WITH valued AS (
            SELECT *, value_at_risk / nullif(churn_probability * {int(horizon)}, 0) AS _monthly
            FROM {SCORES}),
        rounded AS (
            SELECT *, CASE WHEN _monthly IS NULL OR _monthly = 0 THEN 0.0
                           ELSE round(_monthly, 1 - CAST(floor(log10(abs(_monthly))) AS INTEGER)) END AS _band
            FROM valued),
        counted AS (SELECT *, count(*) OVER (PARTITION BY _band) AS _sharing FROM rounded),
        common AS (SELECT _band AS _common FROM counted GROUP BY _band ORDER BY count(*) DESC, _band LIMIT 1),
        horizon_valued AS (
            SELECT *, CASE WHEN _sharing >= {int(k)} THEN _band ELSE _common END * {int(horizon)} AS _horizon_value
            FROM counted CROSS JOIN common),
        banded AS (SELECT *, round(churn_probability * _horizon_value, 2) AS _value FROM horizon_valued){ctes}
        SELECT * EXCLUDE ({temporary}) REPLACE (
            _value AS value_at_risk,
            CAST(row_number() OVER (ORDER BY _value DESC, churn_probability DESC, customer_pseudonym) AS INTEGER)
                AS priority_rank),
            {uplift_select}
        FROM {relation}
        ORDER BY priority_rank"""


def _write_tier_summary(con: duckdb.DuckDBPyConnection, k: int) -> None:
    con.execute(
        f"""CREATE TABLE {PUB}.main.{TIER_SUMMARY} AS
        SELECT risk_tier, count(*) AS customers, avg(churn_probability) AS mean_churn_probability,
               sum(value_at_risk) AS total_value_at_risk
        FROM ml.churn_scores
        GROUP BY risk_tier
        HAVING count(*) >= ?
        ORDER BY CASE risk_tier WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END""",
        [k],
    )
    comments = {
        None: f"Customers, mean churn probability and total value at risk per risk tier (tiers with fewer than {k} customers are suppressed).",
        "risk_tier": "Risk tier: high, medium or low.",
        "customers": "Number of scored customers in the tier.",
        "mean_churn_probability": "Average churn probability of the customers in the tier.",
        "total_value_at_risk": "Sum of the value at risk of the customers in the tier.",
    }
    for column, text in comments.items():
        target = f"{PUB}.main.{TIER_SUMMARY}" + (f".{column}" if column else "")
        con.execute(f"COMMENT ON {'COLUMN' if column else 'TABLE'} {target} IS {warehouse.sql_literal(text)}")


def _write_uplift_tables(con: duckdb.DuckDBPyConnection, k: int) -> None:
    """uplift_validation and uplift_curve (aggregates of held-out pilot members), when the uplift stage wrote them."""
    for name, select, comments in (
            (uplift_publish.PUBLISHED_VALIDATION, uplift_publish.validation_sql(con, k),
             uplift_publish.VALIDATION_COMMENTS),
            (uplift_publish.PUBLISHED_CURVE, uplift_publish.curve_sql(con, k), uplift_publish.CURVE_COMMENTS)):
        if select is not None:
            con.execute(f"CREATE TABLE {PUB}.main.{_q(name)} AS {select}")
            uplift_publish.comment(con, f"{PUB}.main.{_q(name)}", comments, k)


def verify(con: duckdb.DuckDBPyConnection, k: int, quasi_identifiers: set[str]) -> tuple[list[str], dict[str, Any]]:
    """Verify the attached published copy; return (problems, check counts). Problems hold no values."""
    problems: list[str] = []
    tables = _pub_tables(con)
    checks: dict[str, Any] = {"tables": len(tables), "text_columns": 0, "k": k}
    relations = warehouse.relations(con)

    for table, columns in tables.items():
        for column in columns:
            if column.lower() in IDENTIFIER_NAMES:
                problems.append(f"{table}.{column} is named like a direct identifier")

    # raw identifier values, bound into a temp table once (never into SQL text)
    sources = [
        f"SELECT CAST({_q(column)} AS VARCHAR) AS v FROM {quote_relation(table)}"
        for table, column in classification.direct_identifiers()
        if table in relations and column in warehouse.columns(con, table)
    ]
    con.execute("CREATE OR REPLACE TEMP TABLE _pii_values (v VARCHAR)")
    if sources:
        con.execute(
            "INSERT INTO _pii_values SELECT DISTINCT lower(trim(v)) FROM (" + " UNION ALL ".join(sources) + ") "
            "WHERE v IS NOT NULL AND length(trim(v)) >= 3"
        )

    for table, columns in tables.items():
        target = f"{PUB}.main.{_q(table)}"
        for column, kind in columns.items():
            if kind != "VARCHAR":
                continue
            checks["text_columns"] += 1
            col = _q(column)
            email, phone, card, iban, raw_hits = con.execute(
                f"""SELECT
                    count(*) FILTER (WHERE regexp_matches({col}, ?)),
                    count(*) FILTER (WHERE regexp_matches({col}, ?)),
                    list({col}) FILTER (WHERE regexp_matches({col}, ?)),
                    list({col}) FILTER (WHERE regexp_matches({col}, ?)),
                    count(*) FILTER (WHERE lower(trim({col})) IN (SELECT v FROM _pii_values))
                FROM {target}""",
                [EMAIL_RE, PHONE_RE, CARD_RE, IBAN_RE],
            ).fetchone()
            cards = sum(
                1
                for value in (card or [])
                for match in _CARD_PY.findall(value)
                if luhn_ok(re.sub(r"[ -]", "", match))
            )
            ibans = sum(1 for value in (iban or []) for match in _IBAN_PY.findall(value) if iban_ok(match))
            for count, what in (
                (email, "an e-mail address"),
                (phone, "a phone number"),
                (cards, "a card number (Luhn)"),
                (ibans, "an IBAN"),
                (raw_hits, "a raw direct-identifier value"),
            ):
                if count:
                    problems.append(f"{table}.{column} holds {count} value{'s' if count != 1 else ''} like {what}")
    checks["date_and_number_columns"] = 0
    for table, columns in tables.items():
        target = f"{PUB}.main.{_q(table)}"
        for column, kind in columns.items():
            if kind.startswith(("DATE", "TIMESTAMP")):
                # an exact raw date (a birth date): the value as the raw column renders it
                value = f"CAST(CAST({_q(column)} AS DATE) AS VARCHAR)"
            elif kind.startswith(("BIGINT", "INTEGER", "HUGEINT", "UBIGINT", "DECIMAL")):
                # a number as long as a phone or an account number; shorter ones are counts and amounts
                value = f"CAST({_q(column)} AS VARCHAR)"
                value = f"CASE WHEN length({value}) >= {MIN_IDENTIFYING_DIGITS} THEN {value} END"
            else:
                continue
            checks["date_and_number_columns"] += 1
            hits = con.execute(
                f"SELECT count(*) FROM {target} WHERE {value} IN (SELECT v FROM _pii_values)").fetchall()[0][0]
            if hits:
                problems.append(f"{table}.{column} holds {hits} value{'s' if hits != 1 else ''} equal to a raw "
                                "direct-identifier value (an exact date or number)")
    con.execute("DROP TABLE IF EXISTS _pii_values")

    # pseudonyms: current ones only, and no objector
    objectors = (
        "SELECT customer_pseudonym FROM staging.consent_state WHERE purpose = 'profiling' AND state = 'withdrawn' "
        "AND (valid_to IS NULL OR (valid_from <= getvariable('as_of') AND valid_to > getvariable('as_of')))"
        if "staging.consent_state" in relations
        else "SELECT NULL::VARCHAR AS customer_pseudonym WHERE false"
    )
    has_keys = "raw.customer_keys" in relations
    checks["objectors_published"] = 0
    checks["unknown_pseudonyms"] = 0
    for table, columns in tables.items():
        if PSEUDONYM_COLUMN not in columns:
            continue
        target = f"{PUB}.main.{_q(table)}"
        stale = (
            con.execute(
                f"SELECT count(*) FROM {target} WHERE {PSEUDONYM_COLUMN} IS NOT NULL AND {PSEUDONYM_COLUMN} NOT IN "
                "(SELECT customer_pseudonym FROM raw.customer_keys)"
            ).fetchone()[0]
            if has_keys
            else 0
        )
        objecting = con.execute(
            f"SELECT count(*) FROM {target} WHERE {PSEUDONYM_COLUMN} IN ({objectors})"
        ).fetchone()[0]
        checks["unknown_pseudonyms"] += stale
        checks["objectors_published"] += objecting
        if stale:
            problems.append(f"{table} holds {stale} pseudonyms of no current customer (erased or an old key)")
        if objecting:
            problems.append(f"{table} holds {objecting} rows of customers who objected to profiling")

    # k-anonymity: every group-size column, and what subtraction from an 'all' row gives
    checks["small_groups"] = 0
    checks["differenced_groups"] = 0
    for table, columns in tables.items():
        target = f"{PUB}.main.{_q(table)}"
        qi = [column for column in columns if column in quasi_identifiers]
        sizes = [column for column in GROUP_SIZE_COLUMNS if column in columns]
        if sizes:
            small = con.execute(
                f"SELECT count(*) FROM {target} WHERE " + " OR ".join(f"{_q(c)} < ?" for c in sizes), [k] * len(sizes)
            ).fetchone()[0]
            derived = differenced_groups(con, target, columns, sizes[0], k)
            checks["differenced_groups"] += derived
            if derived:
                problems.append(f"{table} has {derived} hidden group{'s' if derived != 1 else ''} smaller than k = {k} "
                                "that subtracting its segments from the all row recovers")
        elif qi:
            keys = ", ".join(_q(column) for column in qi)
            small = con.execute(
                f"SELECT count(*) FROM (SELECT {keys} FROM {target} GROUP BY ALL HAVING count(*) < ?)", [k]
            ).fetchone()[0]
        else:
            continue
        checks["small_groups"] += small
        if small:
            problems.append(f"{table} has {small} group{'s' if small != 1 else ''} smaller than k = {k}")

    # uplift: generalized values, derived money, contact only with marketing consent, k per curve point
    uplift = uplift_publish.problems(con, PUB, tables, k)
    checks["uplift_problems"] = len(uplift)
    problems += uplift
    return problems, checks


def published_mode(target: Path) -> int:
    """The permission bits of a new published file: those of the file it replaces, else the umask's."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~warehouse.USER_UMASK


def differenced_groups(con: duckdb.DuckDBPyConnection, target: str, columns: dict[str, str], size: str,
                       k: int) -> int:
    """Hidden groups of 1..k-1 customers that the 'all' row minus the shown segments of one segment
    type gives away (0 for a table without segment_type and segment columns).

    The other grain columns (dates, offsets, labels: every column that is not a measure) identify
    which 'all' row a segment row adds up to.
    """
    if not all(column in columns for column in SEGMENT_COLUMNS):
        return 0
    grain = [c for c, kind in columns.items()
             if c not in SEGMENT_COLUMNS and c != size and not kind.startswith(MEASURE_TYPES)]
    keys = ", ".join(_q(c) for c in grain)
    on = " AND ".join(f"a.{_q(c)} IS NOT DISTINCT FROM p.{_q(c)}" for c in grain) or "true"
    return con.execute(
        f"""WITH totals AS (SELECT {keys + ', ' if keys else ''}{_q(size)} AS total FROM {target}
                            WHERE segment_type = 'all'),
                 shown AS (SELECT {keys + ', ' if keys else ''}segment_type, sum({_q(size)}) AS shown FROM {target}
                           WHERE segment_type <> 'all' GROUP BY ALL)
            SELECT count(*) FROM totals AS a JOIN shown AS p ON {on}
            WHERE a.total - p.shown > 0 AND a.total - p.shown < ?""",
        [k],
    ).fetchone()[0]


def publish(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    *,
    run_id: str,
    quasi_identifiers: set[str] | None = None,
) -> PublishResult:
    """Write, verify and atomically install the published file; raise PublishError on any hit."""
    started = time.perf_counter()
    target = config.warehouse.published
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
    k = config.publish.k_anonymity
    quasi = quasi_identifiers if quasi_identifiers is not None else classification.quasi_identifier_names()
    audit.ensure_table(con)
    relations = warehouse.relations(con)
    attached = False
    try:
        con.execute(f"ATTACH {warehouse.sql_literal(str(temp))} AS {PUB} (STORAGE_VERSION '{STORAGE_VERSION}')")
        attached = True
        tables: dict[str, int] = {}
        uplift = uplift_publish.usable(con)
        for source, name in ALLOWLIST:
            if relations.get(source) != "table":
                continue
            select = (published_scores_sql(k, config.scoring.horizon_months, uplift=uplift) if source == SCORES
                      else f"SELECT * FROM {quote_relation(source)}")
            con.execute(f"CREATE TABLE {PUB}.main.{_q(name)} AS {select}")
            _copy_comments(con, source, name)
            if source == SCORES:
                con.execute(f"COMMENT ON COLUMN {PUB}.main.{_q(name)}.value_at_risk IS "
                            f"{warehouse.sql_literal(PUBLISHED_VALUE_COMMENT.format(k=k))}")
                uplift_publish.comment(con, f"{PUB}.main.{_q(name)}", uplift_publish.SCORE_COMMENTS, k)
            faults.point("publish.copy")
        _write_uplift_tables(con, k)
        if relations.get("ml.churn_scores") == "table":
            _write_tier_summary(con, k)
        about.write_about(con, config, f"{PUB}.main.{about.TABLE}")
        for table in _pub_tables(con):
            tables[table] = con.execute(f"SELECT count(*) FROM {PUB}.main.{_q(table)}").fetchone()[0]
        faults.point("publish.temp_written")
        problems, checks = verify(con, k, quasi)
        key = canary.project_key(config)
        problems += canary.table_problems(con, PUB, _pub_tables(con), key)
        checks["tables"] = tables
        if problems:
            con.execute(f"DETACH {PUB}")
            attached = False
            _remove(temp)
            reason = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            audit.append(con, event="publish", run_id=run_id, config=config, outcome="failed", detail=checks | {
                "problems": problems})
            raise PublishError(f"publish failed verification: {reason}: the published file {target.name} was kept")
        entry = audit.append(
            con,
            event="publish",
            run_id=run_id,
            config=config,
            detail=checks,
            also_into=f"{PUB}.main.audit_log" if "audit_log" in tables else None,
            defer_own=True,  # the private log records the publish once the new file is in place
        )
        con.execute(f"CHECKPOINT {PUB}")
        con.execute(f"DETACH {PUB}")
        attached = False
        if canary.file_holds_key(temp, key):  # names, comments, metadata: what no column scan sees
            raise PublishError(f"publish failed verification: the published copy holds the pseudonym key (or a "
                               f"part of it): the published file {target.name} was kept")
        # Created while the private file is open, so owner-only: BI tools get the mode the old
        # published file had, or the one the user's umask asks for.
        os.chmod(temp, published_mode(target))
        warehouse.fsync(temp)
        # A WAL beside the target belongs to the old file (a reader that opened it read-write):
        # replayed onto the new one it would corrupt it.
        Path(str(target) + ".wal").unlink(missing_ok=True)
        faults.point("publish.before_rename")
        os.replace(temp, target)
        with contextlib.suppress(OSError):  # the new file is in place; this only hastens its durability
            warehouse.fsync(target.parent)
        audit.insert(con, entry)
        faults.point("publish.after_rename")
        return PublishResult(target, tables, checks, time.perf_counter() - started, entry)
    except BaseException as err:
        if attached:
            try:
                con.execute(f"DETACH {PUB}")
            except duckdb.Error:
                pass
        _remove(temp)
        if isinstance(err, (OSError, duckdb.IOException)):
            raise PublishError(write_failure(err, target)) from None
        raise


def write_failure(err: BaseException, target: Path) -> str:
    """One line for a failed write of the published copy (a full disk, a read-only folder)."""
    full = warehouse.disk_full(err)
    cause = "no space left on device" if full else (
        err.strerror if isinstance(err, OSError) and err.strerror else warehouse.first_line(err))
    return (
        f"publishing failed: {cause} writing the new copy in {target.parent}: "
        f"{'free some space' if full else 'fix the folder'} and rerun `churnwh build`; the published file "
        f"{target.name} was kept"
    )


def _remove(path: Path) -> None:
    for candidate in (path, Path(str(path) + ".wal")):
        try:
            candidate.unlink()
        except FileNotFoundError:
            pass


TEMP_SUFFIX = ".tmp"


def stale_temp_files(target: Path) -> list[Path]:
    """Temporary copies (and their WALs) that a killed publish left beside ``target``: our names only."""
    return temp_files_like(target, TEMP_SUFFIX)


def temp_files_like(path: Path, suffix: str) -> list[Path]:
    """Files named ``.<name>.<12 hex digits><suffix>`` (or that plus ``.wal``) beside ``path``."""
    if not path.parent.is_dir():
        return []
    pattern = re.compile(re.escape(f".{path.name}.") + "[0-9a-f]{12}" + re.escape(suffix) + r"(\.wal)?")
    return sorted(path.parent / name for name in os.listdir(path.parent) if pattern.fullmatch(name))
