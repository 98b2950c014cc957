"""The sample projects of the three shapes: their churnwh.toml and, for flat and inactivity, their SQL models
(the events shape copies the canonical models)."""

from __future__ import annotations

from churnwh.sources.scaffold.templates import COMMON, SOURCE_HELP

FLAT_CONFIG = """# churnwh project: a flat customer table (one row per customer with a churn flag).
# Paths are relative to this file's folder. Uncommented lines are required; the rest show defaults.

[source]
kind = "flat"                            # demo | events | flat

""" + SOURCE_HELP + """
[sources.customers]
path = "data/customers.csv"
id_column = "customer_id"
label = "churned"
positive = ["Yes"]
negative = ["No"]

[sources.customers.columns]
customer_id = { type = "VARCHAR", class = "direct_identifier" }
full_name = { type = "VARCHAR", class = "direct_identifier" }
region = { type = "VARCHAR", class = "quasi_identifier" }
signup_date = { type = "DATE", class = "quasi_identifier" }
plan = { type = "VARCHAR", class = "plain" }
monthly_fee = { type = "DOUBLE", class = "plain" }
support_calls = { type = "INTEGER", class = "plain" }
churned = { type = "VARCHAR", class = "plain" }

@@CONSENT@@
[vars]
as_of = "2026-01-01"                     # the scoring date written with each score
""" + COMMON.replace('# value_column = "monthly_price"', 'value_column = "monthly_fee"  ', 1)

EVENTS_CONFIG = """# churnwh project: customers, subscriptions, purchases and consent as event tables (the canonical
# raw schema of the demo). Paths are relative to this file's folder.

[source]
kind = "events"                          # demo | events | flat

""" + SOURCE_HELP + """
# One [sources.NAME] per raw table the models in sql/ read: customers, plans, plan_prices,
# subscriptions, transactions, product_usage, support_tickets, web_sessions, email_events,
# consent_events (examples/events/churnwh.toml declares all of them). Two shown here:

[sources.customers]
path = "data/customers.csv"

[sources.customers.columns]
customer_id = { type = "VARCHAR", class = "direct_identifier" }
full_name = { type = "VARCHAR", class = "direct_identifier" }
email = { type = "VARCHAR", class = "direct_identifier" }
phone = { type = "VARCHAR", class = "direct_identifier" }
street_address = { type = "VARCHAR", class = "direct_identifier" }
birth_date = { type = "DATE", class = "direct_identifier" }
gender = { type = "VARCHAR", class = "quasi_identifier" }
region = { type = "VARCHAR", class = "quasi_identifier" }
signup_date = { type = "DATE", class = "quasi_identifier" }
acquisition_channel = { type = "VARCHAR", class = "plain" }

@@CONSENT@@
[vars]
as_of = "2026-01-01"                     # scoring date; features use data strictly before it
history_start = "2023-01-01"             # first date of the monthly observation grid
# observation_months = 1                 # grid step
# min_history_days = 180                 # history a customer needs before an observation date
# lead_days = 14                         # time to act before the label window starts
# label_window_days = 90                 # churn within this window after the lead time = 1
# churn_gap_days = 30                    # a re-signup within this gap continues the period
# The time split's purge gap = lead_days + label_window_days + churn_gap_days (134 days by default): no
# training label looks into the validation or test period. The observation dates from history_start to
# as_of must span at least twice the gap (build names these parameters when they cannot).
""" + COMMON

INACTIVITY_CONFIG = """# churnwh project: activity events only (purchases, logins, usage), no subscriptions.
# Churn = no activity within inactivity_days after the observation date. Paths relative to this folder.

[source]
kind = "events"                          # demo | events | flat

""" + SOURCE_HELP + """
[sources.events]
path = "data/events.csv"                 # one row per activity: who, when, and an optional amount
id_column = "customer_id"

[sources.events.columns]
customer_id = { type = "VARCHAR", class = "direct_identifier" }
event_ts = { type = "TIMESTAMP", class = "plain" }
amount = { type = "DOUBLE", class = "plain" }

@@CONSENT@@
[vars]
as_of = "2026-01-01"                     # scoring date; features use data strictly before it
history_start = "2024-01-01"             # first date of the monthly observation grid
observation_months = 1                   # grid step
min_history_days = 90                    # a customer's first activity must be this long before the date
inactivity_days = 60                     # churned = no activity in [date, date + inactivity_days)
calibration_days = 365                   # observed at a date only with activity in the calibration_days before it
# The time split's purge gap = inactivity_days (the label window): no training label looks into the
# validation or test period. [network] purge_days may widen it (never below inactivity_days);
# [network] valid_dates / test_dates set how many observation dates validation and test take.
""" + COMMON.replace('# value_column = "monthly_price"', 'value_column = "amount_90d"    ', 1)

FLAT_SQL = {
    "staging/customers.sql": """/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "One row per customer, keyed by pseudonym. List your columns; never a direct identifier."

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null", "unique"]

[columns.churned]
accepted_values = [0, 1]
*/
SELECT
    k.customer_pseudonym,
    c.region,
    date_diff('day', c.signup_date, getvariable('as_of')) AS tenure_days,
    c.plan,
    c.monthly_fee,
    c.support_calls,
    c.churned                              -- the label: loaded as 1 (positive) / 0 (negative)
FROM raw.customers AS c
JOIN raw.customer_keys AS k ON k.customer_id = c.customer_id
""",
    "marts/training_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Features and the churn flag; observation_date is NULL (no time), so training splits stratified at random."
*/
SELECT customer_pseudonym, CAST(NULL AS DATE) AS observation_date,
    region, tenure_days, plan, monthly_fee, support_calls, churned
FROM staging.customers
""",
    "marts/scoring_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Current customers (churned = 0) with the same features, scored at as_of."
*/
SELECT customer_pseudonym, getvariable('as_of') AS observation_date,
    region, tenure_days, plan, monthly_fee, support_calls
FROM staging.customers
WHERE churned = 0
""",
}

