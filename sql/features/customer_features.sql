/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
# Spark storage only: marts.scoring_set reads purpose = 'score' (one date of rows), marts.training_set
# purpose = 'train'; each reads its partition's files only
partition_by = ["purpose"]
description = "Churn features: one row per observation spine row (customer, observation date). Every feature uses only what was known before the observation date: events strictly before that day, transactions also loaded before it, tickets resolved before it, subscription and price states as of the day before. Window counts are computed from per-customer daily running totals with ASOF joins, so the cost grows with events plus observations, not with their product."

[incremental]
# Rows are point in time: a row dated t reads only what was known before t. A build recomputes the rows
# from the last processed observation date on (the new as_of, and a new monthly grid date) and first
# checks that no input row dated before that day (as below: the day it became known) was added, removed
# or changed in the columns read. A row reads only its own customer's rows, so a changed earlier row (a
# withdrawn consent removes the customer's past spine rows, an erasure all their rows, a re-signup within
# churn_gap_days merges a period that had ended) restates only that customer's rows.
time_column = "observation_date"
key = "customer_pseudonym"

[slices]
# Every row reads only its own customer's rows, so the table is built in slices of customers, each
# one statement: DuckDB keeps a statement's materialized CTEs to its end, and the whole of a million
# customers (12 million spine rows) spilled 43 GiB under a 4 GB memory limit. Below `rows` spine rows
# it is one statement.
relation = "features.observation_spine"
key = "customer_pseudonym"
rows = 1000000

[[incremental.inputs]]
relation = "features.observation_spine"
time = "observation_date"

[[incremental.inputs]]
relation = "staging.transactions"
time = "greatest(transaction_date, CAST(loaded_at AS DATE))"
columns = ["customer_pseudonym", "transaction_date", "loaded_at", "amount", "is_refund"]

[[incremental.inputs]]
relation = "staging.product_usage"
time = "activity_date"
columns = ["customer_pseudonym", "activity_date", "minutes"]

[[incremental.inputs]]
relation = "staging.web_sessions"
time = "session_date"
columns = ["customer_pseudonym", "session_date"]

[[incremental.inputs]]
relation = "staging.email_events"
time = "event_date"
columns = ["customer_pseudonym", "event_date", "event_type"]

[[incremental.inputs]]
relation = "staging.support_tickets"
time = "CAST(opened_at AS DATE)"
columns = ["ticket_id", "customer_pseudonym", "opened_at"]

[[incremental.inputs]]
relation = "staging.support_tickets"  # a resolution (and its rating) counts from its own day
time = "CAST(resolved_at AS DATE)"
columns = ["ticket_id", "customer_pseudonym", "resolved_at", "hours_to_resolve", "satisfaction"]

[[incremental.inputs]]
relation = "staging.subscriptions"
time = "start_date"
columns = ["customer_pseudonym", "subscription_id", "start_date", "plan_id"]

[[incremental.inputs]]
relation = "staging.subscriptions"  # an end is known from its day on
time = "end_date"
columns = ["subscription_id", "end_date"]

[[incremental.inputs]]
relation = "staging.active_periods"
time = "period_start"
columns = ["customer_pseudonym", "period_start", "period_number"]

[[incremental.inputs]]
relation = "staging.plan_prices"
time = "valid_from"
columns = ["plan_id", "valid_from", "monthly_price", "tier_rank"]

[[incremental.inputs]]
relation = "staging.customers"  # without a sign-up day a customer counts as known from the start
time = "coalesce(signup_date, DATE '0001-01-01')"
columns = ["customer_pseudonym", "birth_month", "gender", "region", "acquisition_channel"]

[columns.customer_pseudonym]
description = "Keyed pseudonym of the customer (HMAC-SHA256)."
privacy = "pseudonym"
checks = ["not_null"]

[columns.observation_date]
description = "Date the customer is observed; every feature describes the customer as known before this day."
privacy = "plain"
checks = ["not_null"]

[columns.purpose]
description = "train: historical observation for learning; score: the current observation to score."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["train", "score"]

[columns.age_band]
description = "Customer's age band on the observation date (from the birth month)."
privacy = "quasi_identifier"
checks = ["not_null"]
accepted_values = ["under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown"]

[columns.gender]
description = "Customer's gender (female, male, other, unknown)."
privacy = "quasi_identifier"
checks = ["not_null"]
accepted_values = ["female", "male", "other", "unknown"]

[columns.region]
description = "Customer's home region."
privacy = "quasi_identifier"
checks = ["not_null"]

[columns.acquisition_channel]
description = "Channel through which the customer was acquired."
privacy = "plain"
checks = ["not_null"]
accepted_values = ["organic", "paid_search", "social", "referral", "partner", "other", "unknown"]

[columns.tenure_days]
description = "Days since the customer first subscribed."
privacy = "plain"
checks = ["not_null"]
range = [1, 36500]

[columns.current_period_days]
description = "Days since the current run of continuous service began (since the last re-signup)."
privacy = "plain"
checks = ["not_null"]
range = [1, 36500]

[columns.previous_active_periods]
description = "Number of earlier subscription periods that ended before the customer came back (re-signups)."
privacy = "plain"
checks = ["not_null"]
range = [0, 1000]

