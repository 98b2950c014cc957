/*
materialized = "table"
grain = ["month", "segment_type", "segment"]
description = "Monthly churn rate: customers active at the start of each month and how many of them churned (their active period ended) during it, overall and by acquisition channel. Customers who withdrew profiling consent are left out; a segment-month with fewer customers than the k-anonymity minimum ([publish] k_anonymity) is not shown, and neither is the smallest shown segment of a month whose hidden segments add up to fewer than k customers (so no hidden segment can be recovered by subtracting from the all row)."

[columns.month]
description = "First day of the month."
[columns.segment_type]
description = "all, or the attribute the segment is cut by (acquisition_channel)."
[columns.segment]
description = "The segment value (all for the whole base)."
[columns.active_customers]
description = "Customers in an active period on the first day of the month."
[columns.churned_customers]
description = "Of those, customers whose active period ended during the month."
[columns.churn_rate]
description = "churned_customers / active_customers."
*/
WITH months AS (
    SELECT CAST(m AS DATE) AS month
    FROM range(date_trunc('month', CAST(getvariable('history_start') AS DATE)),
               date_trunc('month', CAST(getvariable('as_of') AS DATE)), INTERVAL 1 MONTH) AS t(m)
),
consenting AS (
    SELECT c.customer_pseudonym, coalesce(c.acquisition_channel, 'unknown') AS acquisition_channel
    FROM staging.customers AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM staging.consent_state AS s
        WHERE s.customer_pseudonym = c.customer_pseudonym AND s.purpose = 'profiling'
          AND s.is_latest AND s.state = 'withdrawn')
),
active AS (
    SELECT m.month, c.acquisition_channel,
           CASE WHEN p.period_end < m.month + INTERVAL 1 MONTH THEN 1 ELSE 0 END AS churned
    FROM months AS m
    JOIN staging.active_periods AS p
      ON p.period_start < m.month AND (p.period_end IS NULL OR p.period_end >= m.month)
    JOIN consenting AS c USING (customer_pseudonym)
),
segmented AS (
    SELECT month, 'all' AS segment_type, 'all' AS segment, churned FROM active
    UNION ALL
    SELECT month, 'acquisition_channel', acquisition_channel, churned FROM active
),
counted AS (
    SELECT month, segment_type, segment,
           count(*) AS active_customers,
           CAST(sum(churned) AS BIGINT) AS churned_customers,
           sum(churned) / count(*) AS churn_rate,
           CAST(getvariable('k_anonymity') AS INTEGER) AS k
    FROM segmented
    GROUP BY ALL
),
ranked AS (
    SELECT *,
           sum(CASE WHEN active_customers < k THEN active_customers ELSE 0 END)
               OVER (PARTITION BY month, segment_type) AS suppressed,
           row_number() OVER (PARTITION BY month, segment_type, active_customers >= k
                              ORDER BY active_customers, segment) AS size_order
    FROM counted
)
-- Complementary suppression: the 'all' row minus the shown segments gives the hidden ones' total,
-- so when that total would be 1..k-1 the smallest shown segment is hidden as well.
SELECT month, segment_type, segment, active_customers, churned_customers, churn_rate
FROM ranked
WHERE active_customers >= k
  AND NOT (segment_type <> 'all' AND suppressed > 0 AND suppressed < k AND size_order = 1)
ORDER BY month, segment_type, segment
