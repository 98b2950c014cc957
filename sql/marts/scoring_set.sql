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

[columns.tenure_band]
description = "Tenure band on the scoring date (from tenure_days): a segment to slice scores by, not a model feature."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["under 6 months", "6-12 months", "1-2 years", "2+ years"]

# feature columns inherit their description and privacy tag from features.customer_features

[[audits]]
name = "scored_on_as_of"
sql = "SELECT customer_pseudonym FROM this WHERE observation_date <> getvariable('as_of')"
*/
SELECT
    customer_pseudonym,
    observation_date,
    * EXCLUDE (customer_pseudonym, observation_date, purpose),
    CASE
        WHEN tenure_days < 183 THEN 'under 6 months'
        WHEN tenure_days < 365 THEN '6-12 months'
        WHEN tenure_days < 730 THEN '1-2 years'
        ELSE '2+ years'
    END AS tenure_band
FROM features.customer_features
WHERE purpose = 'score'