[columns.current_plan]
description = "Plan the customer is on (the latest subscription started before the observation date)."
privacy = "plain"
checks = ["not_null"]

[columns.current_plan_tier]
description = "Rank of the current plan from cheapest (1) upwards."
privacy = "plain"

[columns.monthly_price]
description = "Monthly list price of the customer's current plan."
privacy = "plain"
range = [0, 1000]

[columns.price_change_90d_pct]
description = "Change in the list price of the customer's plan over the last 90 days, in percent (+10 = 10% more expensive); empty when the plan had no price 90 days ago."
privacy = "plain"
range = [-100, 100000]

[columns.plan_changes_365d]
description = "Number of plan changes (upgrades or downgrades) in the last 365 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 1000]

[columns.days_since_last_purchase]
description = "Days since the customer's last purchase; empty when the customer never bought anything."
privacy = "plain"
range = [1, 36500]

[columns.purchases_30d]
description = "Number of purchases in the last 30 days (refunds not counted)."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.purchases_90d]
description = "Number of purchases in the last 90 days (refunds not counted)."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.purchases_180d]
description = "Number of purchases in the last 180 days (refunds not counted)."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.spend_30d]
description = "Money spent in the last 30 days, net of refunds."
privacy = "plain"
checks = ["not_null"]

[columns.spend_90d]
description = "Money spent in the last 90 days, net of refunds."
privacy = "plain"
checks = ["not_null"]

[columns.spend_180d]
description = "Money spent in the last 180 days, net of refunds."
privacy = "plain"
checks = ["not_null"]

[columns.purchases_trend]
description = "Change in purchase frequency: last 30 days against the monthly average of the 150 days before, from -1 (stopped buying) through 0 (unchanged) to +1 (only recent purchases)."
privacy = "plain"
checks = ["not_null"]
range = [-1, 1]

[columns.spend_trend]
description = "Change in spending: last 30 days against the monthly average of the 150 days before, from -1 (stopped spending) through 0 (unchanged) to +1 (only recent spending)."
privacy = "plain"
checks = ["not_null"]
range = [-1, 1]

[columns.active_days_30d]
description = "Days with product use in the last 30 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 30]

[columns.active_days_90d]
description = "Days with product use in the last 90 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 90]

[columns.usage_minutes_30d]
description = "Minutes of product use in the last 30 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 43200]

[columns.usage_minutes_90d]
description = "Minutes of product use in the last 90 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 129600]

[columns.usage_trend]
description = "Change in product use: active days in the last 30 days against the monthly average of the 60 days before, from -1 (stopped using) through 0 (unchanged) to +1 (only recent use)."
privacy = "plain"
checks = ["not_null"]
range = [-1, 1]

[columns.days_since_last_use]
description = "Days since the customer last used the product; empty when never used."
privacy = "plain"
range = [1, 36500]

[columns.tickets_opened_90d]
description = "Support tickets the customer opened in the last 90 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.tickets_unresolved]
description = "Support tickets still open (unresolved) on the observation date."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.mean_hours_to_resolve_90d]
description = "Average hours support took to resolve the customer's tickets resolved in the last 90 days; empty when none."
privacy = "plain"
range = [0, 100000]

[columns.mean_hours_to_resolve_180d]
description = "Average hours support took to resolve the customer's tickets resolved in the last 180 days; empty when none."
privacy = "plain"
range = [0, 100000]

[columns.mean_satisfaction]
description = "Average satisfaction rating (1 = very unhappy, 5 = very happy) the customer gave on resolved support tickets; empty when never rated."
privacy = "plain"
range = [1, 5]

[columns.web_sessions_30d]
description = "Website visits in the last 30 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.web_sessions_trend]
description = "Change in website visits: last 30 days against the monthly average of the 60 days before, from -1 (stopped visiting) through 0 (unchanged) to +1 (only recent visits)."
privacy = "plain"
checks = ["not_null"]
range = [-1, 1]

[columns.emails_sent_90d]
description = "Marketing e-mails sent to the customer in the last 90 days."
privacy = "plain"
checks = ["not_null"]
range = [0, 100000]

[columns.email_open_rate_90d]
description = "Share of marketing e-mails sent in the last 90 days that the customer opened; empty when none was sent."
privacy = "plain"
range = [0, 1]

[columns.email_click_rate_90d]
description = "Share of marketing e-mails sent in the last 90 days in which the customer clicked a link; empty when none was sent."
privacy = "plain"
range = [0, 1]

[columns.days_since_last_activity]
description = "Days since the customer's last sign of life of any kind: purchase, product use, website visit, e-mail open or click, support ticket; empty when none was ever recorded."
privacy = "plain"
range = [1, 36500]

[[audits]]
name = "one_row_per_spine_row"
sql = """
SELECT s.customer_pseudonym FROM features.observation_spine AS s
FULL JOIN this AS f USING (customer_pseudonym, observation_date)
WHERE s.customer_pseudonym IS NULL OR f.customer_pseudonym IS NULL
"""

