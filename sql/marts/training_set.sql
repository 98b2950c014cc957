/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = "Training rows: one per customer and historical observation date whose label window is fully observed, with the churn label and the features known before the observation date. Label churned = 1 when the customer's active period ends in [observation_date + lead_days, observation_date + lead_days + label_window_days). Rows whose period ends before observation_date + lead_days are left out (too late to act). A label window counts as observed only when the churn_gap_days after it are also before as_of, because a re-signup within the gap would turn an end into no churn."

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.observation_date]
description = "Date the customer was observed; features describe the customer as known before this day."
privacy = "plain"
checks = ["not_null"]

[columns.churned]
description = "1 when the customer stopped service (with no re-signup within the churn gap) during the label window that starts lead_days after the observation date; 0 otherwise."
privacy = "plain"
checks = ["not_null"]
accepted_values = [0, 1]

# feature columns inherit their description and privacy tag from features.customer_features

[[audits]]
name = "label_window_complete"
sql = """
SELECT customer_pseudonym FROM this
WHERE observation_date + getvariable('lead_days') + getvariable('label_window_days') + getvariable('churn_gap_days')
      > getvariable('as_of')
"""

[[audits]]
name = "same_rows_as_features"
sql = """
SELECT t.customer_pseudonym FROM this AS t
LEFT JOIN features.customer_features AS f
  ON f.customer_pseudonym = t.customer_pseudonym AND f.observation_date = t.observation_date AND f.purpose = 'train'
WHERE f.customer_pseudonym IS NULL
"""
*/
WITH labelled AS (
    SELECT
        f.customer_pseudonym,
        f.observation_date,
        p.period_end,
        f.observation_date + CAST(getvariable('lead_days') AS INTEGER) AS window_start,
        f.observation_date + CAST(getvariable('lead_days') AS INTEGER)
            + CAST(getvariable('label_window_days') AS INTEGER) AS window_end
    FROM features.customer_features AS f
    -- the active period the customer is in on the observation date (periods never overlap)
    JOIN staging.active_periods AS p
      ON p.customer_pseudonym = f.customer_pseudonym
     AND p.period_start < f.observation_date
     AND (p.period_end IS NULL OR p.period_end >= f.observation_date)
    WHERE f.purpose = 'train'
),
eligible AS (
    SELECT
        customer_pseudonym,
        observation_date,
        CASE WHEN period_end >= window_start AND period_end < window_end THEN 1 ELSE 0 END AS churned
    FROM labelled
    WHERE window_end + CAST(getvariable('churn_gap_days') AS INTEGER) <= getvariable('as_of')
      AND (period_end IS NULL OR period_end >= window_start)
)
SELECT
    e.customer_pseudonym,
    e.observation_date,
    CAST(e.churned AS INTEGER) AS churned,
    f.* EXCLUDE (customer_pseudonym, observation_date, purpose)
FROM eligible AS e
JOIN features.customer_features AS f
  ON f.customer_pseudonym = e.customer_pseudonym AND f.observation_date = e.observation_date
