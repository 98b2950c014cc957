"""The demo warehouse simulator: determinism, the spec's raw schema, realism and messiness."""

from __future__ import annotations

import datetime

import duckdb
import pyarrow.parquet as pq
import pytest

from churnwh.sources.demo import TRUE_DRIVERS, DemoData, simulate, write_raw, write_truth

EXPECTED_SCHEMA = {
    "customers": [("customer_id", "VARCHAR"), ("full_name", "VARCHAR"), ("email", "VARCHAR"),
                  ("phone", "VARCHAR"), ("street_address", "VARCHAR"), ("birth_date", "DATE"),
                  ("gender", "VARCHAR"), ("region", "VARCHAR"), ("signup_date", "DATE"),
                  ("acquisition_channel", "VARCHAR")],
    "plans": [("plan_id", "VARCHAR"), ("plan_name", "VARCHAR"), ("tier_rank", "INTEGER")],
    "plan_prices": [("plan_id", "VARCHAR"), ("monthly_price", "DOUBLE"), ("valid_from", "DATE")],
    "subscriptions": [("subscription_id", "VARCHAR"), ("customer_id", "VARCHAR"), ("plan_id", "VARCHAR"),
                      ("start_date", "DATE"), ("end_date", "DATE"), ("cancel_reason", "VARCHAR")],
    "transactions": [("transaction_id", "VARCHAR"), ("customer_id", "VARCHAR"),
                     ("transaction_ts", "TIMESTAMP"), ("amount", "DOUBLE"), ("category", "VARCHAR"),
                     ("loaded_at", "TIMESTAMP")],
    "product_usage": [("customer_id", "VARCHAR"), ("activity_date", "DATE"), ("sessions", "INTEGER"),
                      ("minutes", "DOUBLE"), ("feature_used", "VARCHAR")],
    "support_tickets": [("ticket_id", "VARCHAR"), ("customer_id", "VARCHAR"), ("opened_at", "TIMESTAMP"),
                        ("resolved_at", "TIMESTAMP"), ("category", "VARCHAR"), ("satisfaction", "INTEGER")],
    "web_sessions": [("session_id", "VARCHAR"), ("customer_id", "VARCHAR"), ("session_start", "TIMESTAMP"),
                     ("pages", "INTEGER"), ("device", "VARCHAR")],
    "email_events": [("event_id", "VARCHAR"), ("customer_id", "VARCHAR"), ("campaign_id", "VARCHAR"),
                     ("event_type", "VARCHAR"), ("event_ts", "TIMESTAMP")],
    "consent_events": [("event_id", "VARCHAR"), ("customer_id", "VARCHAR"), ("purpose", "VARCHAR"),
                       ("action", "VARCHAR"), ("event_ts", "TIMESTAMP"), ("source", "VARCHAR"),
                       ("regulation", "VARCHAR")],
}
EVENT_TABLES = ("subscriptions", "transactions", "product_usage", "support_tickets", "web_sessions",
                "email_events", "consent_events")


@pytest.fixture(scope="module", params=[None, 150], ids=["one-block", "blocks-of-150"])
def data(request) -> DemoData:
    """The demo in one block (the default up to 100,000 customers), and in blocks of 150 customers with their
    own random streams: every test below holds for both (the hazard, the advance, the schema, the mess)."""
    if request.param is None:
        return simulate(500, seed=11)
    return simulate(500, seed=11, block_customers=request.param)


@pytest.fixture(scope="module")
def con(data, tmp_path_factory) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path_factory.mktemp("demo") / "warehouse.duckdb"))
    write_raw(connection, data)
    connection.register("truth", data.truth)
    yield connection
    connection.close()


def scalar(con, sql: str):
    return con.execute(sql).fetchall()[0][0]


def test_same_seed_gives_identical_tables_and_other_seed_differs():
    first, again, other = simulate(300, seed=5), simulate(300, seed=5), simulate(300, seed=6)
    for name, table in first.tables.items():
        assert table.equals(again.tables[name]), name
    assert first.truth.equals(again.truth)
    assert not first.tables["customers"].equals(other.tables["customers"])
    assert not first.tables["product_usage"].equals(other.tables["product_usage"])


