-- Twelve-month retention of each signup cohort, by acquisition channel.
SELECT cohort_month, segment AS acquisition_channel, cohort_customers, retention_rate
FROM cohort_retention
WHERE segment_type = 'acquisition_channel' AND months_since_signup = 12
ORDER BY cohort_month, acquisition_channel;
