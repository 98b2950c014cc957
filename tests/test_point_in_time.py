"""Point-in-time correctness of the demo project's SQL models (sql/staging, sql/features, sql/marts).

The models run here with a tiny stand-in for the model engine: variables are set with SET VARIABLE,
raw.customer_keys is made with md5 (tests only; the build uses keyed HMAC), and every file body runs
as ``CREATE OR REPLACE TABLE schema.name AS <file>`` (the TOML header is a SQL comment).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from churnwh.sources import demo
from churnwh.sqlmodels import incremental, project, run_models
from churnwh.store import warehouse

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"

MODELS: tuple[str, ...] = (
    "staging.customers",
    "staging.plan_prices",
    "staging.subscriptions",
    "staging.transactions",
    "staging.product_usage",
    "staging.support_tickets",
    "staging.web_sessions",
    "staging.email_events",
    "staging.consent_events",
    "staging.consent_state",
    "staging.active_periods",
    "features.observation_spine",
    "features.customer_features",
    "marts.training_set",
    "marts.scoring_set",
    "marts.churn_monthly",
    "marts.revenue_churn_monthly",
    "marts.cohort_retention",
)

VARIABLES: dict[str, object] = {
    "as_of": dt.date(2026, 1, 1),
    "history_start": dt.date(2023, 1, 1),
    "observation_months": 1,
    "min_history_days": 180,
    "lead_days": 14,
    "label_window_days": 90,
    "churn_gap_days": 30,
}

IDENTIFIER_COLUMNS = {"customer_id", "email", "full_name", "phone", "street_address", "birth_date"}

RAW_DDL: dict[str, str] = {
    "customers": "customer_id VARCHAR, full_name VARCHAR, email VARCHAR, phone VARCHAR, street_address VARCHAR, "
    "birth_date DATE, gender VARCHAR, region VARCHAR, signup_date DATE, acquisition_channel VARCHAR",
    "plans": "plan_id VARCHAR, plan_name VARCHAR, tier_rank INTEGER",
    "plan_prices": "plan_id VARCHAR, monthly_price DOUBLE, valid_from DATE",
    "subscriptions": "subscription_id VARCHAR, customer_id VARCHAR, plan_id VARCHAR, start_date DATE, end_date DATE, "
    "cancel_reason VARCHAR",
    "transactions": "transaction_id VARCHAR, customer_id VARCHAR, transaction_ts TIMESTAMP, amount DOUBLE, "
    "category VARCHAR, loaded_at TIMESTAMP",
    "product_usage": "customer_id VARCHAR, activity_date DATE, sessions INTEGER, minutes DOUBLE, feature_used VARCHAR",
    "support_tickets": "ticket_id VARCHAR, customer_id VARCHAR, opened_at TIMESTAMP, resolved_at TIMESTAMP, "
    "category VARCHAR, satisfaction INTEGER",
    "web_sessions": "session_id VARCHAR, customer_id VARCHAR, session_start TIMESTAMP, pages INTEGER, device VARCHAR",
    "email_events": "event_id VARCHAR, customer_id VARCHAR, campaign_id VARCHAR, event_type VARCHAR, event_ts TIMESTAMP",
    "consent_events": "event_id VARCHAR, customer_id VARCHAR, purpose VARCHAR, action VARCHAR, event_ts TIMESTAMP, "
    "source VARCHAR, regulation VARCHAR",
}


# --- helpers ------------------------------------------------------------------------------------


def set_variables(con: duckdb.DuckDBPyConnection, variables: dict[str, object]) -> None:
    for name, value in variables.items():
        literal = f"DATE '{value.isoformat()}'" if isinstance(value, dt.date) else str(int(value))
        con.execute(f"SET VARIABLE {name} = {literal}")


def make_keys(con: duckdb.DuckDBPyConnection) -> None:
    """raw.customer_keys for every customer id in any raw table (md5: tests only)."""
    with_ids = [
        table for (table,) in con.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND column_name = 'customer_id' AND table_name <> 'customer_keys'"
        ).fetchall()
    ]
    union = " UNION ".join(f"SELECT customer_id FROM raw.{table}" for table in sorted(with_ids))
    con.execute(
        "CREATE OR REPLACE TABLE raw.customer_keys AS "
        f"SELECT customer_id, md5(customer_id) AS customer_pseudonym FROM ({union}) WHERE customer_id IS NOT NULL"
    )


def build(con: duckdb.DuckDBPyConnection, variables: dict[str, object] = VARIABLES) -> None:
    """Run every model in MODELS order (timed per model by `benchmarks/bench_scale.py overhead`), in full."""
    set_variables(con, {**variables, incremental.START_VARIABLE: incremental.FULL_START})
    make_keys(con)
    for name in MODELS:
        schema, table = name.split(".")
        body = (SQL_DIR / schema / f"{table}.sql").read_text(encoding="utf-8")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(f"CREATE OR REPLACE TABLE {name} AS\n{body}")


def frame(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return con.sql(sql).pl()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    return con.execute(sql, params or []).fetchall()[0][0]


def empty_raw(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for table, columns in RAW_DDL.items():
        con.execute(f"CREATE OR REPLACE TABLE raw.{table} ({columns})")
    con.execute(
        "INSERT INTO raw.plans VALUES ('basic', 'Basic', 1), ('standard', 'Standard', 2), "
        "('premium', 'Premium', 3), ('family', 'Family', 4)"
    )
    con.execute(
        "INSERT INTO raw.plan_prices VALUES ('basic', 10, DATE '2022-01-01'), ('standard', 16, DATE '2022-01-01'), "
        "('premium', 25, DATE '2022-01-01'), ('family', 30, DATE '2022-01-01'), ('standard', 20, DATE '2024-01-15')"
    )


def add_customer(con: duckdb.DuckDBPyConnection, customer_id: str, subscriptions: list[tuple], **attrs) -> None:
    """A customer with subscriptions [(plan, start, end), ...] (dates as ISO text, end may be None)."""
    con.execute(
        "INSERT INTO raw.customers VALUES (?, 'Canary Person', ?, '+1 555 0100', '1 Canary Street', ?, ?, ?, ?, ?)",
        [
            customer_id,
            f"{customer_id.lower()}@example.com",
            attrs.get("birth_date", "1990-06-17"),
            attrs.get("gender", " Female"),
            attrs.get("region", "NORTH "),
            attrs.get("signup_date", subscriptions[0][1] if subscriptions else "2023-01-01"),
            attrs.get("channel", "Paid_Search"),
        ],
    )
    for number, (plan, start, end) in enumerate(subscriptions):
        con.execute(
            "INSERT INTO raw.subscriptions VALUES (?, ?, ?, CAST(? AS DATE), CAST(? AS DATE), ?)",
            [f"S-{customer_id}-{number}", customer_id, plan, start, end, "too_expensive" if end else None],
        )


def demo_connection(customers: int = 300, seed: int = 1) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    demo.write_raw(con, demo.simulate(customers, seed=seed))
    return con


# --- the leakage property -----------------------------------------------------------------------

CUTOFFS = (dt.date(2024, 9, 1), dt.date(2025, 6, 1))  # training grid dates


def keep_only_known_before(con: duckdb.DuckDBPyConnection, day: dt.date) -> None:
    """Rewrite raw as it was known just before ``day``: what happened or arrived on/after it is gone."""
    d = f"DATE '{day.isoformat()}'"
    ts = f"TIMESTAMP '{day.isoformat()} 00:00:00'"
    con.execute(f"DELETE FROM raw.plan_prices WHERE valid_from >= {d}")
    con.execute(f"DELETE FROM raw.subscriptions WHERE start_date >= {d}")
    con.execute(f"UPDATE raw.subscriptions SET end_date = NULL, cancel_reason = NULL WHERE end_date >= {d}")
    con.execute(f"DELETE FROM raw.transactions WHERE transaction_ts >= {ts} OR loaded_at >= {ts}")
    con.execute(f"DELETE FROM raw.product_usage WHERE activity_date >= {d}")
    con.execute(f"DELETE FROM raw.support_tickets WHERE opened_at >= {ts}")
    con.execute(f"UPDATE raw.support_tickets SET resolved_at = NULL, satisfaction = NULL WHERE resolved_at >= {ts}")
    con.execute(f"DELETE FROM raw.web_sessions WHERE session_start >= {ts}")
    con.execute(f"DELETE FROM raw.email_events WHERE event_ts >= {ts}")
    con.execute(f"DELETE FROM raw.consent_events WHERE event_ts >= {ts}")


def add_boundary_events(con: duckdb.DuckDBPyConnection, day: dt.date) -> None:
    """Events exactly on ``day`` (midnight) and rows that happened before it but arrived on it."""
    ts = f"TIMESTAMP '{day.isoformat()} 00:00:00'"
    d = f"DATE '{day.isoformat()}'"
    customers = "SELECT customer_id FROM raw.customers"
    con.execute(f"INSERT INTO raw.transactions SELECT 'edge-a-' || customer_id, customer_id, {ts}, 99, 'x', {ts} FROM ({customers})")
    con.execute(
        f"INSERT INTO raw.transactions SELECT 'edge-b-' || customer_id, customer_id, {ts} - INTERVAL 2 DAY, 77, 'x', {ts} "
        f"FROM ({customers})"
    )
    con.execute(f"INSERT INTO raw.product_usage SELECT customer_id, {d}, 3, 600, 'x' FROM ({customers})")
    con.execute(
        f"INSERT INTO raw.support_tickets SELECT 'edge-' || customer_id, customer_id, {ts}, NULL, 'billing', NULL FROM ({customers})"
    )
    con.execute(f"INSERT INTO raw.web_sessions SELECT 'edge-' || customer_id, customer_id, {ts}, 5, 'x' FROM ({customers})")
    con.execute(
        f"INSERT INTO raw.email_events SELECT 'edge-' || customer_id, customer_id, 'edge-campaign', 'opened', {ts} FROM ({customers})"
    )
    con.execute(f"INSERT INTO raw.plan_prices VALUES ('basic', 999, {d})")


@pytest.mark.parametrize("cutoff", CUTOFFS, ids=str)
def test_features_on_a_date_do_not_change_when_later_data_changes(cutoff: dt.date):
    """Build on the full history (plus events exactly on the cut-off day) and on the history as known
    just before the cut-off: the features of the cut-off's observation rows must be identical."""
    full = demo_connection()
    add_boundary_events(full, cutoff)
    build(full)
    truncated = demo_connection()
    keep_only_known_before(truncated, cutoff)
    build(truncated)

    query = (
        "SELECT * FROM features.customer_features WHERE observation_date = DATE '{}' ORDER BY customer_pseudonym"
    ).format(cutoff.isoformat())
    before, after = frame(full, query), frame(truncated, query)
    assert after.height > 50

    # A customer who objects to profiling after the cut-off is in no row of the full build (the
    # spine honours the latest decision at once); the history known before the cut-off does not
    # hold the objection yet.
    later_objectors = [row[0] for row in full.execute(
        "SELECT k.customer_pseudonym FROM raw.consent_events AS e JOIN raw.customer_keys AS k USING (customer_id) "
        "WHERE e.purpose = 'profiling' AND e.action = 'withdraw' AND e.event_ts >= CAST(? AS TIMESTAMP)",
        [cutoff]).fetchall()]
    after = after.filter(~pl.col("customer_pseudonym").is_in(later_objectors))
    # A customer in a churn gap on the cutoff who re-signs within the gap later is active in the
    # full history only (the spine follows merged active periods); nobody appears from nowhere.
    assert set(after["customer_pseudonym"]) <= set(before["customer_pseudonym"])
    assert after.height >= 0.95 * before.height

    same_rows = before.join(after.select("customer_pseudonym"), on="customer_pseudonym", how="semi")
    assert_frame_equal(same_rows, after, check_exact=True)

    # and the boundary events really reach the features of the next observation date
    nxt = frame(full, "SELECT min(purchases_30d) AS p, min(active_days_30d) AS a FROM features.customer_features "
                f"WHERE observation_date = DATE '{cutoff.isoformat()}' + INTERVAL 1 MONTH")
    assert nxt["p"][0] >= 1 and nxt["a"][0] >= 1