def test_raw_schema_matches_spec_exactly(con):
    for table, expected in EXPECTED_SCHEMA.items():
        actual = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
        assert actual == expected, table


def test_truth_schema(data):
    assert [(f.name, str(f.type)) for f in data.truth.schema] == [
        ("customer_id", "string"), ("month", "date32[day]"), ("churn_hazard", "double")]


def test_every_event_belongs_to_a_known_customer(con):
    for table in EVENT_TABLES + ("truth",):
        orphans = scalar(con, f"SELECT count(*) FROM {'truth' if table == 'truth' else 'raw.' + table} "
                              "WHERE customer_id NOT IN (SELECT customer_id FROM raw.customers)")
        assert orphans == 0, table


def test_customer_ids_and_emails_unique_and_well_formed(con):
    assert scalar(con, "SELECT count(DISTINCT customer_id) = count(*) FROM raw.customers")
    assert scalar(con, "SELECT count(DISTINCT email) = count(*) FROM raw.customers")
    assert scalar(con, "SELECT bool_and(regexp_full_match(customer_id, 'C[0-9]{8}')) FROM raw.customers")


def test_signups_span_history_and_some_precede_start(con):
    before, during = con.execute(
        "SELECT count(*) FILTER (signup_date < DATE '2023-01-01'), "
        "count(*) FILTER (signup_date >= DATE '2023-01-01') FROM raw.customers").fetchall()[0]
    assert before > 50 and during > 200
    assert scalar(con, "SELECT count(*) FROM raw.subscriptions WHERE start_date < DATE '2023-01-01'") >= before


def test_messiness_is_planted(con):
    assert scalar(con, "SELECT count(*) - count(DISTINCT transaction_id) FROM raw.transactions") > 0
    assert scalar(con, "SELECT count(*) - count(DISTINCT event_id) FROM raw.email_events") > 0
    assert scalar(con, "SELECT count(*) FROM (SELECT count(*) AS n FROM raw.product_usage "
                       "GROUP BY ALL HAVING n > 1)") > 0
    for table, column in (("customers", "region"), ("customers", "acquisition_channel"),
                          ("transactions", "category"), ("email_events", "event_type")):
        raw, clean = con.execute(f"SELECT count(DISTINCT {column}), count(DISTINCT lower(trim({column}))) "
                                 f"FROM raw.{table}").fetchall()[0]
        assert raw > clean, (table, column)
    for table, column in (("customers", "birth_date"), ("customers", "gender"),
                          ("customers", "acquisition_channel"), ("transactions", "amount"),
                          ("product_usage", "minutes"), ("support_tickets", "satisfaction")):
        assert scalar(con, f"SELECT count(*) FILTER ({column} IS NULL) FROM raw.{table}") > 0, column
    assert scalar(con, "SELECT count(*) FROM raw.transactions WHERE amount < 0") > 0
    assert scalar(con, "SELECT max(minutes) > 20 * median(minutes) FROM raw.product_usage")
    assert scalar(con, "SELECT count(*) FROM raw.transactions "
                       "WHERE loaded_at > transaction_ts + INTERVAL 1 DAY") > 0


def test_product_usage_one_row_per_active_day_apart_from_duplicates(con):
    distinct_rows, days = con.execute(
        "SELECT count(*), count(DISTINCT (customer_id, activity_date)) "
        "FROM (SELECT DISTINCT * FROM raw.product_usage)").fetchall()[0]
    assert distinct_rows == days


def test_truth_covers_active_months_with_hazards_in_open_unit_interval(con):
    assert scalar(con, "SELECT bool_and(churn_hazard > 0 AND churn_hazard < 1) FROM truth")
    assert scalar(con, "SELECT bool_and(day(month) = 1) FROM truth")
    assert scalar(con, "SELECT count(*) = count(DISTINCT (customer_id, month)) FROM truth")
    # a customer subscribed through a whole month was at risk in it
    missing = scalar(con, """
        SELECT count(*) FROM raw.subscriptions s
        WHERE s.start_date < DATE '2025-06-01' AND coalesce(s.end_date, DATE '2099-01-01') >= DATE '2025-07-01'
          AND NOT EXISTS (SELECT 1 FROM truth t WHERE t.customer_id = s.customer_id
                          AND t.month = DATE '2025-06-01')""")
    assert missing == 0
    assert scalar(con, "SELECT count(*) FROM truth t JOIN raw.customers c USING (customer_id) "
                       "WHERE c.signup_date >= t.month") == 0