[[audits]]
name = "windows_nest"
sql = "SELECT customer_pseudonym FROM this WHERE purchases_30d > purchases_90d OR purchases_90d > purchases_180d OR active_days_30d > active_days_90d"
*/
WITH spine AS MATERIALIZED (
    SELECT
        customer_pseudonym,
        observation_date,
        purpose,
        observation_date - 30 AS day_30,
        observation_date - 90 AS day_90,
        observation_date - 180 AS day_180
    FROM features.observation_spine
    WHERE observation_date >= getvariable('incremental_start')
      -- one slice of customers at a time ([slices] above); NULL: no bound
      AND (getvariable('slice_from') IS NULL OR customer_pseudonym >= getvariable('slice_from'))
      AND (getvariable('slice_to') IS NULL OR customer_pseudonym < getvariable('slice_to'))
      -- a restatement: only these customers ([incremental] key above); NULL: every customer
      AND (getvariable('incremental_keys') IS NULL
           OR customer_pseudonym IN (SELECT unnest(getvariable('incremental_keys'))))
),
spine_customers AS MATERIALIZED (
    -- only their events can count: on a day-after increment, the customers of the new observation dates;
    -- an increment reads their purchases from 180 days, their use, visits and e-mail from 90 days before their
    -- first observation date here (see below), a full build every event
    SELECT
        customer_pseudonym,
        min(observation_date) AS first_observed,
        CASE WHEN getvariable('incremental_start') > DATE '0001-01-01' THEN min(observation_date) - 180
             ELSE DATE '0001-01-01' END AS read_from_180,
        CASE WHEN getvariable('incremental_start') > DATE '0001-01-01' THEN min(observation_date) - 90
             ELSE DATE '0001-01-01' END AS read_from_90
    FROM spine
    GROUP BY customer_pseudonym
),
cutoffs AS MATERIALIZED (
    -- five look-up days per spine row: t, t - 30, t - 90, t - 180, t - 365. One ASOF join per source
    -- over these rows is much cheaper than one ASOF join per window.
    SELECT s.customer_pseudonym, s.observation_date, l.lookback, s.observation_date - l.lookback AS cutoff
    FROM spine AS s
    CROSS JOIN (VALUES (0), (30), (90), (180), (365)) AS l(lookback)
),

-- Everything below follows one pattern so that no event is joined to every observation date:
-- events are summed per customer and day, running totals are kept per day, and an ASOF join picks
-- the last day strictly before each cut-off. A window total over [t - n, t) is then
-- running_total(before t) - running_total(before t - n).
-- On an increment the running totals of purchases, use, visits and e-mail start at the customer's first
-- observation here less the source's longest window (read_from_180, read_from_90): a difference of two
-- totals is the same from any start, and a day-after increment (one new date) then reads a few months of
-- events, not years. The older events give only the last dates (of a purchase, use, visit, engagement),
-- and only for customers with none between that start and their first observation (the *_before CTEs,
-- empty on a full build).

