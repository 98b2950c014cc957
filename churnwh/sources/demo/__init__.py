"""A realistic demo warehouse: synthetic customers whose churn follows a known mechanism.

`simulate` generates every `raw.*` table of the shared spec plus the ground truth, `write_raw`
loads the tables into a DuckDB schema, `write_truth` writes the truth to a Parquet file that never
enters a warehouse; `write_demo` (what `churnwh demo` runs) does both as it simulates, one block of
customers at a time (see "Blocks of customers"). Everything is vectorized numpy; the Python loops run
over blocks and months.
`simulate` also returns the simulator's hidden state (``DemoData.continuation``), which
``advance`` continues: `churnwh demo-advance --days N` moves the business on by N days and
`churnwh demo-campaign` plays a planned campaign out through the hazard (see "Time moves on").

Churn mechanism (monthly hazard)
--------------------------------
Customers carry a hidden state that drives what they do; the churn hazard reads only what they
did and experienced as the raw tables recorded it before the month starts, as a real customer's
decision follows their own use of the product, their support experience and their bill. The
features of ``sql/features/customer_features.sql`` see the same record, so a model can learn the
hazard from them.

Behaviour (hidden state, updated at every month start, after that month's cancellations):

* engagement ``e``: a mean-reverting random walk around a personal baseline that slowly drifts
  down with tenure (novelty wears off). Product use is a Bernoulli draw per day with probability
  ``sigmoid(e - 1.1 - 1.6 d)``; web visits are Poisson with ``exp(0.55 e + 0.35 - d)`` a month;
  minutes per session, purchases and e-mail opens also rise with ``e``.
* disengaging ``d``: a state entered with probability 2% a month (5% with an open ticket) and left
  with probability 15%. It shows at once in that month's record: product use falls to about a
  fifth, web visits to about a third, fewer e-mails are opened, more tickets are raised.
* e-mail affinity: a fixed per-customer trait that drives opens and clicks of campaigns.
* support tickets: about 3.5% of customers a month open one (more with a price rise or while
  disengaging); most close within hours or days, 12% stall for 3 weeks to 5 months and are rated
  poorly if at all. Ratings (1-5, often missing) fall with the time to resolve.

For every customer active (inside an active period) at the start of a month ``ms``, the
probability of cancelling during the month is ``p_cancel = sigmoid(z)`` with, from the record
before ``ms`` (windows and definitions as in the features, named in brackets):

    z = 0.05
        + plan effect (basic +0.5, standard 0, premium -0.25, family -0.7)     [current_plan]
        + channel effect (paid_search +0.5, social +0.3, partner +0.05, organic -0.15,
          referral -0.5)                                                       [acquisition_channel]
        - 0.45 * log(1 + months since the current active period began)       [current_period_days]
        - 1.4 * log(1 + active days in the last 90 days / 3)                   [active_days_90d]
        - 0.4 * log(1 + web visits in the last 30 days)                        [web_sessions_30d]
        + 0.8 * [fewer than 4 active days in the last 90 days]                 [active_days_90d]
          (engagement level: product use and web visits; near-dormant customers leave most)
        + 1.4 * max(0, -usage trend) + 0.4 * max(0, -web trend)    [usage_trend, web_sessions_trend]
          (falling engagement: the last 30 days against the monthly average of the 60 days
          before, from -1 (stopped) to +1; only a fall raises risk)
        + min(tickets still unresolved, 2) * (0.5 + 1.0 * [period under 6 months])
          (unresolved tickets hurt new customers most)                       [tickets_unresolved]
        + 0.8 * [average rating of the resolved, rated tickets below 2.5]    [mean_satisfaction]
        + [the list price of the plan rose over the last 90 days]          [price_change_90d_pct]
          * (0.25 + 1.5 * [fewer than 4 active days in the last 30 days])   [active_days_30d]
          (a price increase hurts low-usage customers most)
        - 0.55 * [clicked a campaign e-mail in the last 3 months]          [email_click_rate_90d]
        - 0.25 * [opened a campaign e-mail in the last 3 months]            [email_open_rate_90d]

The hidden state matters only through the record it leaves: the hazard of the month that starts
on an observation date is a function of that date's features (``tests/test_demo.py`` recomputes it
from the raw tables), and later months depend on how the state goes on to shape the record, which
the data before the date estimate well but not exactly. Activity in the 90 days before the history
start is simulated for customers who joined earlier (so the first hazards read a normal record)
but is not written to the raw tables.

A cancellation is followed by a re-signup within 3-29 days with probability 0.2 (the active
period continues), by a re-signup after 45-600 days with probability 0.1 (a new active period),
and otherwise by nothing. The truth hazard is therefore ``churn_hazard = 0.8 * p_cancel``: the
probability that the active period ends during the month. Customers become at risk in the
month after they (re)join. Plan changes (1.2% a month) end one subscription and start the next
on the same day and are not churn.

Messiness planted on purpose: inconsistent casing and whitespace in categorical text, NULLs
(birth dates, genders, channels, amounts, minutes, satisfaction), outliers (huge amounts and
minutes, a few negative refunds), exact duplicate rows (transactions, product usage, e-mail
events), and late-arriving transactions (loaded_at days after transaction_ts). There are no
orphan rows: every customer_id in an event table exists in raw.customers.

Time moves on
-------------
``advance.advance`` continues the same monthly loop from the saved state (``save_continuation``;
``demo_state/`` beside the truth file, never in a warehouse: it holds the hidden variables): the same
customers go on, new customers arrive at the history's signup rate, consent changes and list-price
rises go on. It simulates whole months and releases the rows dated up to the new end, keeping the
rest of the month for the next advance; released rows never change, except an open subscription's
``end_date``/``cancel_reason`` and an open ticket's ``resolved_at``, filled in when they happen. The truth
file gains the new months; ``_churnwh.meta`` 'demo_end' holds the data end, and a demo project's
default ``as_of`` is the day after it. Same seed and same advances and campaigns give identical
tables (one advance of 65 days equals advances of 45 and 20); an advance is not the draw a direct
simulation to the later end would make (which customers join during the history depends on
``demo.end``), but the hazard of every advanced month is the documented function of the raw record.

Blocks of customers
-------------------
Customers never interact, so they are simulated in blocks of ``BLOCK_CUSTOMERS`` = 100,000 (customers
1-100,000, 100,001-200,000, ...), every block from its own random streams spawned from the seed
(``blocks.block_streams``; block 0 uses the seed's own streams). A block's rows depend only on the seed,
the history window and its place, never on how many customers follow it or on how it is written, and a
demo of at most 100,000 customers is one block: the same tables, truth and state as before blocks
existed. A larger demo is a different draw from the one a single block of all customers would have
made (the same distributions: ``tests/test_demo_stream.py`` compares one block with ten). Ids number on
from block to block, so a table's rows come block by block: transaction, session and e-mail event ids
follow time within a block, not across blocks. `write_demo` writes each block into the raw tables
(one transaction for all) and the truth file as it comes, so memory holds one block (about 1.7 GiB)
plus the continuation state (about 400 bytes a customer); the advance continues every customer with
block 0's streams.

Campaigns: who can be saved
---------------------------
A campaign registered with ``advance.register_campaign`` (what `churnwh demo-campaign` does) changes
its treated members' monthly hazard inside its window by a relative effect ``tau`` of each member's
state at the month start: the hazard of a month is ``p x (1 - tau x w)``, ``w`` the share of the month
inside the window (a cancellation drawn on a day inside it is prevented with probability ``tau``; a
negative ``tau`` adds cancellations on days inside it), and the truth records that hazard. ``--effect E``
sets the strength (0: no effect for anyone). With ``--effect-model uniform`` ``tau = E`` for everyone; the
default ``heterogeneous`` model follows what field experiments found (the customers at the highest risk
are not the ones an offer changes), from the record before the month start and the hidden state,
first match wins (``uplift.relative_effect``):

    tau = 0            disengaging (hidden d), stopped using the product (fewer than 8 active days
                       in the last 90 days) or a support ticket still unresolved: they have decided, no
                       longer need the product, or leave over a problem an offer does not fix
                       ("unsaveable"; most of the riskiest customers)
    tau = -E           current active period 24 months or more and e-mail affinity below -1.3: a
                       contact reminds a customer who pays without thinking to reconsider ("annoyed",
                       about 6% of the at-risk customers, mostly low-risk)
    tau = 1 - (1-E)^4  a reason to leave an offer addresses: basic plan or a price rise while using
                       the product on fewer than 4 of the last 30 days (price-sensitive), resolved
                       tickets rated below 2.5 on average (poor support), usage trend -0.5 or below
                       (falling use), current active period under 6 months (settling in) ("strong",
                       medium risk, about 30% of the at-risk customers)
    tau = E / 3        everyone else ("baseline": no particular reason to leave, little to change)

The true effect stays outside the warehouse like the churn truth: ``uplift_truth.parquet`` beside the
truth file (rewritten by every `churnwh demo-campaign` and `churnwh demo-advance`) holds per campaign
member, treated or control, both potential outcomes from the same month-start states, the probability
that churn is counted by the window end if contacted and if not, and their difference ``uplift`` (churn
prevented by contacting; see ``uplift`` for the precise definition). ``advance.planted_effect``, the
churn-rate gap (control - treated) `churnwh demo-campaign` prints and `churnwh pilot-report` estimates, is
the members' mean ``uplift``; ``expected_saved(read_uplift_truth(path, campaign), customers)`` scores a
targeting rule applied to the campaign's members: the customers it would contact, saved in expectation.
A window that starts inside a month already simulated (released or buffered) takes effect from the first
day not simulated yet.

The oracle
----------
``churn_hazard`` in the truth file is the hazard of the month it names, computed from the record
before that month; the training label looks 14-104 days ahead, so it also depends on the record
of the months after the observation date, and an "oracle" built from realized future hazards would
see the future. ``churn_oracle(customers, seed, observation_date)`` gives the honest upper bound instead:
the true probability of the training label (``marts.training_set``'s definition: the active period
ends in ``[t + lead, t + lead + window)``, given it did not end in ``[t, t + lead)``) given each
customer's complete state at the observation date ``t``, hidden variables included, computed by
continuing this simulator's own transition model from that state many times (Rao-Blackwellized
Monte Carlo, see its docstring). A model sees only the data before ``t``: the hazard of the
first month exactly, the hidden engagement and disengaging state (which shape the later months'
record) through daily use, web visits, minutes, purchases and e-mail opens, so its ROC-AUC is
below the oracle's by how much of that state the data hide.

Modules: ``generate`` (``simulate``, ``simulate_blocks``) runs, for every block of ``blocks``, ``people``
(attributes, identities, consent, plans and prices) and ``simulation`` (the monthly hazard and behaviour),
then ``tables`` turns the events into the raw tables (with ``arrow``'s builders) and writes them; ``stream``
writes the blocks as they come (``write_demo``); ``oracle`` continues the simulation from a date's full state;
``advance`` continues the simulation in time; ``uplift`` holds the campaign effect per customer and reads its
truth; ``vocabulary`` holds what they share.
"""