def test_churn_base_rate_is_plausible(con):
    monthly = scalar(con, "SELECT avg(churn_hazard) FROM truth")
    assert 0.01 < monthly < 0.06
    within_90_days = scalar(con, """
        WITH ordered AS (
            SELECT customer_id, end_date,
                   lead(start_date) OVER (PARTITION BY customer_id ORDER BY start_date) AS next_start
            FROM raw.subscriptions),
        churn AS (SELECT customer_id, end_date AS churn_date FROM ordered
                  WHERE end_date IS NOT NULL AND (next_start IS NULL OR next_start - end_date > 30))
        SELECT avg(EXISTS (SELECT 1 FROM churn c WHERE c.customer_id = t.customer_id
                           AND c.churn_date >= t.month AND c.churn_date < t.month + 90)::INTEGER)
        FROM truth t WHERE t.month BETWEEN DATE '2023-07-01' AND DATE '2025-06-01'""")
    assert 0.04 < within_90_days < 0.16


def test_short_and_long_re_signups_exist(con):
    short, long = con.execute("""
        WITH gaps AS (
            SELECT lead(start_date) OVER (PARTITION BY customer_id ORDER BY start_date) - end_date AS gap
            FROM raw.subscriptions)
        SELECT count(*) FILTER (gap BETWEEN 1 AND 30), count(*) FILTER (gap > 30) FROM gaps""").fetchall()[0]
    assert short > 0 and long > 0
    assert scalar(con, "SELECT count(*) FROM (SELECT lead(start_date) OVER (PARTITION BY customer_id "
                       "ORDER BY start_date) - end_date AS gap FROM raw.subscriptions) WHERE gap < 0") == 0


def test_plan_changes_start_the_next_subscription_the_same_day(con):
    assert scalar(con, """
        SELECT count(*) FROM (SELECT end_date, cancel_reason,
               lead(start_date) OVER (PARTITION BY customer_id ORDER BY start_date) AS next_start
               FROM raw.subscriptions)
        WHERE cancel_reason IS NULL AND end_date IS NOT NULL AND next_start = end_date""") > 0
    assert scalar(con, "SELECT max(n) FROM (SELECT count(*) FILTER (end_date IS NULL) AS n "
                       "FROM raw.subscriptions GROUP BY customer_id)") == 1


def test_some_plan_prices_rise_during_history(con):
    assert scalar(con, """
        SELECT count(*) FROM (SELECT monthly_price, valid_from,
               lag(monthly_price) OVER (PARTITION BY plan_id ORDER BY valid_from) AS previous
               FROM raw.plan_prices)
        WHERE valid_from BETWEEN DATE '2023-01-01' AND DATE '2025-12-31' AND monthly_price > previous""") >= 2


def test_consent_events_follow_spec_conventions(con):
    assert scalar(con, "SELECT count(*) FROM raw.consent_events WHERE source = 'gpc' "
                       "AND NOT (purpose = 'profiling' AND action = 'withdraw' AND regulation = 'CCPA')") == 0
    assert scalar(con, "SELECT count(*) FROM raw.consent_events WHERE source = 'gpc'") > 0
    objectors, marketing_out, customers = con.execute("""
        SELECT count(DISTINCT customer_id) FILTER (purpose = 'profiling' AND action = 'withdraw'),
               count(DISTINCT customer_id) FILTER (purpose = 'marketing' AND action = 'withdraw'),
               (SELECT count(*) FROM raw.customers)
        FROM raw.consent_events""").fetchall()[0]
    assert 0.015 * customers < objectors < 0.09 * customers
    assert marketing_out > objectors
    assert scalar(con, """
        SELECT count(*) FROM raw.consent_events g JOIN raw.consent_events w
          ON g.customer_id = w.customer_id AND g.purpose = 'profiling' AND w.purpose = 'profiling'
         AND w.action = 'withdraw' AND g.action = 'grant' AND g.event_ts > w.event_ts""") > 0


