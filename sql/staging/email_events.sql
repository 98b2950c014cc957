/*
materialized = "table"
grain = ["event_id"]
description = "Marketing e-mail events, one row per customer, campaign and event type (sent, opened, clicked): the first occurrence is kept, so repeated opens of one e-mail count once."

[incremental]
# events from the last processed day on are rebuilt, each checked against the earlier events it may repeat
# (its id, or its customer, campaign and type: the first occurrence is kept); a raw event dated before that
# day (late) rebuilds all
time_column = "event_date"

[[incremental.inputs]]
relation = "raw.email_events"
time = "CAST(TRY_CAST(event_ts AS TIMESTAMP) AS DATE)"
columns = []  # append-only: the count of rows dated before the processed day catches a late or erased row

[[incremental.inputs]]
relation = "raw.customer_keys"  # an append-only lookup: a key rotation rebuilds with --full-refresh

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
WITH normalized AS (
    SELECT
        CAST(e.event_id AS VARCHAR) AS event_id,
        e.customer_id,
        CAST(e.campaign_id AS VARCHAR) AS campaign_id,
        CASE lower(trim(CAST(e.event_type AS VARCHAR)))
            WHEN 'sent' THEN 'sent' WHEN 'send' THEN 'sent'
            WHEN 'opened' THEN 'opened' WHEN 'open' THEN 'opened'
            WHEN 'clicked' THEN 'clicked' WHEN 'click' THEN 'clicked'
        END AS event_type,
        TRY_CAST(e.event_ts AS TIMESTAMP) AS event_ts
    FROM raw.email_events AS e
    WHERE e.event_id IS NOT NULL
),
new_events AS MATERIALIZED (
    SELECT * FROM normalized WHERE event_ts >= getvariable('incremental_start')
),
earlier AS (
    SELECT * FROM normalized
    WHERE getvariable('incremental_start') > DATE '0001-01-01'  -- a full build: every event is new
      AND event_ts < getvariable('incremental_start')
),
repeated AS MATERIALIZED (
    -- earlier events of a new event's customer, campaign and type: the first of them is kept, not the new one
    SELECT * FROM earlier
    WHERE (customer_id, coalesce(campaign_id, event_id), event_type) IN (
        SELECT customer_id, coalesce(campaign_id, event_id), event_type FROM new_events)
),
candidates AS (
    SELECT * FROM new_events
    UNION ALL
    -- with the earlier events sharing an id with a new or a repeated one, which decide whether that one counts
    SELECT * FROM earlier
    WHERE (customer_id, coalesce(campaign_id, event_id), event_type) IN (
              SELECT customer_id, coalesce(campaign_id, event_id), event_type FROM new_events)
       OR event_id IN (SELECT event_id FROM new_events UNION ALL SELECT event_id FROM repeated)
),
one_per_id AS (
    SELECT k.customer_pseudonym, c.* EXCLUDE (customer_id)
    FROM candidates AS c
    JOIN raw.customer_keys AS k USING (customer_id)
    WHERE c.event_type IS NOT NULL AND c.event_ts IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY c.event_id ORDER BY c.event_ts, c.campaign_id NULLS LAST, c.event_type) = 1
),
first_per_group AS (
    SELECT event_id, customer_pseudonym, campaign_id, event_type, event_ts, CAST(event_ts AS DATE) AS event_date
    FROM one_per_id
    QUALIFY row_number() OVER (
        PARTITION BY customer_pseudonym, coalesce(campaign_id, event_id), event_type
        ORDER BY event_ts, event_id
    ) = 1
)
SELECT * FROM first_per_group WHERE event_ts >= getvariable('incremental_start')