-- Transactions. A row is known at t only if it happened AND was loaded before t; late rows (loaded
-- on a later day than they happened) that are not yet loaded at t are subtracted again.
tx AS MATERIALIZED (
    SELECT
        customer_pseudonym,
        transaction_date,
        CAST(loaded_at AS DATE) AS loaded_date,
        CASE WHEN is_refund THEN 0 ELSE 1 END AS purchases,
        CAST(coalesce(amount, 0) AS DECIMAL(18, 2)) AS spend
    FROM staging.transactions
    JOIN spine_customers USING (customer_pseudonym)
    -- visible from then on: a late row of an earlier day adds the same amount to every total
    WHERE greatest(transaction_date, CAST(loaded_at AS DATE)) >= read_from_180
),
tx_before AS (
    SELECT t.customer_pseudonym, max(t.transaction_date) AS last_purchase_date
    FROM staging.transactions AS t
    JOIN (
        SELECT * FROM spine_customers WHERE customer_pseudonym NOT IN (
            SELECT customer_pseudonym FROM tx JOIN spine_customers USING (customer_pseudonym)
            WHERE purchases = 1 AND transaction_date >= read_from_180
              AND greatest(transaction_date, loaded_date) < first_observed)
    ) AS c USING (customer_pseudonym)
    WHERE getvariable('incremental_start') > DATE '0001-01-01'
      AND NOT t.is_refund AND greatest(t.transaction_date, CAST(t.loaded_at AS DATE)) < c.read_from_180
    GROUP BY t.customer_pseudonym
),
tx_daily AS MATERIALIZED (
    SELECT
        customer_pseudonym,
        transaction_date AS day,
        sum(sum(purchases)) OVER running AS cum_purchases,
        sum(sum(spend)) OVER running AS cum_spend
    FROM tx
    GROUP BY customer_pseudonym, transaction_date
    WINDOW running AS (PARTITION BY customer_pseudonym ORDER BY transaction_date ROWS UNBOUNDED PRECEDING)
),
tx_seen AS (
    -- keyed by the day a row became visible: its event day or its load day, whichever is later
    SELECT
        customer_pseudonym,
        greatest(transaction_date, loaded_date) AS day,
        max(max(CASE WHEN purchases = 1 THEN transaction_date END)) OVER (
            PARTITION BY customer_pseudonym ORDER BY greatest(transaction_date, loaded_date) ROWS UNBOUNDED PRECEDING
        ) AS last_purchase_date
    FROM tx
    GROUP BY customer_pseudonym, greatest(transaction_date, loaded_date)
),
tx_not_yet_loaded AS (
    SELECT
        s.customer_pseudonym,
        s.observation_date,
        sum(l.purchases) FILTER (WHERE l.transaction_date >= s.day_30) AS purchases_30,
        sum(l.purchases) FILTER (WHERE l.transaction_date >= s.day_90) AS purchases_90,
        sum(l.purchases) FILTER (WHERE l.transaction_date >= s.day_180) AS purchases_180,
        sum(l.spend) FILTER (WHERE l.transaction_date >= s.day_30) AS spend_30,
        sum(l.spend) FILTER (WHERE l.transaction_date >= s.day_90) AS spend_90,
        sum(l.spend) FILTER (WHERE l.transaction_date >= s.day_180) AS spend_180
    FROM spine AS s
    JOIN (SELECT * FROM tx WHERE loaded_date > transaction_date) AS l
      ON l.customer_pseudonym = s.customer_pseudonym
     AND l.transaction_date < s.observation_date
     AND l.loaded_date >= s.observation_date
    GROUP BY s.customer_pseudonym, s.observation_date
),
tx_at AS (
    SELECT
        c.customer_pseudonym,
        c.observation_date,
        max(d.cum_purchases) FILTER (WHERE c.lookback = 0) AS purchases_0,
        max(d.cum_purchases) FILTER (WHERE c.lookback = 30) AS purchases_30,
        max(d.cum_purchases) FILTER (WHERE c.lookback = 90) AS purchases_90,
        max(d.cum_purchases) FILTER (WHERE c.lookback = 180) AS purchases_180,
        max(d.cum_spend) FILTER (WHERE c.lookback = 0) AS spend_0,
        max(d.cum_spend) FILTER (WHERE c.lookback = 30) AS spend_30,
        max(d.cum_spend) FILTER (WHERE c.lookback = 90) AS spend_90,
        max(d.cum_spend) FILTER (WHERE c.lookback = 180) AS spend_180
    FROM (SELECT * FROM cutoffs WHERE lookback IN (0, 30, 90, 180)) AS c
    ASOF LEFT JOIN tx_daily AS d
      ON d.customer_pseudonym = c.customer_pseudonym AND c.cutoff > d.day
    GROUP BY c.customer_pseudonym, c.observation_date
),
tx_windows AS (
    SELECT
        s.customer_pseudonym,
        s.observation_date,
        coalesce(a.purchases_0, 0) - coalesce(a.purchases_30, 0) - coalesce(u.purchases_30, 0) AS purchases_30d,
        coalesce(a.purchases_0, 0) - coalesce(a.purchases_90, 0) - coalesce(u.purchases_90, 0) AS purchases_90d,
        coalesce(a.purchases_0, 0) - coalesce(a.purchases_180, 0) - coalesce(u.purchases_180, 0) AS purchases_180d,
        coalesce(a.spend_0, 0) - coalesce(a.spend_30, 0) - coalesce(u.spend_30, 0) AS spend_30d,
        coalesce(a.spend_0, 0) - coalesce(a.spend_90, 0) - coalesce(u.spend_90, 0) AS spend_90d,
        coalesce(a.spend_0, 0) - coalesce(a.spend_180, 0) - coalesce(u.spend_180, 0) AS spend_180d,
        greatest(seen.last_purchase_date, b.last_purchase_date) AS last_purchase_date
    FROM spine AS s
    LEFT JOIN tx_before AS b ON b.customer_pseudonym = s.customer_pseudonym
    LEFT JOIN tx_at AS a
      ON a.customer_pseudonym = s.customer_pseudonym AND a.observation_date = s.observation_date
    ASOF LEFT JOIN tx_seen AS seen
      ON seen.customer_pseudonym = s.customer_pseudonym AND s.observation_date > seen.day
    LEFT JOIN tx_not_yet_loaded AS u
      ON u.customer_pseudonym = s.customer_pseudonym AND u.observation_date = s.observation_date
),

-- Product usage: one row per active day already.
usage_daily AS MATERIALIZED (
    SELECT
        customer_pseudonym,
        activity_date AS day,
        row_number() OVER running AS cum_active_days,
        sum(CAST(coalesce(minutes, 0) AS DECIMAL(18, 2))) OVER running AS cum_minutes
    FROM staging.product_usage
    JOIN spine_customers USING (customer_pseudonym)
    WHERE activity_date >= read_from_90
    WINDOW running AS (PARTITION BY customer_pseudonym ORDER BY activity_date ROWS UNBOUNDED PRECEDING)
),
usage_before AS (
    SELECT u.customer_pseudonym, max(u.activity_date) AS last_use_date
    FROM staging.product_usage AS u
    JOIN (
        SELECT * FROM spine_customers WHERE customer_pseudonym NOT IN (
            SELECT customer_pseudonym FROM usage_daily JOIN spine_customers USING (customer_pseudonym)
            WHERE day < first_observed)
    ) AS c USING (customer_pseudonym)
    WHERE getvariable('incremental_start') > DATE '0001-01-01' AND u.activity_date < c.read_from_90
    GROUP BY u.customer_pseudonym
),
usage_windows AS (
    SELECT
        c.customer_pseudonym,
        c.observation_date,
        coalesce(max(d.cum_active_days) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_active_days) FILTER (WHERE c.lookback = 30), 0) AS active_days_30d,
        coalesce(max(d.cum_active_days) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_active_days) FILTER (WHERE c.lookback = 90), 0) AS active_days_90d,
        coalesce(max(d.cum_minutes) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_minutes) FILTER (WHERE c.lookback = 30), 0) AS usage_minutes_30d,
        coalesce(max(d.cum_minutes) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_minutes) FILTER (WHERE c.lookback = 90), 0) AS usage_minutes_90d,
        greatest(max(d.day) FILTER (WHERE c.lookback = 0), max(b.last_use_date)) AS last_use_date
    FROM (SELECT * FROM cutoffs WHERE lookback IN (0, 30, 90)) AS c
    ASOF LEFT JOIN usage_daily AS d
      ON d.customer_pseudonym = c.customer_pseudonym AND c.cutoff > d.day
    LEFT JOIN usage_before AS b ON b.customer_pseudonym = c.customer_pseudonym
    GROUP BY c.customer_pseudonym, c.observation_date
),

