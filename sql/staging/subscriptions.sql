/*
materialized = "table"
grain = ["subscription_id"]
description = "One row per subscription (a plan held over a span of days). A plan change ends one subscription and starts the next the same day; a re-signup starts a new one after a gap."

[columns.subscription_id]
description = "Identifier of the subscription record."
privacy = "plain"
checks = ["not_null", "unique"]

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.plan_id]
description = "Plan held during the subscription (basic, standard, premium, family), lower case."
privacy = "plain"

[columns.start_date]
description = "First day of service."
privacy = "plain"
checks = ["not_null"]

[columns.end_date]
description = "Day service stopped; NULL while the subscription is active. Rows ending before they start are dropped."
privacy = "plain"

[columns.cancel_reason]
description = "Reason given when cancelling, lower case; NULL unless cancelled. Only known at cancellation, so never used as a feature."
privacy = "sensitive"

[[audits]]
name = "ends_not_before_start"
sql = "SELECT subscription_id FROM this WHERE end_date < start_date"
*/
WITH keyed AS (
    SELECT
        CAST(s.subscription_id AS VARCHAR) AS subscription_id,
        k.customer_pseudonym,
        nullif(lower(trim(CAST(s.plan_id AS VARCHAR))), '') AS plan_id,
        TRY_CAST(s.start_date AS DATE) AS start_date,
        TRY_CAST(s.end_date AS DATE) AS end_date,
        nullif(lower(trim(CAST(s.cancel_reason AS VARCHAR))), '') AS cancel_reason
    FROM raw.subscriptions AS s
    JOIN raw.customer_keys AS k USING (customer_id)
    WHERE s.subscription_id IS NOT NULL
)
SELECT subscription_id, customer_pseudonym, plan_id, start_date, end_date, cancel_reason
FROM keyed
WHERE start_date IS NOT NULL
  AND (end_date IS NULL OR end_date >= start_date)
-- duplicate ids: keep the copy that knows the end of service (an end is only ever added later)
QUALIFY row_number() OVER (
    PARTITION BY subscription_id
    ORDER BY end_date IS NULL, end_date, start_date, plan_id NULLS LAST, cancel_reason NULLS LAST
) = 1