def test_events_stay_inside_the_history(con):
    assert scalar(con, "SELECT max(activity_date) <= DATE '2025-12-31' AND min(activity_date) >= DATE '2023-01-01' "
                       "FROM raw.product_usage")
    assert scalar(con, "SELECT max(event_ts) < TIMESTAMP '2026-01-01' FROM raw.email_events")


def test_write_raw_round_trip_replaces_tables(data, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        write_raw(connection, data)
        write_raw(connection, data)  # CREATE OR REPLACE: a second load does not fail or double rows
    with duckdb.connect(str(path), read_only=True) as connection:
        for name, table in data.tables.items():
            assert scalar(connection, f"SELECT count(*) FROM raw.{name}") == table.num_rows
        assert connection.sql("SELECT * FROM raw.customers ORDER BY customer_id").to_arrow_table() \
            .equals(data.tables["customers"].sort_by("customer_id").combine_chunks())


def test_write_truth_writes_parquet(data, tmp_path):
    path = tmp_path / "truth" / "truth.parquet"
    write_truth(data, path)
    assert pq.read_table(path).equals(data.truth.combine_chunks())


def test_custom_history_window_and_drivers():
    small = simulate(100, seed=3, start=datetime.date(2024, 1, 1), end=datetime.date(2024, 12, 31))
    months = small.truth.column("month").to_pylist()
    assert min(months) == datetime.date(2024, 1, 1) and max(months) == datetime.date(2024, 12, 1)
    assert len(TRUE_DRIVERS) >= 5 and all(isinstance(d, str) and d for d in TRUE_DRIVERS)


def test_churn_oracle_gives_calibrated_label_probabilities_for_customers_at_risk():
    from churnwh.sources.demo import churn_oracle

    month = datetime.date(2023, 7, 1)
    oracle = churn_oracle(400, seed=11, observation_date=month, end=datetime.date(2023, 12, 31), replicates=4)
    assert [f.name for f in oracle.schema] == ["customer_id", "observation_date", "oracle_probability"]
    probabilities = oracle.column("oracle_probability").to_numpy()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert 0.02 < probabilities.mean() < 0.3
    # exactly the customers the simulator had at risk in that month
    truth = simulate(400, seed=11, end=datetime.date(2023, 12, 31)).truth
    at_risk = {c for c, m in zip(truth.column("customer_id").to_pylist(), truth.column("month").to_pylist())
               if m == month}
    assert set(oracle.column("customer_id").to_pylist()) == at_risk
    again = churn_oracle(400, seed=11, observation_date=month, end=datetime.date(2023, 12, 31), replicates=4)
    assert again.equals(oracle)
    with pytest.raises(ValueError, match="label window"):
        churn_oracle(400, seed=11, observation_date=datetime.date(2023, 11, 1), end=datetime.date(2023, 12, 31))


HAZARD_FROM_RECORD = """
WITH month AS (SELECT DATE '2024-06-01' AS ms),
subs AS (
    SELECT customer_id, plan_id, start_date, end_date,
           CASE WHEN start_date - lag(end_date) OVER w <= 30 THEN 0 ELSE 1 END AS new_period
    FROM raw.subscriptions WINDOW w AS (PARTITION BY customer_id ORDER BY start_date, subscription_id)),
periods AS (
    SELECT *, sum(new_period) OVER (PARTITION BY customer_id ORDER BY start_date, end_date NULLS LAST
                                    ROWS UNBOUNDED PRECEDING) AS period FROM subs),
period_starts AS (SELECT customer_id, period, min(start_date) AS period_start FROM periods GROUP BY ALL),
latest AS (  -- the latest subscription started before the month
    SELECT p.customer_id, arg_max(p.plan_id, p.start_date) AS plan_id, arg_max(p.period, p.start_date) AS period
    FROM periods p, month WHERE p.start_date < ms GROUP BY p.customer_id),
at_ms AS (SELECT l.customer_id, l.plan_id, ps.period_start FROM latest l JOIN period_starts ps USING (customer_id, period)),
use_days AS (
    SELECT customer_id, count(DISTINCT activity_date) FILTER (activity_date >= ms - 30) AS a30,
           count(DISTINCT activity_date) AS a90
    FROM raw.product_usage, month WHERE activity_date >= ms - 90 AND activity_date < ms GROUP BY ALL),
web AS (
    SELECT customer_id, count(*) FILTER (CAST(session_start AS DATE) >= ms - 30) AS w30, count(*) AS w90
    FROM raw.web_sessions, month
    WHERE CAST(session_start AS DATE) >= ms - 90 AND CAST(session_start AS DATE) < ms GROUP BY ALL),
tickets AS (
    SELECT customer_id,
           count(*) FILTER (resolved_at IS NULL OR CAST(resolved_at AS DATE) >= ms) AS unresolved,
           avg(satisfaction) FILTER (CAST(resolved_at AS DATE) < ms) AS satisfaction
    FROM raw.support_tickets, month WHERE CAST(opened_at AS DATE) < ms GROUP BY ALL),
mail AS (
    SELECT customer_id,
           bool_or(lower(trim(event_type)) = 'opened') AS opened, bool_or(lower(trim(event_type)) = 'clicked') AS clicked
    FROM raw.email_events, month
    WHERE CAST(event_ts AS DATE) >= ms - 90 AND CAST(event_ts AS DATE) < ms GROUP BY ALL),
price AS (
    SELECT plan_id,
           arg_max(monthly_price, valid_from) FILTER (valid_from <= ms - 1)
             > arg_max(monthly_price, valid_from) FILTER (valid_from <= ms - 91) AS rose
    FROM raw.plan_prices, month GROUP BY plan_id),
x AS (
    SELECT t.churn_hazard, s.plan_id, lower(trim(c.acquisition_channel)) AS channel,
           (ms - s.period_start) / 30.44 AS months,
           coalesce(u.a30, 0) AS a30, coalesce(u.a90, 0) AS a90, coalesce(w.w30, 0) AS w30, coalesce(w.w90, 0) AS w90,
           coalesce(k.unresolved, 0) AS unresolved, k.satisfaction, coalesce(m.opened, false) AS opened,
           coalesce(m.clicked, false) AS clicked, pr.rose
    FROM truth t JOIN month ON t.month = month.ms
    JOIN at_ms s ON s.customer_id = t.customer_id
    JOIN raw.customers c ON c.customer_id = t.customer_id
    LEFT JOIN use_days u ON u.customer_id = t.customer_id LEFT JOIN web w ON w.customer_id = t.customer_id
    LEFT JOIN tickets k ON k.customer_id = t.customer_id LEFT JOIN mail m ON m.customer_id = t.customer_id
    JOIN price pr ON pr.plan_id = s.plan_id
    WHERE c.acquisition_channel IS NOT NULL)
SELECT * FROM x
"""


def test_hazard_is_the_documented_function_of_the_recorded_data(con):
    """The truth hazard is computed from what the raw tables record before the month, nothing hidden."""
    import numpy as np

    from churnwh.sources import demo

    rows = con.sql(HAZARD_FROM_RECORD).fetchnumpy()
    assert rows["churn_hazard"].size > 150

    def trend(last_30, last_90):
        before = (last_90 - last_30) / 2.0
        total = last_30 + before
        return np.where(total > 0, (last_30 - before) / np.maximum(total, 1e-9), 0.0)

    plan = np.array([demo.PLAN_IDS.index(p) for p in rows["plan_id"]])
    channel = np.array([demo.CHANNELS.index(c) for c in rows["channel"]])
    a30, a90, w30, w90 = (rows[k].astype(float) for k in ("a30", "a90", "w30", "w90"))
    satisfaction = np.ma.filled(np.ma.asarray(rows["satisfaction"], dtype=float), np.nan)
    z = (demo.HAZARD_INTERCEPT + demo.PLAN_EFFECT[plan] + demo.CHANNEL_EFFECT[channel]
         - 0.45 * np.log1p(rows["months"]) - 1.4 * np.log1p(a90 / 3) - 0.4 * np.log1p(w30) + 0.8 * (a90 < 4)
         + 1.4 * np.maximum(-trend(a30, a90), 0) + 0.4 * np.maximum(-trend(w30, w90), 0)
         + np.minimum(rows["unresolved"], 2) * (0.5 + 1.0 * (rows["months"] < 6))
         + 0.8 * (np.nan_to_num(satisfaction, nan=5.0) < 2.5)
         + rows["rose"] * (0.25 + 1.5 * (a30 < 4))
         - 0.55 * rows["clicked"] - 0.25 * rows["opened"])
    expected = 0.8 / (1 + np.exp(-z))
    np.testing.assert_allclose(rows["churn_hazard"], expected, rtol=1e-5)


def test_an_advance_continues_the_same_mechanism_from_the_same_state(data, tmp_path):
    """After two months of advance, the hazard of the third is still the documented function of what the
    raw tables (history plus advanced rows) record before it: the hidden state went on, it was not redrawn.
    A list-price rise of the advance (basic, 2026-02-01) is in that record."""
    import datetime as dt

    import numpy as np
    import pyarrow as pa

    from churnwh.sources import demo
    from churnwh.sources.demo import advance

    state_dir = tmp_path / "state"
    advance.save(data.continuation, state_dir)  # through a saved state, as `churnwh demo-advance` does
    cont = advance.load(state_dir)
    connection = duckdb.connect(str(tmp_path / "advanced.duckdb"))
    write_raw(connection, data)
    truths = [data.truth]
    for days in (40, 21, 3):  # to 2026-02-09, 2026-03-02 and 2026-03-05: months released in parts
        release = advance.advance(cont, days)
        connection.begin()
        advance.write_release(connection, release)
        connection.commit()
        truths.append(release.truth)
    assert release.data_end == dt.date(2026, 3, 5)
    connection.register("truth", pa.concat_tables(truths))
    rows = connection.sql(HAZARD_FROM_RECORD.replace("2024-06-01", "2026-03-01")).fetchnumpy()
    assert rows["churn_hazard"].size > 150 and rows["rose"][rows["plan_id"] == "basic"].all()
    # the new month's hazards, recomputed from the raw record as in the test below
    plan = np.array([demo.PLAN_IDS.index(p) for p in rows["plan_id"]])
    channel = np.array([demo.CHANNELS.index(c) for c in rows["channel"]])
    a30, a90, w30, w90 = (rows[k].astype(float) for k in ("a30", "a90", "w30", "w90"))
    satisfaction = np.ma.filled(np.ma.asarray(rows["satisfaction"], dtype=float), np.nan)

    def trend(last_30, last_90):
        before = (last_90 - last_30) / 2.0
        return np.where(last_30 + before > 0, (last_30 - before) / np.maximum(last_30 + before, 1e-9), 0.0)

    z = (demo.HAZARD_INTERCEPT + demo.PLAN_EFFECT[plan] + demo.CHANNEL_EFFECT[channel]
         - 0.45 * np.log1p(rows["months"]) - 1.4 * np.log1p(a90 / 3) - 0.4 * np.log1p(w30) + 0.8 * (a90 < 4)
         + 1.4 * np.maximum(-trend(a30, a90), 0) + 0.4 * np.maximum(-trend(w30, w90), 0)
         + np.minimum(rows["unresolved"], 2) * (0.5 + 1.0 * (rows["months"] < 6))
         + 0.8 * (np.nan_to_num(satisfaction, nan=5.0) < 2.5)
         + rows["rose"] * (0.25 + 1.5 * (a30 < 4))
         - 0.55 * rows["clicked"] - 0.25 * rows["opened"])
    np.testing.assert_allclose(rows["churn_hazard"], 0.8 / (1 + np.exp(-z)), rtol=1e-5)
    # nothing after the data end was released, and every event still belongs to a known customer
    for table, column in (("product_usage", "activity_date"), ("transactions", "transaction_ts"),
                          ("web_sessions", "session_start"), ("email_events", "event_ts")):
        assert scalar(connection, f"SELECT CAST(max({column}) AS DATE) FROM raw.{table}") == dt.date(2026, 3, 5)
        assert scalar(connection, f"SELECT count(*) FROM raw.{table} WHERE customer_id NOT IN "
                                  "(SELECT customer_id FROM raw.customers)") == 0
    assert scalar(connection, "SELECT count(*) FROM raw.subscriptions WHERE start_date > DATE '2026-03-05' "
                              "OR end_date > DATE '2026-03-05'") == 0
    connection.close()
