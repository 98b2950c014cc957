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
    senior_citizen, partner, dependents, tenure_months, phone_service, multiple_lines, internet_service,
    online_security, online_backup, device_protection, tech_support, streaming_tv, streaming_movies,
    contract, paperless_billing, payment_method, monthly_charges, total_charges,
    churned
FROM staging.customers
