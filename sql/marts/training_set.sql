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

# feature columns: same meaning as in features.customer_features
[columns.age_band]
description = "Customer's age band on the observation date (from the birth month)."
privacy = "quasi_identifier"
checks = ["not_null"]
accepted_values = ["under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown"]

[columns.gender]
description = "Customer's gender (female, male, other, unknown)."
privacy = "quasi_identifier"
checks = ["not_null"]
accepted_values = ["female", "male", "other", "unknown"]

[columns.region]
description = "Customer's home region."
privacy = "quasi_identifier"
checks = ["not_null"]

[columns.acquisition_channel]
description = "Channel through which the customer was acquired."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["organic", "paid_search", "social", "referral", "partner", "other", "unknown"]

[columns.tenure_days]
description = "Days since the customer first subscribed."
privacy = "plain"
checks = ["not_null"]
range = [1, 36500]

[columns.current_period_days]
description = "Days since the current run of continuous service began (since the last re-signup)."
privacy = "plain"
checks = ["not_null"]
range = [1, 36500]

[columns.previous_active_periods]
description = "Number of earlier subscription periods that ended before the customer came back (re-signups)."
privacy = "plain"
checks = ["not_null"]
range = [0, 1000]

[columns.current_plan]
description = "Plan the customer is on (the latest subscription started before the observation date)."
privacy = "plain"
checks = ["not_null"]

[columns.current_plan_tier]
description = "Rank of the current plan from cheapest (1) upwards."
privacy = "plain"

[columns.monthly_price]
description = "Monthly list price of the customer's current plan."
privacy = "plain"
range = [0, 1000]

[columns.price_change_90d_pct]
description = "Change in the list price of the customer's plan over the last 90 days, in percent (+10 = 10% more expensive); empty when the plan had no price 90 days ago."
privacy = "plain"
range = [-100, 100000]

[columns.plan_changes_365d]
description = "Number of plan changes (upgrades or downgrades) in the last 365 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 1000]

[columns.days_since_last_purchase]
description = "Days since the customer's last purchase; empty when the customer never bought anything."
privacy = "plain"
range = [1, 36500]

[columns.purchases_30d]
description = "Number of purchases in the last 30 days (refunds not counted)."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.purchases_90d]
description = "Number of purchases in the last 90 days (refunds not counted)."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.purchases_180d]
description = "Number of purchases in the last 180 days (refunds not counted)."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.spend_30d]
description = "Money spent in the last 30 days, net of refunds."
privacy = "plain"
checks = ["not_null"]

[columns.spend_90d]
description = "Money spent in the last 90 days, net of refunds."
privacy = "plain"
checks = ["not_null"]

[columns.spend_180d]
description = "Money spent in the last 180 days, net of refunds."
privacy = "plain"
checks = ["not_null"]

[columns.purchases_trend]
description = "Change in purchase frequency: last 30 days against the monthly average of the 150 days before, from -1 (stopped buying) through 0 (unchanged) to +1 (only recent purchases)."
privacy = "plain"
checks = ["not_null"]
range = [-1, 1]

[columns.spend_trend]
description = "Change in spending: last 30 days against the monthly average of the 150 days before, from -1 (stopped spending) through 0 (unchanged) to +1 (only recent spending)."
privacy = "plain"
checks = ["not_null"]
range = [-1, 1]

[columns.active_days_30d]
description = "Days with product use in the last 30 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 30]

[columns.active_days_90d]
description = "Days with product use in the last 90 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 90]

[columns.usage_minutes_30d]
description = "Minutes of product use in the last 30 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 43200]

[columns.usage_minutes_90d]
description = "Minutes of product use in the last 90 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 129600]

[columns.usage_trend]
description = "Change in product use: active days in the last 30 days against the monthly average of the 60 days before, from -1 (stopped using) through 0 (unchanged) to +1 (only recent use)."
privacy = "plain"
checks = ["not_null"]
range = [-1, 1]

[columns.days_since_last_use]
description = "Days since the customer last used the product; empty when never used."
privacy = "plain"
range = [1, 36500]

[columns.tickets_opened_90d]
description = "Support tickets the customer opened in the last 90 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.tickets_unresolved]
description = "Support tickets still open (unresolved) on the observation date."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.mean_hours_to_resolve_90d]
description = "Average hours support took to resolve the customer's tickets resolved in the last 90 days; empty when none."
privacy = "plain"
range = [0, 100000]

[columns.mean_hours_to_resolve_180d]
description = "Average hours support took to resolve the customer's tickets resolved in the last 180 days; empty when none."
privacy = "plain"
range = [0, 100000]

[columns.mean_satisfaction]
description = "Average satisfaction rating (1 = very unhappy, 5 = very happy) the customer gave on resolved support tickets; empty when never rated."
privacy = "plain"
range = [1, 5]

[columns.web_sessions_30d]
description = "Website visits in the last 30 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.web_sessions_trend]
description = "Change in website visits: last 30 days against the monthly average of the 60 days before, from -1 (stopped visiting) through 0 (unchanged) to +1 (only recent visits)."
privacy = "plain"
checks = ["not_null"]
range = [-1, 1]

[columns.emails_sent_90d]
description = "Marketing e-mails sent to the customer in the last 90 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.email_open_rate_90d]
description = "Share of marketing e-mails sent in the last 90 days that the customer opened; empty when none was sent."
privacy = "plain"
range = [0, 1]

[columns.email_click_rate_90d]
description = "Share of marketing e-mails sent in the last 90 days in which the customer clicked a link; empty when none was sent."
privacy = "plain"
range = [0, 1]

[columns.days_since_last_activity]
description = "Days since the customer's last sign of life of any kind: purchase, product use, website visit, e-mail open or click, support ticket; empty when none was ever recorded."
privacy = "plain"
range = [1, 36500]

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
