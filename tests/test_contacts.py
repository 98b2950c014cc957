"""Campaign-aware contact lists (issue 15.3): a running pilot's control group is never exported.

Real CLI processes over a copy of the built 400-customer demo project, with a campaign planned on it.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import shutil

import duckdb
import pytest

from churnwh.action.pilot import active_campaigns
from churnwh.config import parse_config
from tests.helpers import churnwh, private

CONTACTABLE = """customer_pseudonym IN (SELECT customer_pseudonym FROM staging.consent_state
                     WHERE purpose = 'marketing' AND is_latest AND state = 'granted')
                 AND customer_pseudonym NOT IN (SELECT customer_pseudonym FROM staging.consent_state
                     WHERE purpose = 'profiling' AND is_latest AND state = 'withdrawn')"""


@pytest.fixture(scope="module")
def campaign_project(built_project, tmp_path_factory):
    """The demo project with campaign c1 planned (everyone is selected: the tiny model scores most low)."""
    project = tmp_path_factory.mktemp("contacts") / "p"
    shutil.copytree(built_project[0], project)
    planned = churnwh(project, "plan", "--campaign", "c1", "--budget", "100000", "--cost", "high=40",
                      "--cost", "medium=8", "--cost", "low=1", "--success-rate", "low=0.05",
                      "--control-fraction", "0.4")
    assert planned.returncode == 0, planned.stderr
    return project


def _ids(project, query: str, params: list | None = None) -> set[str]:
    with private(project) as con:
        return {r[0] for r in con.execute(
            f"SELECT k.customer_id FROM raw.customer_keys k WHERE k.customer_pseudonym IN ({query})",
            params or []).fetchall()}


def _control_identifiers(project) -> list[str]:
    """Every control member's id, e-mail and phone from the private raw table (the canaries)."""
    with private(project) as con:
        rows = con.execute(
            """SELECT CAST(c.customer_id AS VARCHAR), c.email, c.phone FROM raw.customers c
               JOIN raw.customer_keys k ON k.customer_id = CAST(c.customer_id AS VARCHAR)
               JOIN ml.campaign_members m USING (customer_pseudonym)
               WHERE m.campaign_id = 'c1' AND m.pilot_group = 'control'""").fetchall()
    return [value for row in rows for value in row if value]


