/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "The customers still with us (churned = 0), the same features, scored at as_of."
*/
SELECT
    customer_pseudonym,
    getvariable('as_of') AS observation_date,
    senior_citizen, partner, dependents, tenure_months, phone_service, multiple_lines, internet_service,
    online_security, online_backup, device_protection, tech_support, streaming_tv, streaming_movies,
    contract, paperless_billing, payment_method, monthly_charges, total_charges
FROM staging.customers
WHERE churned = 0
