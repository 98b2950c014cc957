/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "One row per customer: cleaned demographics without direct identifiers. Names, e-mail, phone, address and exact birth date stay in raw; the birth date is coarsened to its month."

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256); the only customer key outside raw."
privacy = "pseudonym"
checks = ["not_null", "unique"]

[columns.birth_month]
description = "First day of the customer's birth month (exact birth date is never copied out of raw). NULL when unknown or implausible (before 1900 or after the signup date)."
privacy = "quasi_identifier"

[columns.gender]
description = "Gender as the customer stated it, normalized: female, male, other, unknown."
privacy = "quasi_identifier"
checks = ["not_null"]
accepted_values = ["female", "male", "other", "unknown"]

[columns.region]
description = "Home region of the customer, lower case and trimmed; 'unknown' when missing."
privacy = "quasi_identifier"
checks = ["not_null"]

[columns.acquisition_channel]
description = "How the customer was acquired: organic, paid_search, social, referral, partner; 'other' for unlisted values, 'unknown' when missing."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["organic", "paid_search", "social", "referral", "partner", "other", "unknown"]

[columns.signup_date]
description = "Day the customer first signed up."
privacy = "quasi_identifier"
*/
WITH keyed AS (
    SELECT
        k.customer_pseudonym,
        TRY_CAST(c.birth_date AS DATE) AS birth_date,
        TRY_CAST(c.signup_date AS DATE) AS signup_date,
        nullif(lower(trim(CAST(c.gender AS VARCHAR))), '') AS gender_raw,
        nullif(lower(trim(CAST(c.region AS VARCHAR))), '') AS region_raw,
        nullif(replace(replace(lower(trim(CAST(c.acquisition_channel AS VARCHAR))), ' ', '_'), '-', '_'), '') AS channel_raw
    FROM raw.customers AS c
    JOIN raw.customer_keys AS k USING (customer_id)
    WHERE c.customer_id IS NOT NULL
),
deduplicated AS (
    SELECT *
    FROM keyed
    QUALIFY row_number() OVER (
        PARTITION BY customer_pseudonym
        ORDER BY signup_date NULLS LAST, birth_date NULLS LAST, gender_raw NULLS LAST, region_raw NULLS LAST, channel_raw NULLS LAST
    ) = 1
)
SELECT
    customer_pseudonym,
    CASE
        WHEN birth_date >= DATE '1900-01-01' AND birth_date <= coalesce(signup_date, birth_date)
            THEN CAST(date_trunc('month', birth_date) AS DATE)
    END AS birth_month,
    CASE
        WHEN gender_raw IN ('f', 'female', 'w', 'woman') THEN 'female'
        WHEN gender_raw IN ('m', 'male', 'man') THEN 'male'
        WHEN gender_raw IS NULL THEN 'unknown'
        ELSE 'other'
    END AS gender,
    coalesce(region_raw, 'unknown') AS region,
    CASE
        WHEN channel_raw IN ('organic', 'paid_search', 'social', 'referral', 'partner') THEN channel_raw
        WHEN channel_raw IS NULL THEN 'unknown'
        ELSE 'other'
    END AS acquisition_channel,
    signup_date
FROM deduplicated
