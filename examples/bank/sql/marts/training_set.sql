/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Every customer with the churn flag; observation_date is NULL (no time), so training splits stratified at random."

[columns.churned]
checks = ["not_null"]
accepted_values = [0, 1]
*/
SELECT
    customer_pseudonym,
    CAST(NULL AS DATE) AS observation_date,   -- a flat table has no time
    credit_score, geography, gender, age_band, tenure_years, balance, products, has_credit_card,
    is_active_member, estimated_salary,
    churned
FROM staging.customers
