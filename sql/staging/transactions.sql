/*
materialized = "table"
grain = ["transaction_id"]
description = "One row per purchase or refund. Duplicate transaction ids keep the first loaded copy, so a later correction never changes what was known earlier."

[incremental]
# by the day a row reached the warehouse: rows loaded from the last processed day on are rebuilt; a raw
# row loaded before it (late) rebuilds all, and so does a copy of an earlier transaction id (unique fails)
time_column = "loaded_at"

[[incremental.inputs]]
relation = "raw.transactions"
time = "CAST(coalesce(TRY_CAST(loaded_at AS TIMESTAMP), TRY_CAST(transaction_ts AS TIMESTAMP)) AS DATE)"
columns = []  # append-only: the count of rows loaded before the processed day catches a late or erased row

[[incremental.inputs]]
relation = "raw.customer_keys"  # an append-only lookup: a key rotation rebuilds with --full-refresh

[columns.transaction_id]
description = "Identifier of the transaction."
privacy = "plain"
checks = ["not_null", "unique"]

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.transaction_ts]
description = "When the transaction happened."
privacy = "plain"
checks = ["not_null"]

[columns.transaction_date]
description = "Day the transaction happened."
privacy = "plain"
checks = ["not_null"]

[columns.amount]
description = "Amount in the account currency, clipped to [-500, 500] (larger values are treated as entry errors); negative amounts are refunds; NULL when unknown."
privacy = "plain"
range = [-500, 500]

[columns.is_refund]
description = "True when the amount is negative (a refund)."
privacy = "plain"
checks = ["not_null"]

[columns.category]
description = "Product category of the purchase, lower case; 'unknown' when missing."
privacy = "plain"
checks = ["not_null"]

[columns.loaded_at]
description = "When the row reached the warehouse (late rows arrive days after the transaction); the transaction time when missing. Features only use rows loaded before the observation date."
privacy = "plain"
checks = ["not_null"]
*/
WITH keyed AS (
    SELECT
        CAST(t.transaction_id AS VARCHAR) AS transaction_id,
        k.customer_pseudonym,
        TRY_CAST(t.transaction_ts AS TIMESTAMP) AS transaction_ts,
        -- NULL stays NULL (greatest/least skip NULLs)
        CASE WHEN TRY_CAST(t.amount AS DOUBLE) IS NOT NULL THEN least(greatest(TRY_CAST(t.amount AS DOUBLE), -500.0), 500.0) END AS amount,
        coalesce(nullif(lower(trim(CAST(t.category AS VARCHAR))), ''), 'unknown') AS category,
        TRY_CAST(t.loaded_at AS TIMESTAMP) AS loaded_at
    FROM raw.transactions AS t
    JOIN raw.customer_keys AS k USING (customer_id)
    WHERE t.transaction_id IS NOT NULL
      AND coalesce(TRY_CAST(t.loaded_at AS TIMESTAMP), TRY_CAST(t.transaction_ts AS TIMESTAMP))
          >= getvariable('incremental_start')
)
SELECT
    transaction_id,
    customer_pseudonym,
    transaction_ts,
    CAST(transaction_ts AS DATE) AS transaction_date,
    amount,
    coalesce(amount < 0, false) AS is_refund,
    category,
    coalesce(loaded_at, transaction_ts) AS loaded_at
FROM keyed
WHERE transaction_ts IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY transaction_id
    ORDER BY coalesce(loaded_at, transaction_ts), transaction_ts, amount NULLS LAST, category
) = 1