-- Web sessions.
web_daily AS MATERIALIZED (
    SELECT
        customer_pseudonym,
        session_date AS day,
        sum(count(*)) OVER (PARTITION BY customer_pseudonym ORDER BY session_date ROWS UNBOUNDED PRECEDING) AS cum_sessions
    FROM staging.web_sessions
    JOIN spine_customers USING (customer_pseudonym)
    WHERE session_date >= read_from_90
    GROUP BY customer_pseudonym, session_date
),
web_before AS (
    SELECT w.customer_pseudonym, max(w.session_date) AS last_web_date
    FROM staging.web_sessions AS w
    JOIN (
        SELECT * FROM spine_customers WHERE customer_pseudonym NOT IN (
            SELECT customer_pseudonym FROM web_daily JOIN spine_customers USING (customer_pseudonym)
            WHERE day < first_observed)
    ) AS c USING (customer_pseudonym)
    WHERE getvariable('incremental_start') > DATE '0001-01-01' AND w.session_date < c.read_from_90
    GROUP BY w.customer_pseudonym
),
web_windows AS (
    SELECT
        c.customer_pseudonym,
        c.observation_date,
        coalesce(max(d.cum_sessions) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_sessions) FILTER (WHERE c.lookback = 30), 0) AS web_sessions_30d,
        coalesce(max(d.cum_sessions) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_sessions) FILTER (WHERE c.lookback = 90), 0) AS web_sessions_90d,
        greatest(max(d.day) FILTER (WHERE c.lookback = 0), max(b.last_web_date)) AS last_web_date
    FROM (SELECT * FROM cutoffs WHERE lookback IN (0, 30, 90)) AS c
    ASOF LEFT JOIN web_daily AS d
      ON d.customer_pseudonym = c.customer_pseudonym AND c.cutoff > d.day
    LEFT JOIN web_before AS b ON b.customer_pseudonym = c.customer_pseudonym
    GROUP BY c.customer_pseudonym, c.observation_date
),

-- Marketing e-mail (one row per customer, campaign and event type in staging).
email_daily AS MATERIALIZED (
    SELECT
        customer_pseudonym,
        event_date AS day,
        sum(count(*) FILTER (WHERE event_type = 'sent')) OVER running AS cum_sent,
        sum(count(*) FILTER (WHERE event_type = 'opened')) OVER running AS cum_opened,
        sum(count(*) FILTER (WHERE event_type = 'clicked')) OVER running AS cum_clicked,
        max(max(CASE WHEN event_type IN ('opened', 'clicked') THEN event_date END)) OVER running AS last_engaged_date
    FROM staging.email_events
    JOIN spine_customers USING (customer_pseudonym)
    WHERE event_date >= read_from_90
    GROUP BY customer_pseudonym, event_date
    WINDOW running AS (PARTITION BY customer_pseudonym ORDER BY event_date ROWS UNBOUNDED PRECEDING)
),
email_before AS (
    SELECT e.customer_pseudonym, max(e.event_date) AS last_engaged_date
    FROM staging.email_events AS e
    JOIN (
        SELECT * FROM spine_customers WHERE customer_pseudonym NOT IN (
            SELECT customer_pseudonym FROM email_daily JOIN spine_customers USING (customer_pseudonym)
            WHERE last_engaged_date < first_observed)
    ) AS c USING (customer_pseudonym)
    WHERE getvariable('incremental_start') > DATE '0001-01-01'
      AND e.event_type IN ('opened', 'clicked') AND e.event_date < c.read_from_90
    GROUP BY e.customer_pseudonym
),
email_windows AS (
    SELECT
        c.customer_pseudonym,
        c.observation_date,
        coalesce(max(d.cum_sent) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_sent) FILTER (WHERE c.lookback = 90), 0) AS emails_sent_90d,
        coalesce(max(d.cum_opened) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_opened) FILTER (WHERE c.lookback = 90), 0) AS emails_opened_90d,
        coalesce(max(d.cum_clicked) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_clicked) FILTER (WHERE c.lookback = 90), 0) AS emails_clicked_90d,
        greatest(max(d.last_engaged_date) FILTER (WHERE c.lookback = 0), max(b.last_engaged_date))
            AS last_engaged_date
    FROM (SELECT * FROM cutoffs WHERE lookback IN (0, 90)) AS c
    ASOF LEFT JOIN email_daily AS d
      ON d.customer_pseudonym = c.customer_pseudonym AND c.cutoff > d.day
    LEFT JOIN email_before AS b ON b.customer_pseudonym = c.customer_pseudonym
    GROUP BY c.customer_pseudonym, c.observation_date
),

