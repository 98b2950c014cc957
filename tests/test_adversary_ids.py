"""Ids as an adversary (or a careless export) spells them: a consent event or an erasure request is
matched to a customer exactly as the customer table's ids are (surrounding spaces removed, case and
every other character kept); one that matches no customer creates no pseudonym, counts as no
objection, and is reported as a count with a hint, never the id. Whatever `load` accepts as an id,
`forget` can erase: ids that the erasure path cannot take (control characters, commas, over 128
characters) are refused by `load` with one line."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from tests.helpers import churnwh, private
from tests.test_init import CONSENT_HEADER, tiny
from tests.test_sources import customer_rows, write_csv


def flat_project(tmp_path: Path, rows: list[list[str]], consent: str | None = None) -> Path:
    data = write_csv(tmp_path / "customers.csv", rows)
    flags = ["--consent", str(tmp_path / "consent.csv")] if consent is not None else []
    if consent is not None:
        (tmp_path / "consent.csv").write_text(CONSENT_HEADER + consent)
    made = churnwh(Path("."), "init", str(tmp_path / "proj"), "--flat", "--from", str(data), *flags)
    assert made.returncode == 0, made.stderr
    tiny(tmp_path / "proj")
    return tmp_path / "proj"


def test_objections_are_matched_like_customer_ids_and_a_stray_one_is_reported(tmp_path):
    rows = customer_rows(200)
    stayed = [r[0] for r in rows if r[7] == "No"]
    spaced, lowered = stayed[0], stayed[1]
    project = flat_project(tmp_path, rows, (
        f'e1," {spaced}",profiling,withdraw,2025-06-01 10:00:00,preference_center,GDPR\n'
        f"e2,{lowered.lower()},profiling,withdraw,2025-06-01 10:00:00,preference_center,GDPR\n"))
    result = churnwh(project, "build", env={"COLUMNS": "400"})  # the stage table unwrapped
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "1 consent event names no customer" in said, said
    assert lowered.lower() not in said and lowered not in said
    with private(project) as db:
        detail = json.loads(db.execute("SELECT detail FROM audit.audit_log WHERE event = 'build' "
                                       "ORDER BY logged_at DESC LIMIT 1").fetchone()[0])
        assert detail["consent_events_unmatched"] == 1
        keyed = {i for (i,) in db.execute("SELECT customer_id FROM raw.customer_keys").fetchall()}
        assert keyed == {r[0] for r in rows}  # no pseudonym for an id that is no customer
        spaced_pseudonym = db.execute("SELECT customer_pseudonym FROM raw.customer_keys WHERE customer_id = ?",
                                      [spaced]).fetchone()[0]
        scored = {p for (p,) in db.execute("SELECT customer_pseudonym FROM ml.churn_scores").fetchall()}
        assert spaced_pseudonym not in scored  # the objection with a stray space still reached its customer
        assert len(scored) == len(stayed) - 1
    published = duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True)
    try:
        audit = published.execute("SELECT rows_excluded FROM audit_log WHERE event = 'build' "
                                  "ORDER BY logged_at DESC LIMIT 1").fetchone()[0]
    finally:
        published.close()
    assert json.loads(audit)["customers_excluded"] == {"gdpr_objection": 1}  # the stray one is no objection


def test_forget_matches_ids_like_load_and_reports_the_ones_it_did_not_find(tmp_path):
    rows = customer_rows(120)
    project = flat_project(tmp_path, rows)
    assert churnwh(project, "load").returncode == 0
    target, other = rows[5][0], rows[6][0]
    result = churnwh(project, "forget", f"  {target} ", other.lower())
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "1 of 2 customers found" in said and "1 id matched no customer" in said, said
    assert other.lower() not in said and target not in said
    with private(project) as db:
        left = {i for (i,) in db.execute("SELECT customer_id FROM raw.customers").fetchall()}
    assert target not in left and other in left


def test_load_refuses_ids_that_forget_could_not_erase(tmp_path):
    rows = customer_rows(60)
    long_id = "L" * 129
    rows[3][0], rows[7][0], rows[9][0] = "K,00003", "K\t00007", long_id
    project = flat_project(tmp_path, customer_rows(60))
    write_csv(tmp_path / "customers.csv", rows)
    result = churnwh(project, "load")
    message = result.stderr.strip()
    assert result.returncode == 1 and len(message.splitlines()) == 1, message
    assert "3 ids" in message and "first at row 4" in message and "churnwh forget" in message, message
    assert "K,00003" not in message and long_id not in message
    assert not (project / "warehouse" / "private.duckdb").exists()