# --- hand-made cases ----------------------------------------------------------------------------

D = dt.date(2024, 3, 1)


def iso(day: dt.date, offset: int = 0) -> str:
    return (day + dt.timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def handmade() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    empty_raw(con)
    add_customer(con, "C-CHURN", [("basic", "2023-01-10", iso(D, 40))])
    add_customer(con, "C-RESIGN-IN-GAP", [("basic", "2023-01-10", iso(D, 40)), ("basic", iso(D, 55), None)])
    add_customer(con, "C-RESIGN-LATE", [("basic", "2023-01-10", iso(D, 40)), ("premium", iso(D, 106), None)])
    add_customer(con, "C-PLAN-CHANGE", [("basic", "2023-01-10", "2023-09-01"), ("standard", "2023-09-01", None)])
    add_customer(con, "C-NEW", [("family", "2024-02-15", None)])
    add_customer(con, "C-ENDS-ON-D", [("basic", "2023-01-10", iso(D))])
    add_customer(con, "C-NO-SUBSCRIPTION", [])

    def tx(tid: str, ts: str, amount: float | None, loaded: str | None = None) -> None:
        con.execute(
            "INSERT INTO raw.transactions VALUES (?, 'C-PLAN-CHANGE', CAST(? AS TIMESTAMP), ?, ' Add_On', CAST(? AS TIMESTAMP))",
            [tid, ts, amount, loaded or ts],
        )

    tx("T1", f"{iso(D, -1)} 23:59:59", 10)
    tx("T1", f"{iso(D, -1)} 23:59:59", 10)  # exact duplicate
    tx("T2", f"{iso(D)} 00:00:00", 500)  # on D: not before D
    tx("T3", f"{iso(D, -2)} 10:00:00", 300, f"{iso(D)} 00:00:00")  # happened before D, arrived on D
    tx("T4", f"{iso(D, -30)} 00:00:00", 20)
    tx("T5", f"{iso(D, -31)} 12:00:00", 40)
    tx("T6", f"{iso(D, -5)} 08:00:00", -4)  # refund
    tx("T7", f"{iso(D, -150)} 08:00:00", 1_000_000)  # outlier, only in the 180-day window
    for day, minutes in ((-1, 30.0), (0, 500.0), (-40, 60.0), (-40, 60.0)):
        con.execute("INSERT INTO raw.product_usage VALUES ('C-PLAN-CHANGE', CAST(? AS DATE), 1, ?, 'Reports')", [iso(D, day), minutes])
    con.execute(
        "INSERT INTO raw.support_tickets VALUES "
        "('K1', 'C-PLAN-CHANGE', CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), 'Billing', 5), "
        "('K2', 'C-PLAN-CHANGE', CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), 'TECHNICAL ', 2)",
        [f"{iso(D, -10)} 09:00:00", f"{iso(D, 1)} 09:00:00", f"{iso(D, -20)} 09:00:00", f"{iso(D, -18)} 09:00:00"],
    )
    con.execute(
        "INSERT INTO raw.email_events VALUES "
        "('E1', 'C-PLAN-CHANGE', 'c1', 'Sent', CAST(? AS TIMESTAMP)), "
        "('E2', 'C-PLAN-CHANGE', 'c1', ' OPENED', CAST(? AS TIMESTAMP)), "
        "('E3', 'C-PLAN-CHANGE', 'c1', 'opened', CAST(? AS TIMESTAMP)), "
        "('E4', 'C-PLAN-CHANGE', 'c2', 'sent', CAST(? AS TIMESTAMP)), "
        "('E5', 'C-PLAN-CHANGE', 'c2', 'clicked', CAST(? AS TIMESTAMP))",
        [f"{iso(D, -10)} 08:00:00", f"{iso(D, -9)} 08:00:00", f"{iso(D, -8)} 08:00:00", f"{iso(D, -5)} 08:00:00",
         f"{iso(D)} 08:00:00"],
    )
    build(con)
    return con


def pseudonym(con: duckdb.DuckDBPyConnection, customer_id: str) -> str:
    return scalar(con, "SELECT md5(?)", [customer_id])


def test_active_periods_merge_resignups_within_the_gap_only(handmade):
    periods = {
        customer: frame(
            handmade,
            "SELECT period_number, period_start, period_end FROM staging.active_periods "
            f"WHERE customer_pseudonym = '{pseudonym(handmade, customer)}' ORDER BY period_number",
        ).rows()
        for customer in ("C-CHURN", "C-RESIGN-IN-GAP", "C-RESIGN-LATE", "C-PLAN-CHANGE")
    }
    end = D + dt.timedelta(days=40)
    assert periods["C-CHURN"] == [(1, dt.date(2023, 1, 10), end)]
    assert periods["C-RESIGN-IN-GAP"] == [(1, dt.date(2023, 1, 10), None)]
    assert periods["C-RESIGN-LATE"] == [(1, dt.date(2023, 1, 10), end), (2, D + dt.timedelta(days=106), None)]
    assert periods["C-PLAN-CHANGE"] == [(1, dt.date(2023, 1, 10), None)]


def test_labels_on_hand_made_customers(handmade):
    labels = dict(
        handmade.execute(
            "SELECT k.customer_id, t.churned FROM marts.training_set AS t "
            "JOIN raw.customer_keys AS k USING (customer_pseudonym) WHERE t.observation_date = ?",
            [D],
        ).fetchall()
    )
    assert labels == {
        "C-CHURN": 1,  # ends 40 days after D: inside [D + 14, D + 104)
        "C-RESIGN-IN-GAP": 0,  # back after 15 days: the period goes on
        "C-RESIGN-LATE": 1,  # back after 66 days: a churn, then a new period
        "C-PLAN-CHANGE": 0,
        "C-NEW": 0,
        # C-ENDS-ON-D is active on D but its period ends before D + lead: too late to act, left out
    }
    earlier = dict(
        handmade.execute(
            "SELECT k.customer_id, t.churned FROM marts.training_set AS t "
            "JOIN raw.customer_keys AS k USING (customer_pseudonym) WHERE t.observation_date = DATE '2023-12-01'"
        ).fetchall()
    )
    assert earlier["C-CHURN"] == 0  # the end is 131 days after 2023-12-01: beyond the window
    assert scalar(handmade, "SELECT count(*) FROM marts.training_set WHERE observation_date + 14 + 90 + 30 > DATE '2026-01-01'") == 0


def test_spine_holds_only_active_customers(handmade):
    spine = frame(
        handmade,
        "SELECT k.customer_id, s.observation_date, s.purpose FROM features.observation_spine AS s "
        "JOIN raw.customer_keys AS k USING (customer_pseudonym)",
    )
    dates = lambda customer: sorted(spine.filter(pl.col("customer_id") == customer)["observation_date"])  # noqa: E731
    assert "C-NO-SUBSCRIPTION" not in set(spine["customer_id"])
    assert dates("C-NEW")[0] == dt.date(2024, 3, 1)  # started 2024-02-15: not active on 2024-02-01
    assert dates("C-ENDS-ON-D")[-1] == D  # service stopped on D: still active on D, gone after
    late = dates("C-RESIGN-LATE")
    assert dt.date(2024, 5, 1) not in late and dt.date(2024, 6, 1) not in late and dt.date(2024, 7, 1) in late
    assert dates("C-CHURN")[0] == dt.date(2023, 7, 1)  # first grid date: history_start + 180 days, next month start
    assert all(day.day == 1 for day in spine["observation_date"])
    scored = set(spine.filter(pl.col("purpose") == "score")["customer_id"])
    assert scored == {"C-RESIGN-IN-GAP", "C-RESIGN-LATE", "C-PLAN-CHANGE", "C-NEW"}
    assert spine.filter(pl.col("purpose") == "score")["observation_date"].unique().to_list() == [dt.date(2026, 1, 1)]


def test_features_of_one_customer_on_one_date(handmade):
    row = frame(
        handmade,
        "SELECT * FROM features.customer_features "
        f"WHERE customer_pseudonym = '{pseudonym(handmade, 'C-PLAN-CHANGE')}' AND observation_date = DATE '{D}'",
    ).row(0, named=True)
    expected = {
        "age_band": "25-34",
        "gender": "female",
        "region": "north",
        "acquisition_channel": "paid_search",
        "tenure_days": (D - dt.date(2023, 1, 10)).days,
        "previous_active_periods": 0,
        "current_plan": "standard",
        "monthly_price": 20.0,  # the standard price changed on 2024-01-15
        "price_change_90d_pct": 25.0,  # 16 -> 20
        "plan_changes_365d": 1,
        "days_since_last_purchase": 1,
        "purchases_30d": 2,  # T1 (once) and T4; T2 is on D, T3 arrived on D, T6 is a refund
        "purchases_90d": 3,
        "spend_30d": 26.0,
        "spend_90d": 66.0,
        "active_days_30d": 1,
        "active_days_90d": 2,
        "usage_minutes_30d": 30.0,
        "days_since_last_use": 1,
        "tickets_opened_90d": 2,
        "tickets_unresolved": 1,  # K1 is resolved only after D
        "mean_hours_to_resolve_90d": 48.0,
        "mean_satisfaction": 2.0,  # K1's rating is given after D
        "emails_sent_90d": 2,
        "email_open_rate_90d": 0.5,  # the repeated open of c1 counts once
        "email_click_rate_90d": 0.0,  # the click arrives on D
        "days_since_last_activity": 1,
    }
    assert {name: row[name] for name in expected} == expected
    assert (row["spend_180d"], row["purchases_180d"]) == (66.0 + 500.0, 4)  # the outlier is clipped to 500


def test_no_identifier_columns_outside_raw(handmade):
    tables = handmade.execute(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE table_schema <> 'raw'"
    ).fetchall()
    assert {schema for schema, _, _ in tables} >= {"staging", "features", "marts"}
    leaked = [(schema, table, column) for schema, table, column in tables if column in IDENTIFIER_COLUMNS]
    assert leaked == []


# --- the demo warehouse -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_built():
    con = demo_connection(300, 1)
    build(con)
    return con


def test_models_on_demo_data(demo_built):
    con = demo_built
    count = lambda sql: scalar(con, sql)  # noqa: E731
    customers = count("SELECT count(*) FROM staging.customers")
    assert customers == 300
    assert count("SELECT count(*) FROM features.customer_features") == count("SELECT count(*) FROM features.observation_spine")
    train = count("SELECT count(*) FROM marts.training_set")
    assert 10 * customers < train < 40 * customers
    assert 0.3 * customers < count("SELECT count(*) FROM marts.scoring_set") < customers
    base_rate = count("SELECT avg(churned) FROM marts.training_set")
    assert 0.02 <= base_rate <= 0.30
    # the features tell churners apart in the expected direction
    means = dict(con.execute("SELECT churned, avg(active_days_30d) FROM marts.training_set GROUP BY 1").fetchall())
    assert means[1] < means[0]
    feature_columns = frame(con, "SELECT * FROM marts.training_set LIMIT 0").columns
    assert feature_columns[:3] == ["customer_pseudonym", "observation_date", "churned"] and "purpose" not in feature_columns
    scoring_columns = frame(con, "SELECT * FROM marts.scoring_set LIMIT 0").columns
    # the scoring set is the training set's features at as_of, plus tenure_band: a segment for churn_scores
    # (not a feature, so it is only in the scoring set)
    assert scoring_columns == [c for c in feature_columns if c != "churned"] + ["tenure_band"]


def identifier_forms(con: duckdb.DuckDBPyConnection) -> tuple[set[str], set[str], set[dt.date]]:
    """Every direct identifier in raw.customers (IDENTIFIER_COLUMNS) in the forms a model could turn it
    into: text lower-cased and trimmed (ids, names, e-mails, phones, addresses, birth dates written
    out), phone digits with and without the country code, and birth dates as dates."""
    text, digits, dates = set(), set(), set()
    rows = con.execute(f"SELECT {', '.join(sorted(IDENTIFIER_COLUMNS))} FROM raw.customers").fetchall()
    for birth_date, customer_id, email, full_name, phone, street_address in rows:
        text |= {value.strip().lower() for value in (customer_id, email, full_name, phone, street_address) if value}
        if phone:
            number = re.sub(r"\D", "", phone)
            digits |= {number, number.removeprefix("1")}
        if birth_date:
            text |= {birth_date.strftime(f) for f in ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y")}
            if birth_date.day != 1:  # staging.customers.birth_month is the first of the month, by design
                dates.add(birth_date)
    return text, digits, dates


def identifier_columns_found(con: duckdb.DuckDBPyConnection, catalog: str, forms) -> set[str]:
    """The columns outside raw in ``catalog`` that hold any identifier form."""
    text, digits, dates = forms
    columns = con.execute(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema <> 'raw'", [catalog]).fetchall()
    found = set()
    for schema, table, column, data_type in columns:
        relation, name = f'"{catalog}"."{schema}"."{table}"', f'"{column}"'
        if data_type == "VARCHAR":
            values = con.execute(f"SELECT DISTINCT lower(trim({name})), regexp_replace({name}, '[^0-9]', '', 'g') "
                                 f"FROM {relation} WHERE {name} IS NOT NULL").fetchall()
            hit = any(value in text or number in digits for value, number in values)
        elif data_type == "DATE" or data_type.startswith("TIMESTAMP"):
            values = con.execute(f"SELECT DISTINCT CAST({name} AS DATE) FROM {relation}").fetchall()
            hit = any(value in dates for (value,) in values)
        else:
            continue
        if hit:
            found.add(f"{schema}.{table}.{column}")
    return found


def test_no_identifier_values_outside_raw(demo_built):
    con = demo_built
    forms = identifier_forms(con)
    assert len(forms[0]) > 5 * 300 and len(forms[1]) > 300 and len(forms[2]) > 200
    catalog = con.execute("SELECT current_database()").fetchone()[0]
    assert identifier_columns_found(con, catalog, forms) == set()
    # Positive control: the same scan finds each identifier in a changed form in a planted table.
    con.execute("ATTACH ':memory:' AS planted")
    try:
        con.execute(
            "CREATE TABLE planted.main.leaks AS SELECT upper(customer_id) AS id, ' ' || lower(full_name) AS name, "
            "upper(email) AS email, regexp_replace(phone, '[^0-9]', '', 'g') AS phone, "
            "substr(regexp_replace(phone, '[^0-9]', '', 'g'), 2) AS national_phone, upper(street_address) AS street, "
            "strftime(birth_date, '%d/%m/%Y') AS born_text, birth_date + INTERVAL 0 DAY AS born "
            "FROM raw.customers WHERE day(birth_date) <> 1 LIMIT 1")
        assert identifier_columns_found(con, "planted", forms) == {
            f"main.leaks.{column}" for column in ("id", "name", "email", "phone", "national_phone", "street",
                                                  "born_text", "born")}
    finally:
        con.execute("DETACH planted")


def test_headers_checks_and_audits_pass_on_demo(demo_built):
    """Every model's header parses with the project loader; its checks and audits pass on demo data."""
    con = demo_built
    loaded = project.load_project(SQL_DIR)
    assert set(loaded.models) == set(MODELS)
    assert loaded.order.index("staging.active_periods") < loaded.order.index("features.observation_spine")
    for name in MODELS:
        model = loaded.models[name]
        columns = warehouse.columns(con, name)
        docs = loaded.column_docs(name)
        assert set(columns) <= set(docs), f"{name}: every column needs a description"
        assert all(docs[column].description for column in columns)
        run_models.check_declared_columns(model, columns)
        run_models.run_checks(con, model, columns)
        run_models.run_audits(con, model, columns)
