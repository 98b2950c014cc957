/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = "The (customer, observation date) pairs the model learns from and scores, for customers whose profiling consent holds: customers who withdrew it (GDPR objection, CCPA opt-out, Global Privacy Control) as of the build are absent, and a customer who withdrew earlier and consents again contributes only dates on which consent held. purpose 'train': a monthly grid (every observation_months months) from the first month start at least min_history_days after history_start, up to but excluding as_of, for customers in an active period on that date. purpose 'score': as_of for customers active on as_of."

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.observation_date]
description = "Date on which the customer is observed: features use only data from before this day."
privacy = "plain"
checks = ["not_null"]

[columns.purpose]
description = "train: a historical observation used to learn churn patterns; score: the current observation to score."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["train", "score"]

[[audits]]
name = "no_observation_after_as_of"
sql = "SELECT customer_pseudonym FROM this WHERE observation_date > getvariable('as_of') OR (purpose = 'train' AND observation_date >= getvariable('as_of'))"

[[audits]]
name = "score_rows_on_as_of"
sql = "SELECT customer_pseudonym FROM this WHERE purpose = 'score' AND observation_date <> getvariable('as_of')"
*/
WITH grid AS (
    SELECT CAST(generate_series AS DATE) AS observation_date, 'train' AS purpose
    FROM generate_series(
        -- first month start on or after history_start + min_history_days
        CAST(
            date_trunc(
                'month',
                CAST(getvariable('history_start') AS DATE) + CAST(getvariable('min_history_days') AS INTEGER) - 1
            ) + INTERVAL 1 MONTH AS TIMESTAMP
        ),
        CAST(CAST(getvariable('as_of') AS DATE) - 1 AS TIMESTAMP),
        to_months(CAST(getvariable('observation_months') AS INTEGER))
    )
    UNION ALL
    SELECT CAST(getvariable('as_of') AS DATE) AS observation_date, 'score' AS purpose
),
active AS (
    SELECT p.customer_pseudonym, g.observation_date, g.purpose
    FROM grid AS g
    JOIN staging.active_periods AS p
      ON p.period_start < g.observation_date
     AND (p.period_end IS NULL OR p.period_end >= g.observation_date)
),
-- Consent, applied before any feature is computed. Profiling withdrawals (GDPR objection, CCPA
-- opt-out, Global Privacy Control) come from staging.consent_state.
withdrawn AS (
    SELECT customer_pseudonym, valid_from, valid_to
    FROM staging.consent_state
    WHERE purpose = 'profiling' AND state = 'withdrawn'
),
objectors AS (
    -- withdrawn as of the build: on as_of, or by their latest decision (an objection recorded after
    -- as_of is honoured at once); such a customer contributes no row at all
    SELECT DISTINCT customer_pseudonym
    FROM withdrawn
    WHERE valid_to IS NULL
       OR (valid_from <= getvariable('as_of') AND valid_to > getvariable('as_of'))
)
SELECT a.customer_pseudonym, a.observation_date, a.purpose
FROM active AS a
WHERE a.customer_pseudonym NOT IN (SELECT customer_pseudonym FROM objectors)
  -- a customer who consents today contributes only observation dates on which consent held
  AND NOT EXISTS (
      SELECT 1
      FROM withdrawn AS w
      WHERE w.customer_pseudonym = a.customer_pseudonym
        AND w.valid_from <= a.observation_date
        AND (w.valid_to IS NULL OR w.valid_to > a.observation_date)
  )