-- Support tickets: openings counted on the opening day; resolutions, their duration and the
-- satisfaction rating (given at resolution) counted on the resolution day.
tickets_opened_daily AS MATERIALIZED (
    SELECT
        customer_pseudonym,
        CAST(opened_at AS DATE) AS day,
        sum(count(*)) OVER (PARTITION BY customer_pseudonym ORDER BY CAST(opened_at AS DATE) ROWS UNBOUNDED PRECEDING) AS cum_opened
    FROM staging.support_tickets
    WHERE customer_pseudonym IN (SELECT customer_pseudonym FROM spine_customers)
    GROUP BY customer_pseudonym, CAST(opened_at AS DATE)
),
tickets_resolved_daily AS MATERIALIZED (
    SELECT
        customer_pseudonym,
        CAST(resolved_at AS DATE) AS day,
        sum(count(*)) OVER running AS cum_resolved,
        sum(sum(CAST(hours_to_resolve AS DECIMAL(18, 3)))) OVER running AS cum_hours,
        sum(sum(satisfaction)) OVER running AS cum_satisfaction,
        sum(count(satisfaction)) OVER running AS cum_rated
    FROM staging.support_tickets
    WHERE resolved_at IS NOT NULL AND customer_pseudonym IN (SELECT customer_pseudonym FROM spine_customers)
    GROUP BY customer_pseudonym, CAST(resolved_at AS DATE)
    WINDOW running AS (PARTITION BY customer_pseudonym ORDER BY CAST(resolved_at AS DATE) ROWS UNBOUNDED PRECEDING)
),
tickets_opened_at AS (
    SELECT
        c.customer_pseudonym,
        c.observation_date,
        max(d.cum_opened) FILTER (WHERE c.lookback = 0) AS opened_0,
        max(d.cum_opened) FILTER (WHERE c.lookback = 90) AS opened_90,
        max(d.day) FILTER (WHERE c.lookback = 0) AS last_ticket_date
    FROM (SELECT * FROM cutoffs WHERE lookback IN (0, 90)) AS c
    ASOF LEFT JOIN tickets_opened_daily AS d
      ON d.customer_pseudonym = c.customer_pseudonym AND c.cutoff > d.day
    GROUP BY c.customer_pseudonym, c.observation_date
),
tickets_resolved_at AS (
    SELECT
        c.customer_pseudonym,
        c.observation_date,
        max(d.cum_resolved) FILTER (WHERE c.lookback = 0) AS resolved_0,
        max(d.cum_resolved) FILTER (WHERE c.lookback = 90) AS resolved_90,
        max(d.cum_resolved) FILTER (WHERE c.lookback = 180) AS resolved_180,
        max(d.cum_hours) FILTER (WHERE c.lookback = 0) AS hours_0,
        max(d.cum_hours) FILTER (WHERE c.lookback = 90) AS hours_90,
        max(d.cum_hours) FILTER (WHERE c.lookback = 180) AS hours_180,
        max(d.cum_satisfaction) FILTER (WHERE c.lookback = 0) AS satisfaction_total,
        max(d.cum_rated) FILTER (WHERE c.lookback = 0) AS rated_total
    FROM (SELECT * FROM cutoffs WHERE lookback IN (0, 90, 180)) AS c
    ASOF LEFT JOIN tickets_resolved_daily AS d
      ON d.customer_pseudonym = c.customer_pseudonym AND c.cutoff > d.day
    GROUP BY c.customer_pseudonym, c.observation_date
),
ticket_windows AS (
    SELECT
        s.customer_pseudonym,
        s.observation_date,
        coalesce(o.opened_0, 0) - coalesce(o.opened_90, 0) AS tickets_opened_90d,
        coalesce(o.opened_0, 0) - coalesce(r.resolved_0, 0) AS tickets_unresolved,
        coalesce(r.resolved_0, 0) - coalesce(r.resolved_90, 0) AS resolved_90,
        coalesce(r.resolved_0, 0) - coalesce(r.resolved_180, 0) AS resolved_180,
        coalesce(r.hours_0, 0) - coalesce(r.hours_90, 0) AS hours_90,
        coalesce(r.hours_0, 0) - coalesce(r.hours_180, 0) AS hours_180,
        r.satisfaction_total,
        r.rated_total,
        o.last_ticket_date
    FROM spine AS s
    LEFT JOIN tickets_opened_at AS o
      ON o.customer_pseudonym = s.customer_pseudonym AND o.observation_date = s.observation_date
    LEFT JOIN tickets_resolved_at AS r
      ON r.customer_pseudonym = s.customer_pseudonym AND r.observation_date = s.observation_date
),

