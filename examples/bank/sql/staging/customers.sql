/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "One row per bank customer, keyed by pseudonym. No surname, no customer id, no row number."

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null", "unique"]

[columns.age_band]
description = "Age in 5-year bands (a quasi-identifier, coarsened)."
privacy = "quasi_identifier"

[columns.churned]
description = "1 if the customer closed the account (source column Exited = 1)."
accepted_values = [0, 1]
*/
SELECT
    k.customer_pseudonym,
    c.CreditScore AS credit_score,
    c.Geography AS geography,
    c.Gender AS gender,
    c.Age AS age,
    CAST(floor(c.Age / 5) * 5 AS INTEGER) AS age_band,
    c.Tenure AS tenure_years,
    c.Balance AS balance,
    c.NumOfProducts AS products,
    c.HasCrCard AS has_credit_card,
    c.IsActiveMember AS is_active_member,
    c.EstimatedSalary AS estimated_salary,
    c.Exited AS churned
FROM raw.customers AS c
JOIN raw.customer_keys AS k ON k.customer_id = c.customer_id
