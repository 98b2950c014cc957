"""Bring your own data, event-log route (issue 16, items 4, 5, 6): a purchase log with no subscriptions
becomes a non-contractual churn project with `init --events --from` and builds without editing SQL; the
time split's purge gap comes from the label window actually used and every error names the parameters
behind it; customers the spine leaves out are counted, with the reason, in the build output and in
ml.data_quality."""

from __future__ import annotations

import csv
import datetime as dt
import random
import re
from pathlib import Path

import polars as pl
import pytest

from churnwh import config as schema
from churnwh.errors import ChurnwhError, DataError
from churnwh.stages import train as train_stage
from tests.helpers import TINY_NETWORK, churnwh, private

CONSENT_HEADER = "event_id,customer_id,purpose,action,event_ts,source,regulation\n"


def purchase_log(path: Path, *, customers: int = 300, days: int = 730, newcomers: int = 0, seed: int = 7) -> int:
    """A generated purchase log with a planted non-contractual churn pattern: each customer buys at a
    steady rate from a first day until an unobserved last day (exponential lifetime), so a long silence
    and a low rate mean a customer is gone. ``newcomers`` customers buy for the first time in the last
    10 days (too little history to observe). Returns the number of events."""
    rng = random.Random(seed)
    start = dt.date(2024, 1, 1)
    rows = []
    for number in range(customers + newcomers):
        rate = rng.choice([0.015, 0.03, 0.06])
        first = rng.randrange(0, days * 2 // 5) if number < customers else days - 10
        last = first + int(rng.expovariate(1 / 300)) if number < customers else days
        mean_items = rng.choice([1, 2, 4])
        bought = False
        for day in range(first, min(last, days)):
            if rng.random() < rate or (number >= customers and not bought):
                bought = True
                moment = dt.datetime.combine(start + dt.timedelta(days=day), dt.time(rng.randrange(24)))
                rows.append((f"C{number:04d}", moment.isoformat(sep=" "), round(rng.uniform(5, 80), 2),
                             rng.randint(1, 2 * mean_items), rng.choice(["web", "store", "app"])))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "purchased_at", "amount", "n_items", "channel"])
        writer.writerows(rows)
    return len(rows)


def test_purchase_log_builds_end_to_end_and_reports_dropped_customers(tmp_path):
    log = tmp_path / "purchases.csv"
    assert 2000 < purchase_log(log, newcomers=5) < 6000
    project = tmp_path / "shop"
    init = churnwh(Path("."), "init", str(project), "--events", "--from", str(log))
    assert init.returncode == 0, init.stderr
    assert "purge gap 90 days = holdout_days" in init.stdout
    config = (project / "churnwh.toml").read_text()
    for parameter in ("holdout_days = 90", "calibration_days = 365", "min_history_days = 28", "history_start =",
                      "observation_months = 1", 'as_of = "2025-12-31"', "purge gap"):
        assert parameter in config, parameter
    assert "C0001" not in config and "C0001" not in init.stdout
    assert (project / "data" / "consent_events.csv").read_text() == CONSENT_HEADER  # declared, so made
    (project / "churnwh.toml").write_text(config.replace("\n[network]\n", TINY_NETWORK, 1))

    build = churnwh(project, "build")
    assert build.returncode == 0, build.stderr
    # the spine's filter drops the newcomers, and the build says how many and why
    assert re.search(r"rows dropped: features\.observation_spine left out 5 customers \(5: first purchase less than "
                     r"min_history_days", build.stderr), build.stderr
    auc = float(re.search(r"test ROC-AUC (\d\.\d+)", build.stdout).group(1))
    assert auc > 0.6  # recency and frequency separate the planted churners from chance
    with private(project) as db:
        dropped, because = db.execute("SELECT dropped_customers, dropped_because FROM ml.data_quality "
                                      "WHERE model = 'features.observation_spine'").fetchone()
        assert dropped == 5 and because.startswith("5: first purchase less than min_history_days")
        columns = [row[0] for row in db.execute("DESCRIBE marts.training_set").fetchall()]
        # every event column that can be a feature is one: n_items and channel as well as amount
        for feature in ("amount_calibration", "n_items_calibration", "n_items_per_event", "channel_most_often",
                        "days_since_last_event", "events_calibration"):
            assert feature in columns, feature
        assert "purchased_at" not in columns and "customer_id" not in columns
        dates = db.execute("SELECT count(DISTINCT observation_date), count(DISTINCT churned), "
                           "max(observation_date) FROM marts.training_set").fetchone()
        assert dates[0] >= 10 and dates[1] == 2
        assert dates[2] + dt.timedelta(days=90) <= dt.date(2025, 12, 31)  # every label window has ended
        assert db.execute("SELECT count(*) FROM ml.churn_scores").fetchone()[0] > 0