def _read(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_tier_export_during_a_campaign_holds_back_its_control_group(campaign_project, tmp_path):
    project = campaign_project
    control = _ids(project, "SELECT customer_pseudonym FROM ml.campaign_members "
                            "WHERE campaign_id = 'c1' AND pilot_group = 'control'")
    tier_contactable = _ids(project, f"SELECT customer_pseudonym FROM ml.churn_scores WHERE risk_tier = 'low' "
                                     f"AND {CONTACTABLE}")
    assert control and tier_contactable & control  # the export has someone to hold back
    output = tmp_path / "low.csv"
    result = churnwh(project, "contacts", "--tier", "low", "--output", str(output))
    assert result.returncode == 0, result.stderr
    rows = _read(output)
    exported = {r["customer_id"] for r in rows}
    assert exported == tier_contactable - control
    held = len(tier_contactable & control)
    assert f"held back {held} in the control group of a running pilot (c1)" in result.stdout
    text = output.read_text()
    assert not any(value in text for value in _control_identifiers(project))
    assert not any(value in result.stdout + result.stderr for value in _control_identifiers(project))
    with private(project) as con:
        detail = con.execute("SELECT detail FROM audit.audit_log WHERE event = 'contacts_export' "
                             "ORDER BY logged_at DESC LIMIT 1").fetchall()[0][0]
    assert f'"held_back_control": {held}' in detail and f'"rows": {len(rows)}' in detail
    assert '"active_campaigns": ["c1"]' in detail and "@" not in detail


def test_a_campaign_export_is_exactly_its_consenting_treated_group_with_reasons_in_words(campaign_project, tmp_path):
    project = campaign_project
    treated = _ids(project, f"SELECT customer_pseudonym FROM ml.campaign_members WHERE campaign_id = 'c1' "
                            f"AND pilot_group = 'treatment' AND {CONTACTABLE}")
    everyone_treated = _ids(project, "SELECT customer_pseudonym FROM ml.campaign_members "
                                     "WHERE campaign_id = 'c1' AND pilot_group = 'treatment'")
    # A plan selects only contactable customers (the definition churn_scores.contactable and contacts use),
    # so with no consent change since the plan the campaign's list is its whole treated group.
    assert treated and treated == everyone_treated
    output = tmp_path / "c1.csv"
    result = churnwh(project, "contacts", "--campaign", "c1", "--output", str(output))
    assert result.returncode == 0, result.stderr
    rows = _read(output)
    assert {r["customer_id"] for r in rows} == treated and len(rows) == len(treated)
    assert {r["campaign_id"] for r in rows} == {"c1"}
    text = output.read_text()
    assert not any(value in text for value in _control_identifiers(project))
    # Reasons: the customer's risk-raising drivers as words (a label and a bucket), never a withheld attribute.
    reasons = [r[f"reason_{n}"] for r in rows for n in (1, 2, 3) if r[f"reason_{n}"]]
    assert len({r["customer_id"] for r in rows if r["reason_1"]}) > len(rows) / 2
    for reason in reasons:
        assert re.fullmatch(r"[A-Z][^_:]*: [a-z][a-z0-9 .-]*", reason), reason
        assert "withheld" not in reason
    with private(project) as con:
        withheld_labels = {r[0] for r in con.execute(
            "SELECT DISTINCT label FROM ml.churn_drivers WHERE value_bucket = 'withheld'").fetchall()}
        detail = con.execute("SELECT detail FROM audit.audit_log WHERE event = 'contacts_export' "
                             "ORDER BY logged_at DESC LIMIT 1").fetchall()[0][0]
    assert not any(reason.split(":")[0] in label for reason in reasons for label in withheld_labels)
    assert '"campaign": "c1"' in detail


def test_unknown_campaign_and_tier_with_campaign_are_refused_in_one_line(campaign_project, tmp_path):
    output = tmp_path / "x.csv"
    unknown = churnwh(campaign_project, "contacts", "--campaign", "nope", "--output", str(output))
    assert unknown.returncode == 1 and len(unknown.stderr.strip().splitlines()) == 1
    assert "campaign nope does not exist" in unknown.stderr and "c1" in unknown.stderr
    both = churnwh(campaign_project, "contacts", "--campaign", "c1", "--tier", "low", "--output", str(output))
    assert both.returncode == 1 and len(both.stderr.strip().splitlines()) == 1 and "drop --tier" in both.stderr
    assert not output.exists()


def test_a_new_plan_never_treats_a_running_pilots_control_group(campaign_project, tmp_path):
    project = tmp_path / "p"
    shutil.copytree(campaign_project, project)
    planned = churnwh(project, "plan", "--campaign", "c2", "--budget", "100000", "--cost", "low=1",
                      "--success-rate", "low=0.05", "--control-fraction", "0.4")
    assert planned.returncode == 0, planned.stderr
    with private(project) as con:
        overlap = con.execute(
            """SELECT count(*) FROM ml.campaign_members a JOIN ml.campaign_members b USING (customer_pseudonym)
               WHERE a.campaign_id = 'c1' AND a.pilot_group = 'control' AND b.campaign_id = 'c2'""").fetchall()[0][0]
        c2 = con.execute("SELECT count(*) FROM ml.campaign_members WHERE campaign_id = 'c2'").fetchall()[0][0]
    assert c2 > 0 and overlap == 0


def test_a_campaign_is_active_for_pilot_days_after_its_date(tmp_path):
    config = parse_config({"retention": {"pilot_days": 30}}, tmp_path)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA ml; CREATE TABLE ml.campaigns (campaign_id VARCHAR, created_at TIMESTAMP, as_of DATE)")
    con.execute("INSERT INTO ml.campaigns VALUES ('old', TIMESTAMP '2026-01-01 10:00', DATE '2026-01-01'), "
                "('new', TIMESTAMP '2026-01-20 10:00', DATE '2026-01-20')")
    on = dt.date(2026, 1, 1)
    assert active_campaigns(con, config, on) == ["old", "new"]  # "new" is dated later: held out too
    assert active_campaigns(con, config, on + dt.timedelta(days=29)) == ["old", "new"]
    assert active_campaigns(con, config, on + dt.timedelta(days=30)) == ["new"]
    assert active_campaigns(con, config, dt.date(2026, 2, 19)) == []
    assert parse_config({}, tmp_path).retention.pilot_days == 90
