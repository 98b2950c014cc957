/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Scoring rows: one per customer active on as_of, with the same features as the training set, computed from data before as_of. No label."

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null", "unique"]

[columns.observation_date]
description = "The scoring date (as_of); features describe the customer as known before this day."
privacy = "plain"
checks = ["not_null"]

# feature columns inherit their description and privacy tag from features.customer_features

[[audits]]
name = "scored_on_as_of"
sql = "SELECT customer_pseudonym FROM this WHERE observation_date <> getvariable('as_of')"
*/
SELECT
    customer_pseudonym,
    observation_date,
    * EXCLUDE (customer_pseudonym, observation_date, purpose)
FROM features.customer_features
WHERE purpose = 'score'