from churnwh.sources.demo.advance import save as save_continuation
from churnwh.sources.demo.blocks import BLOCK_CUSTOMERS
from churnwh.sources.demo.generate import simulate
from churnwh.sources.demo.oracle import churn_oracle
from churnwh.sources.demo.simulation import HAZARD_INTERCEPT, TRUE_DRIVERS
from churnwh.sources.demo.stream import write_demo
from churnwh.sources.demo.tables import TABLE_NAMES, DemoData, write_raw, write_truth
from churnwh.sources.demo.uplift import EFFECT_MODELS, expected_saved, read_uplift_truth
from churnwh.sources.demo.vocabulary import CHANNEL_EFFECT, CHANNELS, PLAN_EFFECT, PLAN_IDS

__all__ = ["DemoData", "EFFECT_MODELS", "TRUE_DRIVERS", "churn_oracle", "expected_saved", "read_uplift_truth",
           "save_continuation", "simulate", "write_demo", "write_raw", "write_truth",
           # the mechanism's parameters and table names (tests/test_demo.py reads them)
           "BLOCK_CUSTOMERS", "CHANNELS", "CHANNEL_EFFECT", "HAZARD_INTERCEPT", "PLAN_EFFECT", "PLAN_IDS",
           "TABLE_NAMES"]
