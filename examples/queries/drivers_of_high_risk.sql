-- Which features most often are the first reason of a high-risk customer, and in which direction.
SELECT d.feature, d.label, d.direction, count(*) AS customers
FROM churn_drivers AS d
JOIN churn_scores AS s USING (customer_pseudonym)
WHERE s.risk_tier = 'high' AND d.rank = 1
GROUP BY ALL
ORDER BY customers DESC;
