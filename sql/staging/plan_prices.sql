/*
materialized = "table"
grain = ["plan_id", "valid_from"]
description = "Price list: one row per plan and price change. The price in force on day d is the row with the latest valid_from <= d (valid_to is the next change, exclusive)."

[columns.plan_id]
description = "Subscription plan (basic, standard, premium, family), lower case."
privacy = "plain"
checks = ["not_null"]

[columns.plan_name]
description = "Display name of the plan."
privacy = "plain"

[columns.tier_rank]
description = "Rank of the plan from cheapest (1) upwards."
privacy = "plain"

[columns.monthly_price]
description = "Monthly list price in the account currency, clipped to [0, 1000]."
privacy = "plain"
range = [0, 1000]

[columns.valid_from]
description = "First day this price is in force."
privacy = "plain"
checks = ["not_null"]

[columns.valid_to]
description = "Day the next price for the plan takes over (exclusive); NULL for the current price."
privacy = "plain"
*/
WITH prices AS (
    SELECT
        lower(trim(CAST(plan_id AS VARCHAR))) AS plan_id,
        -- NULL stays NULL (greatest/least skip NULLs)
        CASE WHEN TRY_CAST(monthly_price AS DOUBLE) IS NOT NULL THEN least(greatest(TRY_CAST(monthly_price AS DOUBLE), 0.0), 1000.0) END AS monthly_price,
        TRY_CAST(valid_from AS DATE) AS valid_from
    FROM raw.plan_prices
    WHERE plan_id IS NOT NULL AND valid_from IS NOT NULL
    QUALIFY row_number() OVER (
        PARTITION BY lower(trim(CAST(plan_id AS VARCHAR))), TRY_CAST(valid_from AS DATE)
        ORDER BY monthly_price NULLS LAST
    ) = 1
),
plans AS (
    SELECT
        lower(trim(CAST(plan_id AS VARCHAR))) AS plan_id,
        min(plan_name) AS plan_name,
        min(TRY_CAST(tier_rank AS INTEGER)) AS tier_rank
    FROM raw.plans
    GROUP BY 1
)
SELECT
    p.plan_id,
    l.plan_name,
    l.tier_rank,
    p.monthly_price,
    p.valid_from,
    lead(p.valid_from) OVER (PARTITION BY p.plan_id ORDER BY p.valid_from) AS valid_to
FROM prices AS p
LEFT JOIN plans AS l USING (plan_id)
