/*
materialized = "table"
grain = ["customer_pseudonym", "period_number"]
description = "Active periods: each customer's subscriptions merged into spans of continuous service. A subscription that starts within churn_gap_days days of the end of the previous ones continues the same period (plan changes and quick re-signups merge); a longer gap starts a new period. A period end is a churn. Only what is known before as_of is used: subscriptions starting on or after as_of are ignored and ends on or after as_of count as still active."

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.period_start]
description = "First day of the active period."
privacy = "plain"
checks = ["not_null"]

[columns.period_end]
description = "Day service stopped at the end of the period (the churn day); NULL while the customer is still active."
privacy = "plain"

[columns.period_number]
description = "Order of the period for the customer: 1 for the first, 2 after the first re-signup, ..."
privacy = "plain"
checks = ["not_null"]
range = [1, 10000]

[[audits]]
name = "periods_do_not_overlap"
sql = """
SELECT a.customer_pseudonym FROM this AS a JOIN this AS b
  ON a.customer_pseudonym = b.customer_pseudonym AND b.period_number = a.period_number + 1
WHERE a.period_end IS NULL OR b.period_start <= a.period_end + getvariable('churn_gap_days')
"""

[[audits]]
name = "period_ends_after_start"
sql = "SELECT customer_pseudonym FROM this WHERE period_end < period_start"
*/
WITH known AS (
    -- the subscription history as it was known just before as_of
    SELECT
        customer_pseudonym,
        subscription_id,
        start_date,
        CASE WHEN end_date < getvariable('as_of') THEN end_date END AS end_date
    FROM staging.subscriptions
    WHERE start_date < getvariable('as_of')
),
ordered AS (
    SELECT
        *,
        -- latest end of every earlier subscription of the customer (open ones count as never ending)
        max(coalesce(end_date, DATE '9999-12-31')) OVER (
            PARTITION BY customer_pseudonym
            ORDER BY start_date, subscription_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS previous_end
    FROM known
),
flagged AS (
    SELECT
        *,
        CASE
            WHEN previous_end IS NULL THEN 1
            WHEN start_date > previous_end + CAST(getvariable('churn_gap_days') AS INTEGER) THEN 1
            ELSE 0
        END AS starts_period
    FROM ordered
),
numbered AS (
    SELECT
        *,
        sum(starts_period) OVER (
            PARTITION BY customer_pseudonym
            ORDER BY start_date, subscription_id
            ROWS UNBOUNDED PRECEDING
        ) AS period_number
    FROM flagged
)
SELECT
    customer_pseudonym,
    min(start_date) AS period_start,
    CASE WHEN bool_or(end_date IS NULL) THEN NULL ELSE max(end_date) END AS period_end,
    CAST(period_number AS INTEGER) AS period_number
FROM numbered
GROUP BY customer_pseudonym, period_number
