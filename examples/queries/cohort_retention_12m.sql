-- Twelve-month retention of each signup cohort, by acquisition channel. Only cohorts observed from their
-- start are in cohort_retention (signup in the first whole month of the history or later): a customer who
-- signed up before the history began is in the data only if still a customer then (left truncation).
SELECT cohort_month, segment AS acquisition_channel, cohort_customers, retention_rate
FROM cohort_retention
WHERE segment_type = 'acquisition_channel' AND months_since_signup = 12
ORDER BY cohort_month, acquisition_channel;
