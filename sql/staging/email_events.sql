/*
materialized = "table"
grain = ["event_id"]
description = "Marketing e-mail events, one row per customer, campaign and event type (sent, opened, clicked): the first occurrence is kept, so repeated opens of one e-mail count once."

[columns.event_id]
description = "Identifier of the e-mail event."
privacy = "plain"
checks = ["not_null", "unique"]

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.campaign_id]
description = "Marketing campaign the e-mail belonged to."
privacy = "plain"

[columns.event_type]
description = "What happened: sent, opened or clicked."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["sent", "opened", "clicked"]

[columns.event_ts]
description = "When the event happened."
privacy = "plain"
checks = ["not_null"]

[columns.event_date]
description = "Day the event happened."
privacy = "plain"
checks = ["not_null"]
*/
WITH keyed AS (
    SELECT
        CAST(e.event_id AS VARCHAR) AS event_id,
        k.customer_pseudonym,
        CAST(e.campaign_id AS VARCHAR) AS campaign_id,
        CASE lower(trim(CAST(e.event_type AS VARCHAR)))
            WHEN 'sent' THEN 'sent' WHEN 'send' THEN 'sent'
            WHEN 'opened' THEN 'opened' WHEN 'open' THEN 'opened'
            WHEN 'clicked' THEN 'clicked' WHEN 'click' THEN 'clicked'
        END AS event_type,
        TRY_CAST(e.event_ts AS TIMESTAMP) AS event_ts
    FROM raw.email_events AS e
    JOIN raw.customer_keys AS k USING (customer_id)
    WHERE e.event_id IS NOT NULL
),
one_per_id AS (
    SELECT *
    FROM keyed
    WHERE event_type IS NOT NULL AND event_ts IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_ts, campaign_id NULLS LAST, event_type) = 1
)
SELECT event_id, customer_pseudonym, campaign_id, event_type, event_ts, CAST(event_ts AS DATE) AS event_date
FROM one_per_id
QUALIFY row_number() OVER (
    PARTITION BY customer_pseudonym, coalesce(campaign_id, event_id), event_type
    ORDER BY event_ts, event_id
) = 1
