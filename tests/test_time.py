"""The job over time: the demo business moves on (`churnwh demo-advance`, `churnwh demo-campaign`) and the
builds, pilots and backtests that follow read real new data.

The quick tests advance the raw data only (no build); the multi-period test runs the whole route as
separate CLI processes: build, plan, demo-campaign, build, plan, demo-advance, build, pilot-report, backtest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re

import pyarrow.parquet as pq
import pytest

from churnwh.config import load_config
from tests.helpers import churnwh, make_project, private

OLD_END = dt.date(2025, 12, 31)
EVENT_DATES = {
    "customers": "signup_date", "plan_prices": "valid_from", "transactions": "transaction_ts",
    "product_usage": "activity_date", "support_tickets": "opened_at", "web_sessions": "session_start",
    "email_events": "event_ts", "consent_events": "event_ts", "subscriptions": "start_date",
}


def _past_digest(project, end: dt.date) -> dict[str, str]:
    """sha256 per raw table of its rows dated on or before ``end``, as they looked on ``end``: a subscription's
    end and a ticket's resolution after ``end`` were not known then (the only values an advance fills in)."""
    known = {
        "subscriptions": f"* REPLACE (CASE WHEN end_date <= DATE '{end}' THEN end_date END AS end_date, "
                         f"CASE WHEN end_date <= DATE '{end}' THEN cancel_reason END AS cancel_reason)",
        "support_tickets": f"* REPLACE (CASE WHEN resolved_at < DATE '{end}' + 1 THEN resolved_at END AS resolved_at)",
    }
    digest = {}
    with private(project) as con:
        for table, column in EVENT_DATES.items():
            rows = con.execute(f"SELECT {known.get(table, '*')} FROM raw.{table} "
                               f"WHERE CAST({column} AS DATE) <= DATE '{end}' ORDER BY ALL").fetchall()
            digest[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digest


def _full_digest(project) -> dict[str, str]:
    with private(project) as con:
        return {table: hashlib.sha256(repr(con.execute(f"SELECT * FROM raw.{table} ORDER BY ALL").fetchall())
                                      .encode()).hexdigest() for table in EVENT_DATES}


def _ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_advancing_appends_days_keeps_the_past_and_is_deterministic(tmp_path):
    stepped = make_project(tmp_path / "stepped", customers=300)
    _ok(churnwh(stepped, "demo"))
    before = _past_digest(stepped, OLD_END)
    first = _ok(churnwh(stepped, "demo-advance", "--days", "45"))
    assert "from 2025-12-31 to 2026-02-14" in first.stdout and "as_of = 2026-02-15" in first.stdout
    # the business went on for everyone: every event table got rows up to the new end, none after it
    with private(stepped) as con:
        for table, column in EVENT_DATES.items():
            if table == "plan_prices":
                continue
            last = con.execute(f"SELECT CAST(max({column}) AS DATE) FROM raw.{table}").fetchall()[0][0]
            assert dt.date(2026, 1, 1) <= last <= dt.date(2026, 2, 14), (table, last)
        assert con.execute("SELECT count(*) FROM raw.subscriptions WHERE end_date > DATE '2025-12-31'").fetchall()[0][0]
        assert con.execute("SELECT value FROM _churnwh.meta WHERE name = 'demo_end'").fetchall() == [("2026-02-14",)]
        # no orphan rows: new customers arrive before their events
        assert con.execute("""SELECT count(*) FROM raw.product_usage WHERE customer_id NOT IN
                              (SELECT customer_id FROM raw.customers)""").fetchall()[0][0] == 0
    assert load_config(stepped).variables["as_of"] == dt.date(2026, 2, 15)
    _ok(churnwh(stepped, "demo-advance", "--days", "20"))
    assert _past_digest(stepped, OLD_END) == before  # history is append-only
    # `churnwh demo` (and so every build) keeps the advanced data: same base parameters
    assert "unchanged" in _ok(churnwh(stepped, "demo")).stdout
    assert load_config(stepped).variables["as_of"] == dt.date(2026, 3, 7)
    truth = pq.read_table(stepped / "warehouse" / "demo_truth.parquet").column("month").to_pylist()
    assert max(truth) == dt.date(2026, 3, 1)
    state = stepped / "warehouse" / "demo_state"
    assert state.is_dir() and not (stepped / "warehouse" / "demo_state.new").exists()

    # same seed, same advances: identical tables; one advance of 65 days gives the same data as 45 + 20
    again = make_project(tmp_path / "again", customers=300)
    _ok(churnwh(again, "demo"))
    _ok(churnwh(again, "demo-advance", "--days", "65"))
    assert _full_digest(again) == _full_digest(stepped)
    # and the data of the shorter advance are the longer one's, cut at its end
    assert _past_digest(again, dt.date(2026, 2, 14)) != {} and _past_digest(stepped, dt.date(2026, 2, 14)) == \
        _past_digest(again, dt.date(2026, 2, 14))


def test_demo_advance_refuses_bad_input(tmp_path):
    project = make_project(tmp_path / "p", customers=100)
    no_data = churnwh(project, "demo-advance", "--days", "10")
    assert no_data.returncode == 1 and "run `churnwh build`" in no_data.stderr
    _ok(churnwh(project, "demo"))
    zero = churnwh(project, "demo-advance", "--days", "0")
    assert zero.returncode == 1 and "--days 0 is not allowed" in zero.stderr
    no_campaign = churnwh(project, "demo-campaign", "nope", "--days", "10")
    assert no_campaign.returncode == 1 and "does not exist" in no_campaign.stderr


@pytest.mark.slow
def test_multi_period_run_scores_real_data_and_measures_the_planted_effect(tmp_path):
    """build, plan, demo-campaign (30 days), build, plan, demo-advance, build, pilot-report, backtest.

    800 customers and the suite's tiny network: each build takes about a minute on a loaded two-core machine."""
    project = make_project(tmp_path / "p", customers=800)
    _ok(churnwh(project, "build"))
    before = _past_digest(project, OLD_END)
    _ok(churnwh(project, "plan", "--campaign", "c1", "--budget", "1000000", "--cost", "high=40", "--cost",
                "medium=8", "--cost", "low=1", "--success-rate", "low=0.05", "--control-fraction", "0.5"))
    played = _ok(churnwh(project, "demo-campaign", "c1", "--days", "30", "--effect", "0.9"))
    planted = float(re.search(r"expected ([0-9.]+) percentage points below control", played.stdout).group(1)) / 100
    assert "from 2026-01-01 until 2026-01-31" in played.stdout and "as_of = 2026-01-31" in played.stdout
    assert _past_digest(project, OLD_END) == before

    _ok(churnwh(project, "build"))  # as_of follows the data: 2026-01-31
    with private(project) as con:
        [(as_of,)] = con.execute("SELECT DISTINCT as_of FROM ml.churn_scores").fetchall()
        scored = con.execute("""SELECT avg(active_days_30d), avg(usage_minutes_30d), avg(purchases_90d)
                                FROM marts.scoring_set""").fetchall()[0]
        trained = con.execute("""SELECT avg(active_days_30d) FROM marts.training_set
                                 WHERE observation_date >= DATE '2025-06-01'""").fetchall()[0][0]
    assert as_of == dt.date(2026, 1, 31)
    # the bug of issue 15: after moving time on, every scored customer had zero usage
    assert min(scored) > 0 and scored[0] > 0.5 * trained, (scored, trained)

    report = _ok(churnwh(project, "pilot-report", "c1"))
    with private(project) as con:
        low, effect, high, n_t, n_c = con.execute(
            "SELECT ci_low, effect, ci_high, treated, control FROM ml.pilot_results WHERE campaign_id = 'c1'"
        ).fetchall()[0]
    assert low <= planted <= high, (report.stdout, planted)

    _ok(churnwh(project, "plan", "--campaign", "c2", "--budget", "1000000", "--cost", "high=40", "--cost",
                "medium=8", "--cost", "low=1", "--success-rate", "low=0.05"))
    _ok(churnwh(project, "demo-advance", "--days", "110"))
    _ok(churnwh(project, "build"))
    _ok(churnwh(project, "pilot-report", "c2"))
    backtest = _ok(churnwh(project, "backtest"))
    with private(project) as con:
        rows = con.execute("""SELECT b.as_of, b.customers, b.roc_auc, r.test_roc_auc FROM ml.backtest b
                              JOIN ml.model_runs r ON r.version = b.model_version ORDER BY b.as_of""").fetchall()
    assert rows, backtest.stdout
    snapshot, customers, auc, test_auc = rows[0]
    assert snapshot == dt.date(2026, 1, 1) and customers > 200
    # The scores of 2026-01-01 against what happened in the advanced data (labels 14-104 days later).
    # A few hundred customers and a few dozen churners: each ROC-AUC has a standard error of about
    # 0.04-0.05, so their difference about 0.07; 0.15 is about two of them.
    assert auc is not None and abs(auc - test_auc) <= 0.15, (auc, test_auc)
    assert math.isfinite(effect) and n_t > 0 and n_c > 0