-- Subscriptions: the plan of the latest subscription started before t, and plan changes (a new
-- subscription with another plan starting within churn_gap_days of the previous one's end; the
-- previous end is always before the new start, so it is known at t).
subscription_steps AS (
    SELECT
        customer_pseudonym,
        subscription_id,
        start_date,
        plan_id,
        CASE
            WHEN lag(plan_id) OVER ordered IS NOT NULL
             AND plan_id IS DISTINCT FROM lag(plan_id) OVER ordered
             AND lag(end_date) OVER ordered <= start_date
             AND start_date <= lag(end_date) OVER ordered + CAST(getvariable('churn_gap_days') AS INTEGER)
            THEN 1 ELSE 0
        END AS is_plan_change
    FROM staging.subscriptions
    WHERE customer_pseudonym IN (SELECT customer_pseudonym FROM spine_customers)
    WINDOW ordered AS (PARTITION BY customer_pseudonym ORDER BY start_date, subscription_id)
),
subscription_daily AS MATERIALIZED (
    SELECT
        customer_pseudonym,
        start_date AS day,
        arg_max(plan_id, subscription_id) AS plan_id,
        sum(sum(is_plan_change)) OVER (PARTITION BY customer_pseudonym ORDER BY start_date ROWS UNBOUNDED PRECEDING) AS cum_plan_changes
    FROM subscription_steps
    GROUP BY customer_pseudonym, start_date
),
subscription_at AS (
    SELECT
        c.customer_pseudonym,
        c.observation_date,
        max(d.plan_id) FILTER (WHERE c.lookback = 0) AS current_plan,
        coalesce(max(d.cum_plan_changes) FILTER (WHERE c.lookback = 0), 0)
            - coalesce(max(d.cum_plan_changes) FILTER (WHERE c.lookback = 365), 0) AS plan_changes_365d
    FROM (SELECT * FROM cutoffs WHERE lookback IN (0, 365)) AS c
    ASOF LEFT JOIN subscription_daily AS d
      ON d.customer_pseudonym = c.customer_pseudonym AND c.cutoff > d.day
    GROUP BY c.customer_pseudonym, c.observation_date
),
plan_state AS (
    SELECT
        s.customer_pseudonym,
        s.observation_date,
        s.day_90,
        a.current_plan,
        a.plan_changes_365d,
        ap.period_number,
        ap.period_start
    FROM spine AS s
    LEFT JOIN subscription_at AS a
      ON a.customer_pseudonym = s.customer_pseudonym AND a.observation_date = s.observation_date
    ASOF LEFT JOIN staging.active_periods AS ap
      ON ap.customer_pseudonym = s.customer_pseudonym AND s.observation_date > ap.period_start
),
price_state AS (
    -- price in force the day before t, and the day before t - 90
    SELECT
        ps.*,
        pr0.monthly_price,
        pr0.tier_rank AS current_plan_tier,
        pr90.monthly_price AS monthly_price_90d_ago
    FROM plan_state AS ps
    ASOF LEFT JOIN staging.plan_prices AS pr0
      ON pr0.plan_id = ps.current_plan AND ps.observation_date > pr0.valid_from
    ASOF LEFT JOIN staging.plan_prices AS pr90
      ON pr90.plan_id = ps.current_plan AND ps.day_90 > pr90.valid_from
),
first_start AS (
    SELECT customer_pseudonym, min(period_start) AS first_period_start
    FROM staging.active_periods
    GROUP BY customer_pseudonym
),

