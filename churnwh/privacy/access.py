"""Controlled re-identification: the retention team's contact list and the data-subject report.

Both need the private file and the key, both are logged in the audit log with counts only, and
neither prints or logs an identifier except into the CSV / report the operator asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from churnwh.config import Config
from churnwh.errors import ChurnwhError, KeyMaterialError
from churnwh.privacy import audit, keys
from churnwh.store import warehouse
from churnwh.store.warehouse import quote_relation

SCORES = "ml.churn_scores"
DRIVERS = "ml.churn_drivers"
CONSENT_STATE = "staging.consent_state"


def _checked_key(con: duckdb.DuckDBPyConnection, config: Config) -> bytes:
    key = keys.load_key(config.key)
    stored = warehouse.get_meta(con, "key_id")
    if stored is not None and not keys.is_key_version(key, stored):
        raise KeyMaterialError(
            f"the key (version {keys.key_id(key)}) is not the one the warehouse was built with (version {stored}): "
            "use that key, or run `churnwh build` to re-pseudonymize with this one"
        )
    return key


def export_contacts(con: duckdb.DuckDBPyConnection, config: Config, selection: pa.Table, output: Path,
                    detail: dict[str, Any]) -> int:
    """Re-identify the customers of ``selection`` (``customer_pseudonym`` first, then the columns to export,
    in export order) and write them to ``output`` (CSV, 0600) as customer_id, full_name, email, phone and
    the selection's other columns. The export is logged in the audit log with ``detail`` and its row count
    (counts and campaign ids only: never an identifier). Which customers may be contacted (consent, pilot
    control groups) is the caller's decision (``churnwh.action.contacts``)."""
    key = _checked_key(con, config)
    if "raw.customers" not in warehouse.relations(con):
        raise ChurnwhError("raw.customers does not exist: run `churnwh build` first")
    ids = [row[0] for row in con.execute("SELECT DISTINCT CAST(customer_id AS VARCHAR) FROM raw.customers "
                                          "WHERE customer_id IS NOT NULL").fetchall()]
    others = [name for name in selection.column_names if name != "customer_pseudonym"]
    con.register("_contact_keys", pa.table({"customer_id": pa.array(ids, pa.string()),
                                            "customer_pseudonym": pa.array(keys.pseudonymize(ids, key), pa.string())}))
    con.register("_contact_selection", selection.append_column(
        "_export_order", pa.array(range(selection.num_rows), pa.int64())))
    try:
        table = con.sql(
            f"""SELECT c.customer_id, c.full_name, c.email, c.phone{"".join(f', s."{n}"' for n in others)}
                FROM _contact_selection AS s
                JOIN _contact_keys AS k USING (customer_pseudonym)
                JOIN (SELECT * FROM raw.customers QUALIFY row_number() OVER (PARTITION BY customer_id
                      ORDER BY signup_date NULLS LAST) = 1) AS c ON CAST(c.customer_id AS VARCHAR) = k.customer_id
                ORDER BY s._export_order""").to_arrow_table()
    finally:
        con.unregister("_contact_keys")
        con.unregister("_contact_selection")
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = output.with_name(f".{output.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        pacsv.write_csv(table, handle)
    os.chmod(temp, 0o600)
    os.replace(temp, output)
    audit.append(con, event="contacts_export", run_id=audit.new_id(), config=config,
                 detail={**detail, "rows": table.num_rows})
    return table.num_rows


@dataclass
class SubjectReport:
    found: bool
    pseudonym: str | None = None
    raw_rows: dict[str, int] = field(default_factory=dict)
    derived_rows: dict[str, int] = field(default_factory=dict)
    consent: list[dict[str, Any]] = field(default_factory=list)
    score: dict[str, Any] | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)


def subject_report(config: Config, customer_id: str) -> SubjectReport:
    """What churnwh holds about one person (GDPR Art. 15). The id is only ever a bound parameter."""
    with warehouse.open_private(config) as con:
        relations = warehouse.relations(con)
        report = SubjectReport(found=False)
        for relation, kind in sorted(relations.items()):
            if kind != "table" or not relation.startswith(f"{warehouse.RAW_SCHEMA}."):
                continue
            if warehouse.CUSTOMER_ID not in warehouse.columns(con, relation):
                continue
            count = con.execute(
                f"SELECT count(*) FROM {quote_relation(relation)} WHERE CAST(customer_id AS VARCHAR) = ?", [customer_id]
            ).fetchone()[0]
            if count:
                report.raw_rows[relation] = count
        row = con.execute("SELECT customer_pseudonym FROM raw.customer_keys WHERE customer_id = ?",
                          [customer_id]).fetchone() if "raw.customer_keys" in relations else None
        report.pseudonym = row[0] if row else None
        report.found = bool(report.raw_rows or report.pseudonym)
        if report.pseudonym:
            for relation, kind in sorted(relations.items()):
                schema = relation.split(".")[0]
                if kind != "table" or schema in (warehouse.RAW_SCHEMA, audit.SCHEMA):
                    continue
                if "customer_pseudonym" not in warehouse.columns(con, relation):
                    continue
                count = con.execute(
                    f"SELECT count(*) FROM {quote_relation(relation)} WHERE customer_pseudonym = ?", [report.pseudonym]
                ).fetchone()[0]
                if count:
                    report.derived_rows[relation] = count
            if CONSENT_STATE in relations:
                cursor = con.execute(
                    f"SELECT purpose, state, withdrawal_reason, valid_from FROM {CONSENT_STATE} "
                    "WHERE customer_pseudonym = ? AND is_latest ORDER BY purpose", [report.pseudonym])
                names = [d[0] for d in cursor.description]
                report.consent = [dict(zip(names, r)) for r in cursor.fetchall()]
            if SCORES in relations:
                cursor = con.execute(
                    f"SELECT as_of, churn_probability, risk_tier, action, value_at_risk, model_version FROM {SCORES} "
                    "WHERE customer_pseudonym = ?", [report.pseudonym])
                names = [d[0] for d in cursor.description]
                rows = cursor.fetchall()
                report.score = dict(zip(names, rows[0])) if rows else None
            if DRIVERS in relations and "customer_pseudonym" in warehouse.columns(con, DRIVERS):
                others = [c for c in warehouse.columns(con, DRIVERS) if c != "customer_pseudonym"]
                order = "ORDER BY rank" if "rank" in others else ""
                cursor = con.execute(
                    f"SELECT {', '.join(chr(34) + c + chr(34) for c in others)} FROM {DRIVERS} "
                    f"WHERE customer_pseudonym = ? {order} LIMIT 10", [report.pseudonym])
                names = [d[0] for d in cursor.description]
                report.reasons = [dict(zip(names, r)) for r in cursor.fetchall()]
        audit.append(con, event="subject_report", run_id=audit.new_id(), config=config,
                     detail={"found": report.found, "tables": len(report.raw_rows) + len(report.derived_rows)})
    return report