INACTIVITY_SQL = {
    "staging/activity.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "activity_date"]
description = "Daily activity per customer (pseudonymized): events and amount per day."
*/
SELECT
    k.customer_pseudonym,
    CAST(e.event_ts AS DATE) AS activity_date,
    count(*) AS events,
    coalesce(sum(e.amount), 0) AS amount
FROM raw.events AS e
JOIN raw.customer_keys AS k ON k.customer_id = e.customer_id
WHERE e.event_ts IS NOT NULL
GROUP BY ALL
""",
    "features/observation_spine.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = '''(customer, observation date) on a monthly grid up to as_of, for customers still active
(first activity at least min_history_days before the date, last activity within calibration_days before
it) whose profiling consent holds: customers who withdrew it (GDPR objection, CCPA opt-out, Global Privacy
Control) as of the build are absent; one who consents again contributes only dates on which consent held.'''

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null"]

[[audits]]
name = "no_observation_after_as_of"
sql = "SELECT customer_pseudonym FROM this WHERE observation_date > getvariable('as_of')"
*/
WITH dates AS (
    SELECT CAST(d AS DATE) AS observation_date
    FROM range(CAST(getvariable('history_start') AS TIMESTAMP), CAST(getvariable('as_of') AS TIMESTAMP),
               to_months(getvariable('observation_months'))) AS t(d)
    UNION SELECT getvariable('as_of')
),
before AS (
    SELECT d.observation_date, a.customer_pseudonym,
        min(a.activity_date) AS first_activity, max(a.activity_date) AS last_activity
    FROM dates AS d JOIN staging.activity AS a ON a.activity_date < d.observation_date
    GROUP BY ALL
),
active AS (
    SELECT customer_pseudonym, observation_date
    FROM before
    WHERE first_activity <= observation_date - getvariable('min_history_days')
      -- still a customer: a purchase within calibration_days (never the label window: reusing it dropped
      -- mostly customers about to churn); features.dropped_customers counts who is left out
      AND last_activity >= observation_date - getvariable('calibration_days')
),
-- Consent, applied before any feature is computed (the rules of the canonical features.observation_spine):
-- profiling withdrawals (GDPR objection, CCPA opt-out, Global Privacy Control) from staging.consent_state.
withdrawn AS (
    SELECT customer_pseudonym, valid_from, valid_to
    FROM staging.consent_state
    WHERE purpose = 'profiling' AND state = 'withdrawn'
),
objectors AS (
    -- withdrawn on as_of, or by their latest decision: such a customer contributes no row at all
    SELECT DISTINCT customer_pseudonym
    FROM withdrawn
    WHERE valid_to IS NULL
       OR (valid_from <= getvariable('as_of') AND valid_to > getvariable('as_of'))
)
SELECT a.customer_pseudonym, a.observation_date
FROM active AS a
WHERE a.customer_pseudonym NOT IN (SELECT customer_pseudonym FROM objectors)
  -- a customer who consents again contributes only observation dates on which consent held
  AND NOT EXISTS (
      SELECT 1
      FROM withdrawn AS w
      WHERE w.customer_pseudonym = a.customer_pseudonym
        AND w.valid_from <= a.observation_date
        AND (w.valid_to IS NULL OR w.valid_to > a.observation_date)
  )
""",
    "features/customer_features.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = "Activity features from data strictly before the observation date."
*/
SELECT
    s.customer_pseudonym,
    s.observation_date,
    date_diff('day', min(a.activity_date), s.observation_date) AS tenure_days,
    date_diff('day', max(a.activity_date), s.observation_date) AS days_since_last_activity,
    coalesce(sum(a.events) FILTER (WHERE a.activity_date >= s.observation_date - 30), 0) AS events_30d,
    coalesce(sum(a.events) FILTER (WHERE a.activity_date >= s.observation_date - 90), 0) AS events_90d,
    coalesce(sum(a.amount) FILTER (WHERE a.activity_date >= s.observation_date - 90), 0) AS amount_90d,
    count(DISTINCT a.activity_date) FILTER (WHERE a.activity_date >= s.observation_date - 90) AS active_days_90d,
    sum(a.events) AS events_total
FROM features.observation_spine AS s
JOIN staging.activity AS a
  ON a.customer_pseudonym = s.customer_pseudonym AND a.activity_date < s.observation_date
GROUP BY s.customer_pseudonym, s.observation_date
""",
    "marts/training_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = '''Features at each past observation date and the label: churned = 1 when the customer had no
activity in [observation_date, observation_date + inactivity_days). Only dates whose window has ended.'''

[columns.churned]
checks = ["not_null"]
accepted_values = [0, 1]
*/
SELECT
    f.*,
    CAST(NOT EXISTS (
        SELECT 1 FROM staging.activity AS a
        WHERE a.customer_pseudonym = f.customer_pseudonym
          AND a.activity_date >= f.observation_date
          AND a.activity_date < f.observation_date + getvariable('inactivity_days')
    ) AS INTEGER) AS churned
FROM features.customer_features AS f
WHERE f.observation_date + getvariable('inactivity_days') <= getvariable('as_of')
""",
    "marts/scoring_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = "The same features at as_of, for the customers active then."
*/
SELECT * FROM features.customer_features WHERE observation_date = getvariable('as_of')
""",
}