assembled AS (
    SELECT
        s.customer_pseudonym,
        s.observation_date,
        s.purpose,
        floor(date_diff('month', c.birth_month, s.observation_date) / 12) AS age_years,
        c.gender,
        c.region,
        c.acquisition_channel,
        f.first_period_start,
        ps.period_start,
        ps.period_number,
        ps.current_plan,
        ps.current_plan_tier,
        ps.monthly_price,
        ps.monthly_price_90d_ago,
        ps.plan_changes_365d,
        tw.* EXCLUDE (customer_pseudonym, observation_date),
        uw.* EXCLUDE (customer_pseudonym, observation_date),
        ww.* EXCLUDE (customer_pseudonym, observation_date),
        ew.* EXCLUDE (customer_pseudonym, observation_date),
        kw.* EXCLUDE (customer_pseudonym, observation_date),
        c.birth_month
    FROM spine AS s
    LEFT JOIN staging.customers AS c USING (customer_pseudonym)
    LEFT JOIN first_start AS f USING (customer_pseudonym)
    LEFT JOIN price_state AS ps USING (customer_pseudonym, observation_date)
    LEFT JOIN tx_windows AS tw USING (customer_pseudonym, observation_date)
    LEFT JOIN usage_windows AS uw USING (customer_pseudonym, observation_date)
    LEFT JOIN web_windows AS ww USING (customer_pseudonym, observation_date)
    LEFT JOIN email_windows AS ew USING (customer_pseudonym, observation_date)
    LEFT JOIN ticket_windows AS kw USING (customer_pseudonym, observation_date)
)
SELECT
    customer_pseudonym,
    observation_date,
    purpose,
    -- who the customer is
    CASE
        WHEN birth_month IS NULL THEN 'unknown'
        WHEN age_years < 18 THEN 'under 18'
        WHEN age_years < 25 THEN '18-24'
        WHEN age_years < 35 THEN '25-34'
        WHEN age_years < 45 THEN '35-44'
        WHEN age_years < 55 THEN '45-54'
        WHEN age_years < 65 THEN '55-64'
        ELSE '65+'
    END AS age_band,
    coalesce(gender, 'unknown') AS gender,
    coalesce(region, 'unknown') AS region,
    coalesce(acquisition_channel, 'unknown') AS acquisition_channel,
    -- subscription
    CAST(observation_date - first_period_start AS INTEGER) AS tenure_days,
    CAST(observation_date - period_start AS INTEGER) AS current_period_days,
    CAST(coalesce(period_number, 1) - 1 AS INTEGER) AS previous_active_periods,
    coalesce(current_plan, 'unknown') AS current_plan,
    CAST(current_plan_tier AS INTEGER) AS current_plan_tier,
    CAST(monthly_price AS DOUBLE) AS monthly_price,
    CASE
        WHEN monthly_price_90d_ago > 0
            THEN round(100.0 * (monthly_price - monthly_price_90d_ago) / monthly_price_90d_ago, 4)
    END AS price_change_90d_pct,
    CAST(plan_changes_365d AS INTEGER) AS plan_changes_365d,
    -- purchases
    CAST(observation_date - last_purchase_date AS INTEGER) AS days_since_last_purchase,
    CAST(purchases_30d AS INTEGER) AS purchases_30d,
    CAST(purchases_90d AS INTEGER) AS purchases_90d,
    CAST(purchases_180d AS INTEGER) AS purchases_180d,
    CAST(spend_30d AS DOUBLE) AS spend_30d,
    CAST(spend_90d AS DOUBLE) AS spend_90d,
    CAST(spend_180d AS DOUBLE) AS spend_180d,
    -- trend: (last 30 days - monthly average of the 150 days before) / (sum of both), in [-1, 1]
    CASE
        WHEN purchases_30d + (purchases_180d - purchases_30d) / 5.0 > 0
            THEN CAST(
                (purchases_30d - (purchases_180d - purchases_30d) / 5.0)
                / (purchases_30d + (purchases_180d - purchases_30d) / 5.0) AS DOUBLE)
        ELSE 0.0
    END AS purchases_trend,
    CASE
        WHEN greatest(spend_30d, 0) + greatest(spend_180d - spend_30d, 0) / 5.0 > 0
            THEN CAST(
                (greatest(spend_30d, 0) - greatest(spend_180d - spend_30d, 0) / 5.0)
                / (greatest(spend_30d, 0) + greatest(spend_180d - spend_30d, 0) / 5.0) AS DOUBLE)
        ELSE 0.0
    END AS spend_trend,
    -- product use
    CAST(active_days_30d AS INTEGER) AS active_days_30d,
    CAST(active_days_90d AS INTEGER) AS active_days_90d,
    CAST(usage_minutes_30d AS DOUBLE) AS usage_minutes_30d,
    CAST(usage_minutes_90d AS DOUBLE) AS usage_minutes_90d,
    CASE
        WHEN active_days_30d + (active_days_90d - active_days_30d) / 2.0 > 0
            THEN CAST(
                (active_days_30d - (active_days_90d - active_days_30d) / 2.0)
                / (active_days_30d + (active_days_90d - active_days_30d) / 2.0) AS DOUBLE)
        ELSE 0.0
    END AS usage_trend,
    CAST(observation_date - last_use_date AS INTEGER) AS days_since_last_use,
    -- support
    CAST(tickets_opened_90d AS INTEGER) AS tickets_opened_90d,
    CAST(tickets_unresolved AS INTEGER) AS tickets_unresolved,
    CASE WHEN resolved_90 > 0 THEN round(CAST(hours_90 AS DOUBLE) / resolved_90, 3) END AS mean_hours_to_resolve_90d,
    CASE WHEN resolved_180 > 0 THEN round(CAST(hours_180 AS DOUBLE) / resolved_180, 3) END AS mean_hours_to_resolve_180d,
    CASE WHEN rated_total > 0 THEN round(CAST(satisfaction_total AS DOUBLE) / rated_total, 4) END AS mean_satisfaction,
    -- web and e-mail
    CAST(web_sessions_30d AS INTEGER) AS web_sessions_30d,
    CASE
        WHEN web_sessions_30d + (web_sessions_90d - web_sessions_30d) / 2.0 > 0
            THEN CAST(
                (web_sessions_30d - (web_sessions_90d - web_sessions_30d) / 2.0)
                / (web_sessions_30d + (web_sessions_90d - web_sessions_30d) / 2.0) AS DOUBLE)
        ELSE 0.0
    END AS web_sessions_trend,
    CAST(emails_sent_90d AS INTEGER) AS emails_sent_90d,
    CASE WHEN emails_sent_90d > 0 THEN least(CAST(emails_opened_90d AS DOUBLE) / emails_sent_90d, 1.0) END AS email_open_rate_90d,
    CASE WHEN emails_sent_90d > 0 THEN least(CAST(emails_clicked_90d AS DOUBLE) / emails_sent_90d, 1.0) END AS email_click_rate_90d,
    -- any activity
    CAST(
        observation_date - greatest(last_purchase_date, last_use_date, last_web_date, last_engaged_date, last_ticket_date)
        AS INTEGER
    ) AS days_since_last_activity
FROM assembled
