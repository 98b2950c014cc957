-- The 20 customers with the most value at risk, with their three main reasons.
SELECT s.customer_pseudonym, s.churn_probability, s.risk_tier, s.value_at_risk,
       string_agg(d.reason, '; ' ORDER BY d.rank) AS main_reasons
FROM churn_scores AS s
JOIN churn_drivers AS d USING (customer_pseudonym)
WHERE d.rank <= 3
GROUP BY ALL
ORDER BY s.value_at_risk DESC
LIMIT 20;