def test_too_short_a_purchase_log_is_refused_naming_the_windows(tmp_path):
    log = tmp_path / "purchases.csv"
    purchase_log(log, customers=60, days=200)
    result = churnwh(Path("."), "init", str(tmp_path / "shop"), "--events", "--from", str(log))
    assert result.returncode == 1
    assert "purge gap 90 days = holdout_days 90" in result.stderr
    assert "--holdout-days" in result.stderr and "nothing was written" in result.stderr
    assert not (tmp_path / "shop").exists()
    shorter = churnwh(Path("."), "init", str(tmp_path / "shop"), "--events", "--from", str(log),
                      "--holdout-days", "45")
    assert shorter.returncode == 0, shorter.stderr
    assert "holdout_days = 45" in (tmp_path / "shop" / "churnwh.toml").read_text()


def _config(variables: dict, network: dict | None = None) -> schema.Config:
    return schema.parse_config({"vars": variables, "network": network or {}}, Path("/project"))


def test_purge_gap_follows_the_label_window_actually_used():
    assert train_stage.purge_gap(_config({})) == (134, "purge gap 134 days = lead_days 14 + label_window_days 90 "
                                                       "+ churn_gap_days 30")
    assert train_stage.purge_gap(_config({"inactivity_days": 273}))[0] == 273  # never shorter than the window
    assert train_stage.purge_gap(_config({"inactivity_days": 60}))[0] == 60    # nor over-purging
    assert train_stage.purge_gap(_config({"holdout_days": 90}))[0] == 90
    assert train_stage.purge_gap(_config({"holdout_days": 90}, {"purge_days": 120}))[0] == 120
    with pytest.raises(ChurnwhError, match="purge_days = 30 is shorter than the label window"):
        train_stage.purge_gap(_config({"holdout_days": 90}, {"purge_days": 30}))


def test_a_time_split_the_data_cannot_hold_names_the_parameters():
    dates = [dt.date(2025, 1, 1) + dt.timedelta(days=30 * i) for i in range(5)]  # 120 days of dates
    frame = pl.DataFrame({"observation_date": dates * 4, "churned": [0, 1] * 10})
    with pytest.raises(DataError) as err:
        train_stage.check_time_split(frame, _config({}), "observation_date")
    message = str(err.value)
    assert "purge gap 134 days = lead_days 14 + label_window_days 90 + churn_gap_days 30" in message
    assert "5 observation dates span 120 days" in message
    assert "lower lead_days or label_window_days or churn_gap_days" in message
    train_stage.check_time_split(frame, _config({"lead_days": 0, "label_window_days": 30, "churn_gap_days": 0}),
                                 "observation_date")


@pytest.mark.parametrize("flags, label_parameters", [
    ((), ("lead_days", "label_window_days", "churn_gap_days", "history_start", "observation_months")),
    (("--events",), ("inactivity_days", "calibration_days", "min_history_days", "history_start")),
    (("--flat",), ()),
])
def test_every_parameter_of_the_split_and_the_label_is_in_the_scaffolded_config(tmp_path, flags, label_parameters):
    project = tmp_path / "proj"
    assert churnwh(Path("."), "init", str(project), *flags).returncode == 0
    config = (project / "churnwh.toml").read_text()
    for parameter in (*label_parameters, "purge gap", "purge_days", "test_dates", "valid_dates", "valid_fraction",
                      "test_fraction", "split_column", 'date_column = "observation_date"'):
        assert parameter in config, parameter


def test_an_empty_training_set_names_the_label_window_and_the_dates():
    with pytest.raises(DataError, match=r"has no rows: .*holdout_days 90 days.*as_of 2026-01-01"):
        train_stage.check_not_empty(pl.DataFrame({"churned": []}), _config({"holdout_days": 90}))


