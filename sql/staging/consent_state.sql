/*
materialized = "table"
grain = ["customer_pseudonym", "purpose", "valid_from"]
description = "Consent state per customer and purpose over time: one row per day on which a decision was recorded, in force from valid_from up to valid_to (exclusive). The latest event at or before a day decides that day (on a day with several events the last one counts; on equal times a withdrawal wins). A customer with no profiling row is profiled under legitimate interest; a customer with no marketing row has not consented to marketing."

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.purpose]
description = "What the consent covers: profiling (churn scoring) or marketing (contact)."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["profiling", "marketing"]

[columns.state]
description = "granted or withdrawn from valid_from on."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["granted", "withdrawn"]

[columns.withdrawal_reason]
description = "Why consent was withdrawn: gpc (Global Privacy Control signal), ccpa_opt_out, gdpr_objection (GDPR Art. 21 for profiling), withdrawn (other); empty when granted."
privacy = "plain"
accepted_values = ["gpc", "ccpa_opt_out", "gdpr_objection", "withdrawn"]

[columns.valid_from]
description = "First day this state is in force."
privacy = "plain"
checks = ["not_null"]

[columns.valid_to]
description = "Day the next decision takes over (exclusive); empty for the customer's latest decision."
privacy = "plain"

[columns.is_latest]
description = "True for the customer's latest decision for the purpose (the state today)."
privacy = "plain"
checks = ["not_null"]
*/
WITH daily AS (
    SELECT
        customer_pseudonym,
        purpose,
        action,
        source,
        regulation,
        CAST(event_ts AS DATE) AS valid_from
    FROM staging.consent_events
    WHERE purpose IS NOT NULL
    QUALIFY row_number() OVER (
        PARTITION BY customer_pseudonym, purpose, CAST(event_ts AS DATE)
        ORDER BY event_ts DESC, action = 'withdraw' DESC, event_id DESC
    ) = 1
)
SELECT
    customer_pseudonym,
    purpose,
    CASE WHEN action = 'grant' THEN 'granted' ELSE 'withdrawn' END AS state,
    CASE
        WHEN action = 'grant' THEN NULL
        WHEN source = 'gpc' THEN 'gpc'
        WHEN regulation = 'CCPA' THEN 'ccpa_opt_out'
        WHEN regulation = 'GDPR' AND purpose = 'profiling' THEN 'gdpr_objection'
        ELSE 'withdrawn'
    END AS withdrawal_reason,
    valid_from,
    lead(valid_from) OVER (PARTITION BY customer_pseudonym, purpose ORDER BY valid_from) AS valid_to,
    lead(valid_from) OVER (PARTITION BY customer_pseudonym, purpose ORDER BY valid_from) IS NULL AS is_latest
FROM daily
