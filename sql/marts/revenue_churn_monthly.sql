/*
materialized = "table"
grain = ["month"]
description = "Monthly revenue churn: recurring revenue (plan list prices) of the customers active at the start of each month, and the part of it lost to customers who churned during the month. Customers who withdrew profiling consent are left out; months with fewer customers than the k-anonymity minimum ([publish] k_anonymity) are not shown."

[columns.month]
description = "First day of the month."
[columns.active_customers]
description = "Customers with a running subscription on the first day of the month."
[columns.starting_mrr]
description = "Monthly recurring revenue at the start of the month: sum of their plans' list prices."
[columns.churned_mrr]
description = "Monthly recurring revenue of the customers whose active period ended during the month."
[columns.revenue_churn_rate]
description = "churned_mrr / starting_mrr."
*/
WITH months AS (
    SELECT CAST(m AS DATE) AS month
    FROM range(date_trunc('month', CAST(getvariable('history_start') AS DATE)),
               date_trunc('month', CAST(getvariable('as_of') AS DATE)), INTERVAL 1 MONTH) AS t(m)
),
running AS (
    SELECT m.month, s.customer_pseudonym, max(pp.monthly_price) AS price
    FROM months AS m
    JOIN staging.subscriptions AS s
      ON s.start_date < m.month AND (s.end_date IS NULL OR s.end_date >= m.month)
    JOIN staging.plan_prices AS pp
      ON pp.plan_id = s.plan_id AND pp.valid_from <= m.month AND (pp.valid_to IS NULL OR pp.valid_to > m.month)
    WHERE NOT EXISTS (
        SELECT 1 FROM staging.consent_state AS c
        WHERE c.customer_pseudonym = s.customer_pseudonym AND c.purpose = 'profiling'
          AND c.is_latest AND c.state = 'withdrawn')
    GROUP BY ALL
),
flagged AS (
    SELECT r.month, r.price,
           EXISTS (SELECT 1 FROM staging.active_periods AS p
                   WHERE p.customer_pseudonym = r.customer_pseudonym
                     AND p.period_end >= r.month AND p.period_end < r.month + INTERVAL 1 MONTH) AS churned
    FROM running AS r
)
SELECT month,
       count(*) AS active_customers,
       round(sum(price), 2) AS starting_mrr,
       round(coalesce(sum(price) FILTER (WHERE churned), 0), 2) AS churned_mrr,
       round(round(coalesce(sum(price) FILTER (WHERE churned), 0), 2) / round(sum(price), 2), 6) AS revenue_churn_rate
FROM flagged
GROUP BY month
HAVING count(*) >= CAST(getvariable('k_anonymity') AS INTEGER)
ORDER BY month
