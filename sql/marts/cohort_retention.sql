/*
materialized = "table"
grain = ["cohort_month", "segment_type", "segment", "months_since_signup"]
description = "Cohort retention: of the customers whose first active period began in a month (the cohort), the share still in that first period N months later, overall and by acquisition channel and by first plan. Only months before as_of are shown, and only cohorts observed from their start: customers who signed up before history_start are in the data only if they were still customers then (left truncation), so the cohort months before the first whole month of the history are left out instead of showing a retention of 1.0. Customers who withdrew profiling consent are left out; cohorts smaller than the k-anonymity minimum ([publish] k_anonymity) are not shown, and neither is the smallest shown segment of a cohort whose hidden segments add up to fewer than k customers (so no hidden cohort can be recovered by subtracting segments from the all row)."

[columns.cohort_month]
description = "Month the customers first subscribed (the first whole month of the history or later: earlier cohorts are left-truncated and left out)."
[columns.segment_type]
description = "all, acquisition_channel or first_plan."
[columns.segment]
description = "The segment value (all for the whole cohort)."
[columns.months_since_signup]
description = "Months after the cohort month (0 = the signup month)."
[columns.cohort_customers]
description = "Customers in the cohort and segment."
[columns.retained_customers]
description = "Of those, customers still in their first active period at the start of that month."
[columns.retention_rate]
description = "retained_customers / cohort_customers."
*/
WITH firsts AS (
    SELECT p.customer_pseudonym, p.period_start, p.period_end,
           CAST(date_trunc('month', p.period_start) AS DATE) AS cohort_month,
           coalesce(c.acquisition_channel, 'unknown') AS acquisition_channel,
           coalesce(min_by(s.plan_id, s.start_date), 'unknown') AS first_plan
    FROM staging.active_periods AS p
    JOIN staging.customers AS c USING (customer_pseudonym)
    LEFT JOIN staging.subscriptions AS s
      ON s.customer_pseudonym = p.customer_pseudonym AND s.start_date >= p.period_start
     AND s.start_date < p.period_start + INTERVAL 31 DAY
    WHERE p.period_number = 1
      -- left truncation: a cohort that began before the history is seen only through its survivors
      AND date_trunc('month', p.period_start) >= date_trunc('month', CAST(getvariable('history_start') AS DATE)
                                                            - INTERVAL 1 DAY) + INTERVAL 1 MONTH
      AND NOT EXISTS (
        SELECT 1 FROM staging.consent_state AS x
        WHERE x.customer_pseudonym = p.customer_pseudonym AND x.purpose = 'profiling'
          AND x.is_latest AND x.state = 'withdrawn')
    GROUP BY p.customer_pseudonym, p.period_start, p.period_end, c.acquisition_channel
),
segmented AS (
    SELECT *, 'all' AS segment_type, 'all' AS segment FROM firsts
    UNION ALL
    SELECT *, 'acquisition_channel', acquisition_channel FROM firsts
    UNION ALL
    SELECT *, 'first_plan', first_plan FROM firsts
),
counted AS (
    SELECT cohort_month, segment_type, segment, count(*) AS cohort_customers,
           CAST(getvariable('k_anonymity') AS INTEGER) AS k
    FROM segmented GROUP BY ALL
),
ranked AS (
    SELECT *,
           sum(CASE WHEN cohort_customers < k THEN cohort_customers ELSE 0 END)
               OVER (PARTITION BY cohort_month, segment_type) AS suppressed,
           row_number() OVER (PARTITION BY cohort_month, segment_type, cohort_customers >= k
                              ORDER BY cohort_customers, segment) AS size_order
    FROM counted
),
-- Complementary suppression: the 'all' row minus the shown segments gives the hidden ones' total,
-- so when that total would be 1..k-1 the smallest shown segment is hidden as well.
sizes AS (
    SELECT cohort_month, segment_type, segment, cohort_customers
    FROM ranked
    WHERE cohort_customers >= k
      AND NOT (segment_type <> 'all' AND suppressed > 0 AND suppressed < k AND size_order = 1)
),
offsets AS (
    SELECT CAST(n AS INTEGER) AS months_since_signup FROM range(0, 37) AS t(n)
)
SELECT z.cohort_month, z.segment_type, z.segment, o.months_since_signup, z.cohort_customers,
       count(*) FILTER (WHERE s.period_end IS NULL
                        OR s.period_end >= z.cohort_month + to_months(o.months_since_signup)) AS retained_customers,
       count(*) FILTER (WHERE s.period_end IS NULL
                        OR s.period_end >= z.cohort_month + to_months(o.months_since_signup))
           / z.cohort_customers AS retention_rate
FROM sizes AS z
CROSS JOIN offsets AS o
JOIN segmented AS s USING (cohort_month, segment_type, segment)
WHERE z.cohort_month + to_months(o.months_since_signup) < CAST(getvariable('as_of') AS DATE)
GROUP BY z.cohort_month, z.segment_type, z.segment, o.months_since_signup, z.cohort_customers
ORDER BY z.cohort_month, z.segment_type, z.segment, o.months_since_signup
