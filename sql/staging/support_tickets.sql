/*
materialized = "table"
grain = ["ticket_id"]
description = "One row per support ticket. A resolution time before the opening time is clipped to the opening time."

[columns.ticket_id]
description = "Identifier of the support ticket."
privacy = "plain"
checks = ["not_null", "unique"]

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.opened_at]
description = "When the customer opened the ticket."
privacy = "plain"
checks = ["not_null"]

[columns.resolved_at]
description = "When the ticket was resolved; NULL while unresolved."
privacy = "plain"

[columns.hours_to_resolve]
description = "Hours from opening to resolution; NULL while unresolved."
privacy = "plain"
range = [0, 100000]

[columns.category]
description = "Ticket topic: billing, technical, account, cancellation; 'other' for unlisted values, 'unknown' when missing."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["billing", "technical", "account", "cancellation", "other", "unknown"]

[columns.satisfaction]
description = "Satisfaction rating the customer gave (1 = very unhappy, 5 = very happy); values outside 1-5 become NULL. Known only once the ticket is resolved."
privacy = "plain"
range = [1, 5]

[[audits]]
name = "resolved_not_before_opened"
sql = "SELECT ticket_id FROM this WHERE resolved_at < opened_at"
*/
WITH keyed AS (
    SELECT
        CAST(t.ticket_id AS VARCHAR) AS ticket_id,
        k.customer_pseudonym,
        TRY_CAST(t.opened_at AS TIMESTAMP) AS opened_at,
        TRY_CAST(t.resolved_at AS TIMESTAMP) AS resolved_raw,
        nullif(lower(trim(CAST(t.category AS VARCHAR))), '') AS category_raw,
        TRY_CAST(t.satisfaction AS INTEGER) AS satisfaction_raw
    FROM raw.support_tickets AS t
    JOIN raw.customer_keys AS k USING (customer_id)
    WHERE t.ticket_id IS NOT NULL
),
deduplicated AS (
    SELECT
        ticket_id,
        customer_pseudonym,
        opened_at,
        CASE WHEN resolved_raw IS NOT NULL THEN greatest(resolved_raw, opened_at) END AS resolved_at,
        category_raw,
        satisfaction_raw
    FROM keyed
    WHERE opened_at IS NOT NULL
    QUALIFY row_number() OVER (
        PARTITION BY ticket_id
        ORDER BY resolved_raw IS NULL, resolved_raw, opened_at, satisfaction_raw NULLS LAST, category_raw NULLS LAST
    ) = 1
)
SELECT
    ticket_id,
    customer_pseudonym,
    opened_at,
    resolved_at,
    date_diff('second', opened_at, resolved_at) / 3600.0 AS hours_to_resolve,
    CASE
        WHEN category_raw IN ('billing', 'technical', 'account', 'cancellation') THEN category_raw
        WHEN category_raw IS NULL THEN 'unknown'
        ELSE 'other'
    END AS category,
    CASE WHEN satisfaction_raw BETWEEN 1 AND 5 THEN satisfaction_raw END AS satisfaction
FROM deduplicated
