/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "The customers still with the bank (churned = 0), the same features, scored at as_of."
*/
SELECT
    customer_pseudonym,
    getvariable('as_of') AS observation_date,
    credit_score, geography, gender, age_band, tenure_years, balance, products, has_credit_card,
    is_active_member, estimated_salary
FROM staging.customers
WHERE churned = 0
