/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "One row per Telco customer, keyed by pseudonym; snake_case names; no direct identifier."

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null", "unique"]

[columns.churned]
description = "1 if the customer left within the last month (source column Churn = Yes)."
accepted_values = [0, 1]
*/
SELECT
    k.customer_pseudonym,
    c.gender,
    c.SeniorCitizen AS senior_citizen,
    c.Partner AS partner,
    c.Dependents AS dependents,
    c.tenure AS tenure_months,
    c.PhoneService AS phone_service,
    c.MultipleLines AS multiple_lines,
    c.InternetService AS internet_service,
    c.OnlineSecurity AS online_security,
    c.OnlineBackup AS online_backup,
    c.DeviceProtection AS device_protection,
    c.TechSupport AS tech_support,
    c.StreamingTV AS streaming_tv,
    c.StreamingMovies AS streaming_movies,
    c.Contract AS contract,
    c.PaperlessBilling AS paperless_billing,
    c.PaymentMethod AS payment_method,
    c.MonthlyCharges AS monthly_charges,
    c.TotalCharges AS total_charges,
    c.Churn AS churned
FROM raw.customers AS c
JOIN raw.customer_keys AS k ON k.customer_id = c.customer_id
