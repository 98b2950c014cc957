-- Monthly churn rate and revenue churn rate over the last 12 months.
SELECT c.month, c.active_customers, c.churn_rate, r.revenue_churn_rate
FROM churn_monthly AS c
JOIN revenue_churn_monthly AS r USING (month)
WHERE c.segment_type = 'all'
ORDER BY c.month DESC
LIMIT 12;
