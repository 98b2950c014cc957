/*
materialized = "table"
grain = ["event_id"]
description = "Consent grants and withdrawals per customer and purpose (profiling, marketing). The latest profiling event at or before a date decides whether the customer may be profiled on that date; no event means profiled under legitimate interest."

[columns.event_id]
description = "Identifier of the consent event."
privacy = "plain"
checks = ["not_null", "unique"]

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.purpose]
description = "What the consent covers: profiling (churn scoring) or marketing (contact), lower case."
privacy = "plain"

[columns.action]
description = "grant or withdraw (a GDPR objection, a CCPA opt-out and a Global Privacy Control signal are withdrawals)."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["grant", "withdraw"]

[columns.event_ts]
description = "When the consent decision was recorded."
privacy = "plain"
checks = ["not_null"]

[columns.source]
description = "Where the decision came from: signup_form, preference_center, gpc (Global Privacy Control), support_call."
privacy = "plain"

[columns.regulation]
description = "Legal basis: GDPR or CCPA (upper case)."
privacy = "plain"
*/
WITH keyed AS (
    SELECT
        CAST(c.event_id AS VARCHAR) AS event_id,
        k.customer_pseudonym,
        nullif(lower(trim(CAST(c.purpose AS VARCHAR))), '') AS purpose,
        CASE
            WHEN lower(trim(CAST(c.action AS VARCHAR))) IN ('grant', 'granted', 'opt_in', 'opt-in') THEN 'grant'
            WHEN lower(trim(CAST(c.action AS VARCHAR))) IN ('withdraw', 'withdrawn', 'withdrawal', 'revoke', 'opt_out', 'opt-out', 'object')
                THEN 'withdraw'
            -- anything else is kept as written so the accepted_values check stops the build:
            -- silently dropping an unreadable withdrawal would profile a customer who objected
            ELSE lower(trim(CAST(c.action AS VARCHAR)))
        END AS action,
        TRY_CAST(c.event_ts AS TIMESTAMP) AS event_ts,
        nullif(lower(trim(CAST(c.source AS VARCHAR))), '') AS source,
        nullif(upper(trim(CAST(c.regulation AS VARCHAR))), '') AS regulation
    FROM raw.consent_events AS c
    JOIN raw.customer_keys AS k USING (customer_id)
    WHERE c.event_id IS NOT NULL
)
SELECT event_id, customer_pseudonym, purpose, action, event_ts, source, regulation
FROM keyed
WHERE event_ts IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_ts, purpose, action, source NULLS LAST) = 1
