/*
materialized = "table"
grain = ["session_id"]
description = "One row per visit to the website or web app."

[incremental]
# sessions from the last processed day on are rebuilt; a raw session dated before it (late) rebuilds all,
# and so does a second copy of an earlier session id (unique fails)
time_column = "session_date"

[[incremental.inputs]]
relation = "raw.web_sessions"
time = "CAST(TRY_CAST(session_start AS TIMESTAMP) AS DATE)"
columns = []  # append-only: the count of rows dated before the processed day catches a late or erased row

[[incremental.inputs]]
relation = "raw.customer_keys"  # an append-only lookup: a key rotation rebuilds with --full-refresh

[columns.session_id]
description = "Identifier of the web session."
privacy = "plain"
checks = ["not_null", "unique"]

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.session_start]
description = "When the web session started."
privacy = "plain"
checks = ["not_null"]

[columns.session_date]
description = "Day the web session started."
privacy = "plain"
checks = ["not_null"]

[columns.pages]
description = "Pages viewed in the session, clipped to [0, 500]."
privacy = "plain"
range = [0, 500]

[columns.device]
description = "Device type of the session, lower case; 'unknown' when missing."
privacy = "plain"
checks = ["not_null"]
*/
WITH keyed AS (
    SELECT
        CAST(w.session_id AS VARCHAR) AS session_id,
        k.customer_pseudonym,
        TRY_CAST(w.session_start AS TIMESTAMP) AS session_start,
        -- NULL stays NULL (greatest/least skip NULLs)
        CASE WHEN TRY_CAST(w.pages AS INTEGER) IS NOT NULL THEN least(greatest(TRY_CAST(w.pages AS INTEGER), 0), 500) END AS pages,
        coalesce(nullif(lower(trim(CAST(w.device AS VARCHAR))), ''), 'unknown') AS device
    FROM raw.web_sessions AS w
    JOIN raw.customer_keys AS k USING (customer_id)
    WHERE w.session_id IS NOT NULL
      AND TRY_CAST(w.session_start AS TIMESTAMP) >= getvariable('incremental_start')
)
SELECT
    session_id,
    customer_pseudonym,
    session_start,
    CAST(session_start AS DATE) AS session_date,
    pages,
    device
FROM keyed
WHERE session_start IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY session_start, pages NULLS LAST, device) = 1
