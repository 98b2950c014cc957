/*
materialized = "table"
grain = ["customer_pseudonym", "activity_date"]
description = "One row per customer and day with product activity (days without activity have no row). Duplicate rows for a customer and day are collapsed to one (the highest sessions and minutes, the alphabetically first feature)."

[incremental]
# only the days from the last processed one on are rebuilt; a raw row dated before it (late) rebuilds all
time_column = "activity_date"

[[incremental.inputs]]
relation = "raw.product_usage"
time = "TRY_CAST(activity_date AS DATE)"
columns = []  # append-only: the count of rows dated before the processed day catches a late or erased row

[[incremental.inputs]]
relation = "raw.customer_keys"  # an append-only lookup: a key rotation rebuilds with --full-refresh

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.activity_date]
description = "Day the customer used the product."
privacy = "plain"
checks = ["not_null"]

[columns.sessions]
description = "Number of product sessions that day, clipped to [0, 100]."
privacy = "plain"
range = [0, 100]

[columns.minutes]
description = "Minutes of product use that day, clipped to [0, 1440] (a day has 1440 minutes); NULL when not measured."
privacy = "plain"
range = [0, 1440]

[columns.feature_used]
description = "Main product feature used that day, lower case; 'unknown' when missing."
privacy = "plain"
checks = ["not_null"]
*/
WITH per_day AS (
    -- one hash aggregation instead of DISTINCT plus a window: the table is the largest raw table
    SELECT
        customer_id,
        TRY_CAST(activity_date AS DATE) AS activity_date,
        max(TRY_CAST(sessions AS INTEGER)) AS sessions,
        max(TRY_CAST(minutes AS DOUBLE)) AS minutes,
        min(nullif(lower(trim(CAST(feature_used AS VARCHAR))), '')) AS feature_used
    FROM raw.product_usage
    WHERE TRY_CAST(activity_date AS DATE) >= getvariable('incremental_start')
    GROUP BY customer_id, TRY_CAST(activity_date AS DATE)
)
SELECT
    k.customer_pseudonym,
    u.activity_date,
    -- clipped; NULL stays NULL (greatest/least skip NULLs)
    CASE WHEN u.sessions IS NOT NULL THEN least(greatest(u.sessions, 0), 100) END AS sessions,
    CASE WHEN u.minutes IS NOT NULL THEN least(greatest(u.minutes, 0.0), 1440.0) END AS minutes,
    coalesce(u.feature_used, 'unknown') AS feature_used
FROM per_day AS u
JOIN raw.customer_keys AS k USING (customer_id)