def test_event_columns_with_spaces_and_keywords_become_valid_models(tmp_path):
    from churnwh.sqlmodels.project import load_project

    log = tmp_path / "purchases.csv"
    purchase_log(log, customers=80)
    lines = log.read_text().splitlines()
    lines[0] = '"Customer ID",order time,Amount (EUR),select,channel'
    log.write_text("\n".join(lines) + "\n")
    project = tmp_path / "shop"
    result = churnwh(Path("."), "init", str(project), "--events", "--from", str(log), "--id-column", "Customer ID")
    assert result.returncode == 0, result.stderr
    models = load_project(project / "sql")
    assert "features.customer_features" in models.order
    features = (project / "sql" / "features" / "customer_features.sql").read_text()
    assert "select_calibration" in features and "amount_eur_calibration" in features


def test_an_order_key_is_not_summed_into_a_feature(tmp_path):
    """An order id (a different number on every event) is a key, not a quantity: summing or averaging it
    gives a feature that tracks time (ids grow with it), not behaviour."""
    log = tmp_path / "purchases.csv"
    purchase_log(log, customers=80)
    lines = log.read_text().splitlines()
    log.write_text("\n".join(["order_id," + lines[0]] + [f"{n},{line}" for n, line in enumerate(lines[1:], 1001)])
                   + "\n")
    project = tmp_path / "shop"
    result = churnwh(Path("."), "init", str(project), "--events", "--from", str(log))
    assert result.returncode == 0, result.stderr
    features = (project / "sql" / "features" / "customer_features.sql").read_text()
    assert "order_id" not in features and "n_items_calibration" in features
    staging = (project / "sql" / "staging" / "events.sql").read_text()
    assert "order_id: a different value on every event" in staging


@pytest.mark.parametrize("first_day", [dt.date(2022, 2, 17), dt.date(2024, 5, 31), dt.date(2025, 3, 3)])
def test_the_holdout_a_refusal_suggests_is_the_longest_that_works(first_day):
    """The suggested --holdout-days must itself pass: the observation dates are a monthly grid, so a third
    of the span is not always enough room for test, validation and training dates a purge gap apart."""
    from churnwh.sources.scaffold.event_log import EventLog, split_feasibility

    def log(holdout: int) -> EventLog:
        return EventLog(path=Path("purchases.csv"), format="csv", delimiter=",", date_format=None, columns=[],
                        id_column="client", time_column="order_date", rows=1000, customers=100,
                        first_day=first_day, last_day=dt.date(2025, 12, 31), holdout_days=holdout)

    problem = split_feasibility(log(1500))
    suggested = int(re.search(r"pass --holdout-days (\d+) or less", problem).group(1))
    assert split_feasibility(log(suggested)) is None, (suggested, problem)
    assert split_feasibility(log(suggested + 1)) is not None


def test_a_purchase_logs_split_error_names_only_its_own_window():
    """A purchase log has no lead time and no churn gap: its refusal names holdout_days, nothing else."""
    dates = [dt.date(2025, 1, 1) + dt.timedelta(days=30 * i) for i in range(5)]
    frame = pl.DataFrame({"observation_date": dates * 4, "churned": [0, 1] * 10})
    with pytest.raises(DataError) as err:
        train_stage.check_time_split(frame, _config({"holdout_days": 90}), "observation_date")
    message = str(err.value)
    assert "purge gap 90 days = holdout_days 90" in message and "lower holdout_days in [vars]" in message
    assert "lead" not in message and "churn gap" not in message, message


def test_a_purchase_logs_id_column_named_client_is_guessed_and_no_row_number_is_offered(tmp_path):
    log = tmp_path / "purchases.csv"
    purchase_log(log, customers=60, days=500)
    text = log.read_text()
    (tmp_path / "by_client.csv").write_text(text.replace("customer_id,", "client,", 1))
    guessed = churnwh(Path("."), "init", str(tmp_path / "shop"), "--events", "--from", str(tmp_path / "by_client.csv"))
    assert guessed.returncode == 0, guessed.stderr
    assert 'id_column = "client"' in (tmp_path / "shop" / "churnwh.toml").read_text()
    # Row numbers cannot tie a customer's events together: an event log without an id is not offered them.
    (tmp_path / "no_id.csv").write_text(text.replace("customer_id,", "buyer_ref,", 1))
    refused = churnwh(Path("."), "init", str(tmp_path / "other"), "--events", "--from", str(tmp_path / "no_id.csv"))
    assert refused.returncode == 1 and "pass --id-column COLUMN" in refused.stderr, refused.stderr
    assert "@row" not in refused.stderr
