"""A realistic demo warehouse: synthetic customers whose churn follows a known mechanism.

`simulate` generates every `raw.*` table of the shared spec plus the ground truth, `write_raw`
loads the tables into a DuckDB schema, `write_truth` writes the truth to a Parquet file that never
enters a warehouse. Everything is vectorized numpy; the only Python loop runs over months.

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
"""

from __future__ import annotations

import datetime
import pathlib
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churnwh.store import faults

__all__ = ["DemoData", "TRUE_DRIVERS", "churn_oracle", "simulate", "write_raw", "write_truth"]

TRUE_DRIVERS: tuple[str, ...] = (
    "engagement level (product use and web visits)",
    "falling engagement over the previous three months",
    "tenure of the current active period (longer tenure lowers risk)",
    "unresolved support tickets, especially early in tenure",
    "poor satisfaction ratings on resolved support tickets",
    "recent price increase of the customer's plan, especially for low-usage customers",
    "e-mail campaign engagement (opens and clicks lower risk)",
    "plan (basic riskiest, family safest)",
    "acquisition channel (paid search and social riskiest, referral safest)",
)

TABLE_NAMES: tuple[str, ...] = (
    "customers", "plans", "plan_prices", "subscriptions", "transactions",
    "product_usage", "support_tickets", "web_sessions", "email_events", "consent_events",
)


@dataclass(frozen=True)
class DemoData:
    """Raw tables of the demo warehouse and the hazard the simulator actually used."""

    tables: dict[str, pa.Table]
    truth: pa.Table


# --- vocabularies -------------------------------------------------------------------------

PLAN_IDS = ("basic", "standard", "premium", "family")
PLAN_NAMES = ("Basic", "Standard", "Premium", "Family")
PLAN_SIGNUP_SHARE = np.array([0.36, 0.34, 0.18, 0.12])
PLAN_EFFECT = np.array([0.5, 0.0, -0.25, -0.7], dtype=np.float32)
PLAN_ENGAGEMENT = np.array([-0.2, 0.0, 0.25, 0.15], dtype=np.float32)
# (months after `start`, plan, new monthly price); first row of each plan is the launch price.
LAUNCH_PRICES = (9.99, 15.99, 24.99, 29.99)
PRICE_CHANGES = ((8, 1, 17.99), (13, 3, 27.99), (15, 0, 11.99), (21, 2, 27.99), (26, 1, 19.99))

CHANNELS = ("organic", "paid_search", "social", "referral", "partner")
CHANNEL_SHARE = np.array([0.34, 0.24, 0.18, 0.14, 0.10])
CHANNEL_EFFECT = np.array([-0.15, 0.5, 0.3, -0.5, 0.05], dtype=np.float32)
CHANNEL_VARIANTS = [[c, c.upper(), c.title(), f" {c}"] for c in CHANNELS]

REGIONS = ("north", "south", "east", "west", "central")
REGION_SHARE = np.array([0.22, 0.2, 0.2, 0.23, 0.15])
REGION_IS_CCPA = np.array([False, True, False, True, False])
REGION_VARIANTS = [[r, r.upper() + " ", r.title(), f" {r}", r.upper()] for r in REGIONS]

GENDER_VARIANTS = [["F", "female", "Female"], ["M", "male", " Male"], ["X"]]
GENDER_SHARE = np.array([0.49, 0.48, 0.03])

TRANSACTION_CATEGORIES = ("subscription", "add_on", "merchandise", "gift_card")
FEATURES = ("dashboard", "reports", "search", "export", "mobile_app", "sharing")
DEVICES = ("desktop", "mobile", "tablet")
TICKET_CATEGORIES = ("billing", "technical", "account", "cancellation")
EMAIL_EVENT_TYPES = ("sent", "opened", "clicked")
CANCEL_REASONS = ("too_expensive", "not_using", "support_issues", "switched_competitor",
                  "moving", "other")

FIRST_NAMES = np.array("""Emma Liam Olivia Noah Ava Elijah Sophia Lucas Mia Mateo Amelia Levi Harper
    Ezra Evelyn Leo Luna Kai Nora Omar Aisha Yuki Priya Arjun Sofia Jonas Lena Felix Clara Ivan
    Zoe Hugo Ines Marta Pavel Chloe Ravi Anna Tom Julia""".split())
LAST_NAMES = np.array("""Smith Johnson Garcia Miller Davis Martinez Lopez Wilson Anderson Taylor
    Thomas Moore Jackson Martin Lee Perez Thompson White Harris Clark Lewis Young Walker Hall
    Allen King Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell Roberts Carter
    Phillips Evans Turner Novak Schmidt Rossi Silva Kim Nguyen""".split())
STREET_NAMES = np.array("""Oak Maple Pine Cedar Elm Birch Willow Lake Hill River Park Church Mill
    Station High Main Spring Meadow Forest Garden Sunset Harbor Bridge Orchard""".split())
STREET_KINDS = np.array(["Street", "Avenue", "Road", "Lane", "Drive", "Way", "Court"])
MAIL_DOMAINS = np.array(["example.com", "mail.example.org", "inbox.example.net", "post.example.com"])

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000
Q_SHORT_RETURN = 0.2
Q_LONG_RETURN = 0.1
PLAN_CHANGE_RATE = 0.012


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _day_number(d: datetime.date) -> int:
    return (d - datetime.date(1970, 1, 1)).days


def _month_starts(start: datetime.date, end: datetime.date) -> np.ndarray:
    """Day numbers of the first day of every month from start's month to the month after end."""
    first = np.datetime64(start, "M")
    last = np.datetime64(end, "M") + 1
    return np.arange(first, last + 1).astype("datetime64[D]").astype(np.int64)


def _day_of_month(days: np.ndarray) -> np.ndarray:
    as_date = days.astype("datetime64[D]")
    return (as_date - as_date.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64)


def _draw_categories(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row of `probs` (rows sum to 1), by inverse CDF."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None] * cdf[:, -1:]
    return (u > cdf).sum(axis=1).astype(np.int8)


def _uniform_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A uniform integer day in [lo, hi) per row (hi > lo)."""
    return lo + np.floor(rng.random(lo.shape[0]) * (hi - lo)).astype(np.int64)


# --- Arrow builders -------------------------------------------------------------------------

ARROW_CHUNK_ROWS = 8_000_000


def _strings(vocabulary, indices: np.ndarray, null_mask: np.ndarray | None = None) -> pa.ChunkedArray:
    """vocabulary[indices] as a string column, built in chunks so offsets never overflow."""
    values = pa.array(list(vocabulary), type=pa.string())
    idx = pa.array(np.asarray(indices, dtype=np.int32), mask=null_mask)
    chunks = [values.take(idx.slice(i, ARROW_CHUNK_ROWS)) for i in range(0, len(idx), ARROW_CHUNK_ROWS)]
    return pa.chunked_array(chunks or [pa.array([], pa.string())], type=pa.string())


def _spellings(rng: np.random.Generator, codes: np.ndarray, variants: list[list[str]],
               clean_share: float) -> np.ndarray:
    """Index into the flattened `variants`: the first spelling mostly, otherwise any spelling."""
    counts = np.array([len(v) for v in variants])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    codes = np.asarray(codes, dtype=np.int64)
    pick = np.floor(rng.random(codes.size) * counts[codes]).astype(np.int64)
    pick[rng.random(codes.size) < clean_share] = 0
    return (offsets[codes] + pick).astype(np.int32)


def _flatten(variants: list[list[str]]) -> list[str]:
    return [s for v in variants for s in v]


def _messy_strings(rng: np.random.Generator, codes: np.ndarray, variants: list[list[str]],
                   clean_share: float = 0.85, null_mask: np.ndarray | None = None) -> pa.ChunkedArray:
    """Category `codes` as text with inconsistent casing and whitespace."""
    return _strings(_flatten(variants), _spellings(rng, codes, variants, clean_share), null_mask)


def _casing_variants(values) -> list[list[str]]:
    return [[v, v.upper(), v.title(), f"{v} "] for v in values]


CATEGORY_SPELLINGS = _casing_variants(TRANSACTION_CATEGORIES)
FEATURE_SPELLINGS = _casing_variants(FEATURES)
EMAIL_SPELLINGS = _casing_variants(EMAIL_EVENT_TYPES)


def _format_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """'C00000042'-style ids built as one fixed-width byte buffer (no Python string per row)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    row_len = head.size + width
    buf = np.empty((numbers.size, row_len), dtype=np.uint8)
    buf[:, : head.size] = head
    rest = numbers.copy()
    for pos in range(row_len - 1, head.size - 1, -1):
        buf[:, pos] = 48 + rest % 10
        rest //= 10
    offsets = np.arange(numbers.size + 1, dtype=np.int64) * row_len
    return pa.LargeStringArray.from_buffers(numbers.size, pa.py_buffer(offsets), pa.py_buffer(buf)).cast(pa.string())


def _dates(days: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), mask=null_mask).cast(pa.date32())


def _timestamps(micros: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(micros, dtype=np.int64), mask=null_mask).cast(pa.timestamp("us"))


def _with_duplicates(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Row order that repeats about `share` of the rows exactly, right after the original."""
    return np.repeat(np.arange(n), 1 + (rng.random(n, dtype=np.float32) < share))


def _take(columns: dict[str, np.ndarray], order: np.ndarray) -> dict[str, np.ndarray]:
    return {name: col[order] for name, col in columns.items()}


# --- customers and consent ------------------------------------------------------------------

def _customer_attributes(rng: np.random.Generator, n: int, start_day: int, end_day: int) -> dict[str, np.ndarray]:
    """Who the customers are and when they sign up; about 30% joined before `start`."""
    before_start = rng.random(n) < 0.3
    months_before = 1 + np.minimum(rng.geometric(0.035, n), 72)
    signup_before = start_day - months_before * 30 - rng.integers(0, 30, n)
    signup_during = rng.integers(start_day, end_day + 1, n)
    signup_day = np.where(before_start, signup_before, signup_during)
    region = rng.choice(len(REGIONS), n, p=REGION_SHARE).astype(np.int8)
    plan = rng.choice(len(PLAN_IDS), n, p=PLAN_SIGNUP_SHARE).astype(np.int8)
    baseline = (rng.normal(0.0, 1.0, n) + PLAN_ENGAGEMENT[plan]).astype(np.float32)
    return {
        "signup_day": signup_day.astype(np.int64),
        "region": region,
        "ccpa": REGION_IS_CCPA[region],
        "channel": rng.choice(len(CHANNELS), n, p=CHANNEL_SHARE).astype(np.int8),
        "gender": rng.choice(len(GENDER_SHARE), n, p=GENDER_SHARE).astype(np.int8),
        "age_days": (rng.uniform(18, 80, n) * 365.25).astype(np.int64),
        "plan": plan,
        "baseline": baseline,
        "email_affinity": rng.normal(-0.3, 1.0, n).astype(np.float32),
    }


def _customers_table(rng: np.random.Generator, attrs: dict[str, np.ndarray]) -> pa.Table:
    n = attrs["signup_day"].size
    number = np.arange(1, n + 1)
    first = rng.integers(0, FIRST_NAMES.size, n)
    last = rng.integers(0, LAST_NAMES.size, n)
    first_s, last_s = _strings(FIRST_NAMES, first), _strings(LAST_NAMES, last)
    full_name = pa.compute.binary_join_element_wise(first_s, last_s, " ")
    local = pa.compute.binary_join_element_wise(
        pa.compute.utf8_lower(first_s), pa.compute.utf8_lower(last_s), ".")
    email = pa.compute.binary_join_element_wise(
        local, _format_ids("", number, 7), _strings([f"@{d}" for d in MAIL_DOMAINS],
                                                   rng.integers(0, MAIL_DOMAINS.size, n)), "")
    phone = pa.compute.binary_join_element_wise(
        _format_ids("+1-555-", rng.integers(0, 1000, n), 3), _format_ids("", rng.integers(0, 10000, n), 4), "-")
    street = pa.compute.binary_join_element_wise(
        pa.compute.cast(pa.array(rng.integers(1, 2500, n)), pa.string()),
        _strings(STREET_NAMES, rng.integers(0, STREET_NAMES.size, n)),
        _strings(STREET_KINDS, rng.integers(0, STREET_KINDS.size, n)), " ")
    signup = attrs["signup_day"]
    return pa.table({
        "customer_id": _format_ids("C", number, 8),
        "full_name": full_name,
        "email": email,
        "phone": phone,
        "street_address": street,
        "birth_date": _dates(signup - attrs["age_days"], rng.random(n) < 0.03),
        "gender": _messy_strings(rng, attrs["gender"], GENDER_VARIANTS, 0.5, rng.random(n) < 0.04),
        "region": _messy_strings(rng, attrs["region"], REGION_VARIANTS, 0.7),
        "signup_date": _dates(signup),
        "acquisition_channel": _messy_strings(rng, attrs["channel"], CHANNEL_VARIANTS, 0.85,
                                              rng.random(n) < 0.02),
    })


@dataclass
class _ConsentWindows:
    """Marketing consent per customer: granted from `granted`, withdrawn in [withdrawn, regranted)."""

    granted: np.ndarray
    withdrawn: np.ndarray
    regranted: np.ndarray

    def allowed(self, day: int) -> np.ndarray:
        paused = (self.withdrawn <= day) & (day < self.regranted)
        return (self.granted <= day) & ~paused


NEVER = np.iinfo(np.int64).max // 4


def _consent(rng: np.random.Generator, attrs: dict[str, np.ndarray], end_day: int) -> tuple[dict, _ConsentWindows]:
    """Consent history per purpose: signup grants, later withdrawals (GPC among them), re-grants."""
    n = attrs["signup_day"].size
    signup_us = attrs["signup_day"] * US_PER_DAY + rng.integers(8 * US_PER_HOUR, 22 * US_PER_HOUR, n)
    end_us = (end_day + 1) * US_PER_DAY - 1
    ccpa = attrs["ccpa"]
    rows: list[dict[str, np.ndarray]] = []

    def add(who, ts, purpose, action, source):
        rows.append({"customer": np.flatnonzero(who), "ts": ts[who], "purpose": np.full(who.sum(), purpose),
                     "action": np.full(who.sum(), action), "source": np.asarray(source)[who] if np.ndim(source)
                     else np.full(who.sum(), source)})

    def later(after_us, min_days, max_days):
        return after_us + rng.integers(min_days * US_PER_DAY, max_days * US_PER_DAY, n)

    # profiling: 45% explicitly grant at signup; ~4.5% later object/opt out, a third re-grant.
    add(rng.random(n) < 0.45, signup_us, 0, 0, 0)
    withdraw_ts = signup_us + (rng.random(n) * (end_us - signup_us)).astype(np.int64)
    withdraws = (rng.random(n) < 0.05) & (withdraw_ts > signup_us + US_PER_DAY) & (withdraw_ts < end_us)
    source = np.where(ccpa & (rng.random(n) < 0.5), 2, np.where(rng.random(n) < 0.7, 1, 3))
    add(withdraws, withdraw_ts, 0, 1, source)
    regrant_ts = later(withdraw_ts, 20, 400)
    add(withdraws & (rng.random(n) < 0.33) & (regrant_ts < end_us), regrant_ts, 0, 0, 1)

    # marketing: 78% opt in at signup; withdrawals are more common (~20%), some re-grant.
    opted_in = rng.random(n) < 0.78
    add(opted_in, signup_us, 1, 0, 0)
    m_withdraw_ts = signup_us + (rng.random(n) * (end_us - signup_us)).astype(np.int64)
    m_withdraws = opted_in & (rng.random(n) < 0.2) & (m_withdraw_ts > signup_us + US_PER_DAY)
    add(m_withdraws, m_withdraw_ts, 1, 1, np.where(rng.random(n) < 0.8, 1, 3))
    m_regrant_ts = later(m_withdraw_ts, 30, 500)
    m_regrants = m_withdraws & (rng.random(n) < 0.25) & (m_regrant_ts < end_us)
    add(m_regrants, m_regrant_ts, 1, 0, 1)

    events = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    events = _take(events, np.lexsort((events["purpose"], events["ts"])))
    windows = _ConsentWindows(
        granted=np.where(opted_in, attrs["signup_day"], NEVER),
        withdrawn=np.where(m_withdraws, m_withdraw_ts // US_PER_DAY + 1, NEVER),
        regranted=np.where(m_regrants, m_regrant_ts // US_PER_DAY + 1, NEVER),
    )
    return events, windows


def _consent_table(events: dict[str, np.ndarray], customer_ids: pa.Array, ccpa: np.ndarray) -> pa.Table:
    n = events["ts"].size
    return pa.table({
        "event_id": _format_ids("CE", np.arange(1, n + 1), 9),
        "customer_id": customer_ids.take(pa.array(events["customer"])),
        "purpose": _strings(("profiling", "marketing"), events["purpose"]),
        "action": _strings(("grant", "withdraw"), events["action"]),
        "event_ts": _timestamps(events["ts"]),
        "source": _strings(("signup_form", "preference_center", "gpc", "support_call"), events["source"]),
        "regulation": _strings(("GDPR", "CCPA"), ccpa[events["customer"]].astype(np.int8)),
    })


# --- plans and prices ---------------------------------------------------------------------------

def _price_schedule(start: datetime.date) -> list[tuple[int, int, float]]:
    """(valid_from day, plan, price) rows; launch prices long before the history starts."""
    launch = _day_number(datetime.date(start.year - 8, 1, 1))
    month0 = np.datetime64(start, "M")
    rows = [(launch, p, price) for p, price in enumerate(LAUNCH_PRICES)]
    for months, plan, price in PRICE_CHANGES:
        rows.append((int((month0 + months).astype("datetime64[D]").astype(np.int64)), plan, price))
    return sorted(rows)


def _plan_tables(schedule: list[tuple[int, int, float]]) -> tuple[pa.Table, pa.Table]:
    plans = pa.table({
        "plan_id": pa.array(PLAN_IDS, pa.string()),
        "plan_name": pa.array(PLAN_NAMES, pa.string()),
        "tier_rank": pa.array([1, 2, 3, 4], pa.int32()),
    })
    prices = pa.table({
        "plan_id": pa.array([PLAN_IDS[p] for _, p, _ in schedule], pa.string()),
        "monthly_price": pa.array([price for _, _, price in schedule], pa.float64()),
        "valid_from": _dates(np.array([d for d, _, _ in schedule])),
    })
    return plans, prices


@dataclass(frozen=True)
class _Prices:
    schedule: list[tuple[int, int, float]]

    def price_on(self, plan: np.ndarray, day: np.ndarray) -> np.ndarray:
        out = np.zeros(plan.size)
        for valid_from, p, price in self.schedule:  # sorted by valid_from: later rows win
            out[(plan == p) & (day >= valid_from)] = price
        return out


# --- the monthly simulation ---------------------------------------------------------------------

SIGNED_UP_LATER, SUBSCRIBED, SHORT_GAP, AWAY, GONE = range(5)


@dataclass
class _State:
    """Latent and bookkeeping state of every customer, updated month by month."""

    status: np.ndarray
    plan: np.ndarray
    seg_start: np.ndarray
    period_start: np.ndarray
    return_day: np.ndarray
    billing_dom: np.ndarray
    baseline: np.ndarray
    engagement: np.ndarray
    disengaging: np.ndarray
    use_days: np.ndarray                 # (RECORD_DAYS, n): 1 on a recorded day of product use
    web_days: np.ndarray                 # (RECORD_DAYS, n): web visits recorded per day
    opens_past: np.ndarray               # (3, n) e-mail opens in the last 3 months
    clicks_past: np.ndarray


class _Collector:
    """Per-month numpy chunks of one table, concatenated once at the end."""

    def __init__(self) -> None:
        self.chunks: list[dict[str, np.ndarray]] = []

    def add(self, **columns: np.ndarray) -> None:
        self.chunks.append(columns)

    def concat(self) -> dict[str, np.ndarray]:
        """Concatenate column by column, releasing the chunks as it goes (keeps peak memory low)."""
        names = list(self.chunks[0])
        out = {}
        for name in names:
            out[name] = np.concatenate([c.pop(name) for c in self.chunks])
        self.chunks = []
        return out


@dataclass
class _Log:
    subscriptions: _Collector = field(default_factory=_Collector)
    usage: _Collector = field(default_factory=_Collector)
    transactions: _Collector = field(default_factory=_Collector)
    tickets: _Collector = field(default_factory=_Collector)
    web: _Collector = field(default_factory=_Collector)
    email: _Collector = field(default_factory=_Collector)
    truth: _Collector = field(default_factory=_Collector)


RECORD_DAYS = 90  # the activity window the hazard reads: the last 30 and 90 days before a month start


def _initial_state(rng: np.random.Generator, attrs: dict[str, np.ndarray], start_day: int) -> _State:
    n = attrs["signup_day"].size
    before = attrs["signup_day"] < start_day
    engagement = attrs["baseline"] + rng.normal(0, 0.3, n).astype(np.float32)
    # activity of the 90 days before the history start (customers who joined earlier): drawn like
    # any month's activity so the first hazards see a normal record; not written to the raw tables
    day = start_day - RECORD_DAYS + np.arange(RECORD_DAYS)[:, None]
    live = before[None, :] & (day > attrs["signup_day"][None, :])
    use_days = (live & (rng.random((RECORD_DAYS, n), dtype=np.float32) < _use_probability(engagement, False)))
    web_days = live & (rng.random((RECORD_DAYS, n), dtype=np.float32) < _web_rate(engagement, False) / 30.0)
    return _State(
        status=np.where(before, SUBSCRIBED, SIGNED_UP_LATER).astype(np.int8),
        plan=attrs["plan"].copy(),
        seg_start=attrs["signup_day"].copy(),
        period_start=attrs["signup_day"].copy(),
        return_day=np.full(n, NEVER, dtype=np.int64),
        billing_dom=_day_of_month(attrs["signup_day"]),
        baseline=attrs["baseline"].copy(),
        engagement=engagement,
        disengaging=np.zeros(n, dtype=bool),
        use_days=use_days.astype(np.int8),
        web_days=web_days.astype(np.int16),
        opens_past=np.zeros((3, n), dtype=np.int16),
        clicks_past=np.zeros((3, n), dtype=np.int16),
    )


@dataclass
class _TicketPool:
    """Every ticket raised so far, for the hazard's unresolved and satisfaction terms."""

    customer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    opened: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    resolved: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    satisfaction: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # 0 if missing

    def extend(self, customer, opened, resolved, satisfaction) -> "_TicketPool":
        return _TicketPool(np.concatenate([self.customer, customer]), np.concatenate([self.opened, opened]),
                           np.concatenate([self.resolved, resolved]),
                           np.concatenate([self.satisfaction, satisfaction]))


def _use_probability(engagement: np.ndarray, disengaging: np.ndarray) -> np.ndarray:
    """Daily probability of product use: the engagement level, cut sharply while disengaging."""
    return _sigmoid(engagement - 1.1 - 1.6 * np.asarray(disengaging, dtype=np.float32)).astype(np.float32)


def _web_rate(engagement: np.ndarray, disengaging: np.ndarray) -> np.ndarray:
    """Expected web visits per 30 days."""
    return np.exp(0.55 * engagement + 0.35 - 1.0 * np.asarray(disengaging, dtype=np.float32))


def _trend(last_30: np.ndarray, last_90: np.ndarray) -> np.ndarray:
    """Last 30 days against the monthly average of the 60 days before, in [-1, 1] (0 when both are 0):
    the definition of ``usage_trend`` and ``web_sessions_trend`` in sql/features/customer_features.sql."""
    before = (last_90 - last_30) / 2.0
    total = last_30 + before
    return np.where(total > 0, (last_30 - before) / np.maximum(total, 1e-9), 0.0)


@dataclass(frozen=True)
class _Record:
    """What the raw tables record about customers ``who`` before a month start (the hazard's inputs)."""

    active_days_30d: np.ndarray
    active_days_90d: np.ndarray
    web_visits_30d: np.ndarray
    web_visits_90d: np.ndarray
    unresolved: np.ndarray
    mean_satisfaction: np.ndarray        # NaN when no resolved ticket was rated
    price_rise: np.ndarray
    opened_email: np.ndarray
    clicked_email: np.ndarray
    period_months: np.ndarray


def _record(state: _State, who: np.ndarray, month_start: int, tickets: _TicketPool, prices: _Prices) -> _Record:
    n = state.status.size
    at_us = month_start * US_PER_DAY
    unresolved = np.bincount(tickets.customer[tickets.resolved >= at_us], minlength=n)[who]
    rated = (tickets.satisfaction >= 1) & (tickets.resolved < at_us)
    ratings = np.bincount(tickets.customer[rated], minlength=n)[who]
    rating_sum = np.bincount(tickets.customer[rated], weights=tickets.satisfaction[rated], minlength=n)[who]
    plan = state.plan[who]
    # the list price of the customer's plan the day before the month start against 90 days earlier
    # (price_change_90d_pct > 0 in the features)
    price_rise = (prices.price_on(plan, np.full(who.size, month_start - 1))
                  > prices.price_on(plan, np.full(who.size, month_start - 91)))
    use, web = state.use_days, state.web_days
    return _Record(
        active_days_30d=use[-30:].sum(axis=0, dtype=np.int32)[who],
        active_days_90d=use.sum(axis=0, dtype=np.int32)[who],
        web_visits_30d=web[-30:].sum(axis=0, dtype=np.int32)[who],
        web_visits_90d=web.sum(axis=0, dtype=np.int32)[who],
        unresolved=unresolved,
        mean_satisfaction=np.where(ratings > 0, rating_sum / np.maximum(ratings, 1), np.nan),
        price_rise=price_rise,
        opened_email=state.opens_past[:, who].sum(axis=0) > 0,
        clicked_email=state.clicks_past[:, who].sum(axis=0) > 0,
        period_months=(month_start - state.period_start[who]) / 30.44,
    )


def _cancel_logit(state: _State, attrs: dict, who: np.ndarray, rec: _Record) -> np.ndarray:
    """The documented hazard logit z for customers `who` (see the module docstring)."""
    a30, w30 = rec.active_days_30d, rec.web_visits_30d
    usage_fall = np.maximum(-_trend(a30, rec.active_days_90d), 0.0)
    web_fall = np.maximum(-_trend(w30, rec.web_visits_90d), 0.0)
    early = rec.period_months < 6
    poor = np.nan_to_num(rec.mean_satisfaction, nan=5.0) < 2.5
    low_usage = a30 < 4
    return (HAZARD_INTERCEPT + PLAN_EFFECT[state.plan[who]] + CHANNEL_EFFECT[attrs["channel"][who]]
            - 0.45 * np.log1p(rec.period_months)
            - 1.4 * np.log1p(rec.active_days_90d / 3.0) - 0.4 * np.log1p(w30)
            + 0.8 * (rec.active_days_90d < 4)
            + 1.4 * usage_fall + 0.4 * web_fall
            + np.minimum(rec.unresolved, 2) * (0.5 + 1.0 * early)
            + 0.8 * poor
            + rec.price_rise * (0.25 + 1.5 * low_usage)
            - 0.55 * rec.clicked_email
            - 0.25 * rec.opened_email)


HAZARD_INTERCEPT = 0.05


def _cancel_reasons(rng: np.random.Generator, price_hit: np.ndarray, low_usage: np.ndarray,
                    unresolved: np.ndarray) -> np.ndarray:
    weights = np.tile(np.array([1.0, 1.0, 0.5, 1.0, 0.4, 0.8]), (price_hit.size, 1))
    weights[:, 0] += 3.0 * price_hit
    weights[:, 1] += 2.5 * low_usage
    weights[:, 2] += 3.0 * unresolved
    return _draw_categories(rng, weights / weights.sum(axis=1, keepdims=True))


def _simulate_months(rng: np.random.Generator, attrs: dict, consent: _ConsentWindows, prices: _Prices,
                     start_day: int, end_day: int, month_starts: np.ndarray) -> tuple[_Log, _State]:
    state = _initial_state(rng, attrs, start_day)
    log = _Log()
    tickets = _TicketPool()
    n = state.status.size
    for m in range(month_starts.size - 1):
        ms, me = int(month_starts[m]), int(min(month_starts[m + 1], end_day + 1))
        if ms > end_day:
            break
        tickets = _simulate_month(rng, m, ms, me, state, attrs, consent, prices, tickets, log, n)
    return log, state


def _simulate_month(rng, m, ms, me, state: _State, attrs, consent, prices: _Prices, tickets: _TicketPool,
                    log: _Log, n) -> _TicketPool:
    """One month: hazards and cancellations, plan changes, arrivals, then the month's behaviour."""
    # window of subscribed days [lo, hi) minus the gap [gap_lo, gap_hi) for everyone this month
    lo = np.full(n, NEVER, dtype=np.int64)
    hi = np.full(n, me, dtype=np.int64)
    gap_lo = np.zeros(n, dtype=np.int64)
    gap_hi = np.zeros(n, dtype=np.int64)
    lo[state.status == SUBSCRIBED] = ms

    # customers inside an active period at the month start are at risk; short gaps end first
    at_risk = np.flatnonzero((state.status == SUBSCRIBED) | (state.status == SHORT_GAP))
    returning = np.flatnonzero(state.status == SHORT_GAP)
    _start_segment(state, returning, state.return_day[returning], state.plan[returning])
    lo[returning] = state.seg_start[returning]

    rec = _record(state, at_risk, ms, tickets, prices)
    p_cancel = _sigmoid(_cancel_logit(state, attrs, at_risk, rec))
    log.truth.add(customer=at_risk, month=np.full(at_risk.size, ms), hazard=p_cancel * (1 - Q_SHORT_RETURN))

    cancelling = rng.random(at_risk.size) < p_cancel
    cancels = at_risk[cancelling]
    cancel_day = _uniform_days(rng, np.maximum(lo[cancels], state.seg_start[cancels] + 1), np.full(cancels.size, me))
    reason = _cancel_reasons(rng, rec.price_rise[cancelling], rec.active_days_30d[cancelling] < 4,
                             rec.unresolved[cancelling] > 0)
    _end_segment(log, state, cancels, cancel_day, reason)
    hi[cancels] = cancel_day
    _schedule_returns(rng, state, cancels, cancel_day, ms, me)

    same_month = cancels[state.return_day[cancels] < me]
    state.status[same_month] = SUBSCRIBED
    _start_segment(state, same_month, state.return_day[same_month], state.plan[same_month])
    gap_lo[same_month], gap_hi[same_month], hi[same_month] = hi[same_month], state.seg_start[same_month], me

    stayers = np.setdiff1d(at_risk, cancels, assume_unique=True)
    changers = stayers[rng.random(stayers.size) < PLAN_CHANGE_RATE]
    change_day = _uniform_days(rng, np.maximum(lo[changers], state.seg_start[changers] + 1), np.full(changers.size, me))
    _end_segment(log, state, changers, change_day, np.full(changers.size, -1))
    _start_segment(state, changers, change_day, _neighbour_plan(rng, state.plan[changers]))

    arrivals = _arrivals(rng, state, attrs, ms, me)
    lo[arrivals] = state.seg_start[arrivals]
    _evolve_engagement(rng, state, tickets, ms)

    in_month = np.flatnonzero(lo < hi)
    price_rise = np.zeros(n, dtype=bool)
    price_rise[at_risk] = rec.price_rise
    _simulate_behaviour(rng, m, ms, me, state, attrs, consent, prices, log, in_month,
                        lo[in_month], hi[in_month], gap_lo[in_month], gap_hi[in_month])
    return _simulate_tickets(rng, ms, state, log, tickets, in_month, lo[in_month], hi[in_month], price_rise)


def _start_segment(state: _State, who: np.ndarray, day: np.ndarray, plan: np.ndarray) -> None:
    state.status[who] = SUBSCRIBED
    state.seg_start[who] = day
    state.plan[who] = plan
    state.return_day[who] = NEVER


def _end_segment(log: _Log, state: _State, who: np.ndarray, day: np.ndarray, reason: np.ndarray) -> None:
    log.subscriptions.add(customer=who, plan=state.plan[who].copy(), start=state.seg_start[who].copy(),
                          end=day.astype(np.int64), reason=reason.astype(np.int8))


def _schedule_returns(rng, state: _State, cancels: np.ndarray, cancel_day: np.ndarray, ms: int, me: int) -> None:
    u = rng.random(cancels.size)
    short = u < Q_SHORT_RETURN
    long = (u >= Q_SHORT_RETURN) & (u < Q_SHORT_RETURN + Q_LONG_RETURN)
    # a short gap ends by day 26 of the next month, leaving room for that month's events
    short_day = np.minimum(cancel_day + rng.integers(3, 30, cancels.size), me + 25)
    long_day = cancel_day + rng.integers(45, 601, cancels.size)
    state.status[cancels] = np.where(short, SHORT_GAP, np.where(long, AWAY, GONE))
    state.return_day[cancels] = np.where(short, short_day, np.where(long, long_day, NEVER))


def _neighbour_plan(rng, plan: np.ndarray) -> np.ndarray:
    step = np.where(rng.random(plan.size) < 0.55, 1, -1)
    return np.clip(plan + step, 0, len(PLAN_IDS) - 1).astype(np.int8)


def _arrivals(rng, state: _State, attrs, ms: int, me: int) -> np.ndarray:
    """New signups and long-gap returns this month; they become at risk next month."""
    signups = np.flatnonzero((state.status == SIGNED_UP_LATER) & (attrs["signup_day"] < me))
    returns = np.flatnonzero((state.status == AWAY) & (state.return_day < me))
    return_day = state.return_day[returns]
    new_plan = rng.choice(len(PLAN_IDS), returns.size, p=PLAN_SIGNUP_SHARE).astype(np.int8)
    _start_segment(state, signups, attrs["signup_day"][signups], state.plan[signups])
    _start_segment(state, returns, return_day, new_plan)
    arrivals = np.concatenate([signups, returns])
    state.period_start[arrivals] = state.seg_start[arrivals]
    state.billing_dom[arrivals] = _day_of_month(state.seg_start[arrivals])
    state.engagement[returns] = state.baseline[returns] + rng.normal(0, 0.3, returns.size).astype(np.float32)
    state.disengaging[returns] = False
    return arrivals


def _simulate_behaviour(rng, m, ms, me, state: _State, attrs, consent: _ConsentWindows, prices: _Prices,
                        log: _Log, who, lo, hi, gap_lo, gap_hi) -> None:
    e = state.engagement[who]
    dis = state.disengaging[who]
    use = _simulate_usage(rng, ms, me, log, who, lo, hi, gap_lo, gap_hi, e, dis)
    web = _simulate_web(rng, ms, me, log, who, lo, hi, e, dis)
    _record_days(state, who, use, web, me - ms)
    _simulate_transactions(rng, ms, me, state, prices, log, who, lo, hi, gap_lo, gap_hi, e)
    _simulate_email(rng, m, ms, me, state, attrs, consent, log)


def _record_days(state: _State, who: np.ndarray, use: np.ndarray, web: np.ndarray, days: int) -> None:
    """Shift the month's recorded daily use and visits (``(who.size, >= days)``) into the state."""
    keep = max(RECORD_DAYS - days, 0)
    for buffer, month in ((state.use_days, use), (state.web_days, web)):
        buffer[:keep] = buffer[RECORD_DAYS - keep:]
        buffer[keep:] = 0
        buffer[keep:, who] = month[:, days - (RECORD_DAYS - keep):days].T


def _simulate_usage(rng, ms, me, log: _Log, who, lo, hi, gap_lo, gap_hi, e, dis) -> np.ndarray:
    day = ms + np.arange(31)[None, :]
    p_day = _use_probability(e, dis)[:, None]
    active = ((day >= lo[:, None]) & (day < hi[:, None]) & ~((day >= gap_lo[:, None]) & (day < gap_hi[:, None]))
              & (rng.random((who.size, 31), dtype=np.float32) < p_day))
    row, offset = np.nonzero(active)
    customer = who[row]
    sessions = 1 + rng.poisson(0.4 + 0.5 * _sigmoid(e[row]))
    minutes = sessions * rng.lognormal(2.3 + 0.25 * e[row], 0.7)
    log.usage.add(customer=customer.astype(np.int32), day=(ms + offset).astype(np.int32),
                  sessions=sessions.astype(np.int16),
                  minutes=np.round(minutes, 1), feature=rng.integers(0, len(FEATURES), row.size, dtype=np.int8))
    return active


def _simulate_web(rng, ms, me, log: _Log, who, lo, hi, e, dis) -> np.ndarray:
    span = hi - lo
    count = rng.poisson(_web_rate(e, dis) * span / 30.0)
    row = np.repeat(np.arange(who.size), count)
    day = _uniform_days(rng, lo[row], hi[row])
    ts = day * US_PER_DAY + rng.integers(6 * US_PER_HOUR, 24 * US_PER_HOUR, row.size)
    pages = 1 + rng.poisson(np.clip(2.0 + e[row], 0.2, None))
    log.web.add(customer=who[row].astype(np.int32), ts=ts, pages=pages.astype(np.int16), device=rng.choice(3, row.size, p=[0.5, 0.42, 0.08]).astype(np.int8))
    days = me - ms
    per_day = np.bincount(row * days + (day - ms), minlength=who.size * days).reshape(who.size, days)
    return np.minimum(per_day, 100).astype(np.int16)


def _simulate_transactions(rng, ms, me, state: _State, prices: _Prices, log: _Log, who, lo, hi, gap_lo, gap_hi, e) -> None:
    billing_day = ms + np.minimum(state.billing_dom[who], me - ms - 1)
    billed = (billing_day >= lo) & (billing_day < hi) & ~((billing_day >= gap_lo) & (billing_day < gap_hi))
    charged = who[billed]
    charge_ts = billing_day[billed] * US_PER_DAY + rng.integers(0, 6 * US_PER_HOUR, charged.size)
    charge = prices.price_on(state.plan[charged], billing_day[billed])

    count = rng.poisson(0.22 * np.exp(0.3 * e) * (hi - lo) / 30.0)
    row = np.repeat(np.arange(who.size), count)
    buy_ts = _uniform_days(rng, lo[row], hi[row]) * US_PER_DAY + rng.integers(7 * US_PER_HOUR, 23 * US_PER_HOUR, row.size)
    amount = np.round(rng.lognormal(2.6, 0.7, row.size), 2)
    category = rng.choice([1, 2, 3], row.size, p=[0.6, 0.3, 0.1]).astype(np.int8)
    log.transactions.add(customer=np.concatenate([charged, who[row]]), ts=np.concatenate([charge_ts, buy_ts]),
                         amount=np.concatenate([charge, amount]),
                         category=np.concatenate([np.zeros(charged.size, np.int8), category]))


def _simulate_email(rng, m, ms, me, state: _State, attrs, consent: _ConsentWindows, log: _Log) -> None:
    """Two campaigns a month to consenting subscribers; opens/clicks feed the hazard next months."""
    n = state.status.size
    opens = np.zeros(n, dtype=np.int16)
    clicks = np.zeros(n, dtype=np.int16)
    for k, send_offset in enumerate((4, 18)):
        send_day = ms + send_offset
        if send_day >= me:  # the history ends before this campaign
            continue
        eligible = (state.status == SUBSCRIBED) & (state.seg_start <= send_day) & consent.allowed(send_day)
        to = np.flatnonzero(eligible & (rng.random(n) < 0.75))
        affinity = attrs["email_affinity"][to] + 0.35 * state.engagement[to] - 0.6 * state.disengaging[to]
        opened = rng.random(to.size) < _sigmoid(affinity - 0.6)
        clicked = opened & (rng.random(to.size) < _sigmoid(affinity - 1.4))
        sent_ts = send_day * US_PER_DAY + 10 * US_PER_HOUR + rng.integers(0, 3_600_000_000, to.size)
        open_ts = sent_ts + rng.exponential(8 * US_PER_HOUR, to.size).astype(np.int64) + 60_000_000
        click_ts = open_ts + rng.integers(5_000_000, 900_000_000, to.size)
        campaign = np.full(to.size, 2 * m + k)
        for kind, mask, ts in ((0, np.ones(to.size, bool), sent_ts), (1, opened, open_ts), (2, clicked, click_ts)):
            log.email.add(customer=to[mask], campaign=campaign[mask], kind=np.full(mask.sum(), kind, np.int8), ts=ts[mask])
        opens[to[opened]] += 1
        clicks[to[clicked]] += 1
    state.opens_past[m % 3] = opens
    state.clicks_past[m % 3] = clicks


def _simulate_tickets(rng, ms, state: _State, log: _Log, tickets: _TicketPool, who, lo, hi,
                      price_hit) -> _TicketPool:
    e = state.engagement[who]
    dis = state.disengaging[who]
    hit = price_hit[who]
    p_ticket = _sigmoid(-3.3 + 0.9 * dis + 0.9 * hit + 0.3 * (e < -1)) * (hi - lo) / 30.0
    raised = rng.random(who.size) < p_ticket
    customer, lo, hi = who[raised], lo[raised], hi[raised]
    weights = np.tile(np.array([0.28, 0.45, 0.22, 0.05]), (customer.size, 1))
    weights[:, 0] += 0.8 * price_hit[customer]
    weights[:, 3] += 0.25 * state.disengaging[customer]
    category = _draw_categories(rng, weights / weights.sum(axis=1, keepdims=True))
    opened = _uniform_days(rng, lo, hi) * US_PER_DAY + rng.integers(7 * US_PER_HOUR, 22 * US_PER_HOUR, customer.size)
    # most tickets close within hours or days; 12% stall for 3 weeks to 5 months (open tickets)
    stalled = rng.random(customer.size) < 0.12
    hours = np.where(stalled, rng.uniform(20 * 24, 150 * 24, customer.size),
                     rng.lognormal(np.log(20.0), 1.3, customer.size))
    resolved = opened + (hours * US_PER_HOUR).astype(np.int64)
    score = np.clip(np.round(4.7 - 0.6 * np.log1p(hours / 24) + rng.normal(0, 0.8, customer.size)), 1, 5)
    satisfaction = (score * (rng.random(customer.size) < np.where(stalled, 0.6, 0.85))).astype(np.int8)
    log.tickets.add(customer=customer, opened=opened, resolved=resolved, category=category, satisfaction=satisfaction)
    return tickets.extend(customer, opened, resolved, satisfaction)


def _evolve_engagement(rng, state: _State, tickets: _TicketPool, month_start: int) -> None:
    """At a month start, after its cancellations: the month's engagement and disengaging state.

    A random walk with drift around a slowly falling baseline; customers enter the disengaging state
    (more often with an open ticket) and leave it at random. Both shape this month's recorded
    activity at once, so the next hazard sees them in the data."""
    n = state.status.size
    live = np.flatnonzero(state.status != SIGNED_UP_LATER)
    still_open = tickets.resolved >= month_start * US_PER_DAY
    open_ticket = np.bincount(tickets.customer[still_open], minlength=n)[live] > 0
    onset = rng.random(live.size) < np.where(open_ticket, 0.05, 0.02)
    recover = rng.random(live.size) < 0.15
    state.disengaging[live] = np.where(state.disengaging[live], ~recover, onset)
    state.baseline[live] -= np.float32(0.01)  # novelty wears off
    e = state.engagement[live]
    step = 0.15 * (state.baseline[live] - e) + rng.normal(0, 0.15, live.size)
    state.engagement[live] = (e + step).astype(np.float32)


# --- from simulated events to raw tables ---------------------------------------------------------

def _subscriptions_table(log: _Log, state: _State, customer_ids: pa.Array) -> pa.Table:
    closed = log.subscriptions.concat()
    still_open = np.flatnonzero(state.status == SUBSCRIBED)
    rows = {
        "customer": np.concatenate([closed["customer"], still_open]),
        "plan": np.concatenate([closed["plan"], state.plan[still_open]]),
        "start": np.concatenate([closed["start"], state.seg_start[still_open]]),
        "end": np.concatenate([closed["end"], np.zeros(still_open.size, np.int64)]),
        "reason": np.concatenate([closed["reason"], np.full(still_open.size, -1, np.int8)]),
        "is_open": np.concatenate([np.zeros(closed["customer"].size, bool), np.ones(still_open.size, bool)]),
    }
    rows = _take(rows, np.lexsort((rows["start"], rows["customer"])))
    n = rows["customer"].size
    return pa.table({
        "subscription_id": _format_ids("S", np.arange(1, n + 1), 9),
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "plan_id": _strings(PLAN_IDS, rows["plan"]),
        "start_date": _dates(rows["start"]),
        "end_date": _dates(rows["end"], rows["is_open"]),
        "cancel_reason": _strings(CANCEL_REASONS, np.maximum(rows["reason"], 0), rows["reason"] < 0),
    })


def _late_loaded_at(rng: np.random.Generator, ts: np.ndarray) -> np.ndarray:
    """Most rows load within hours; about 2% arrive 1-10 days late."""
    delay = rng.integers(5 * 60_000_000, 6 * US_PER_HOUR, ts.size)
    late = rng.random(ts.size) < 0.02
    delay[late] = rng.integers(US_PER_DAY, 10 * US_PER_DAY, late.sum())
    return ts + delay


def _transactions_table(rng, log: _Log, customer_ids: pa.Array) -> pa.Table:
    rows = log.transactions.concat()
    order = np.lexsort((rows["ts"],))
    rows = _take(rows, order)
    n = rows["ts"].size
    amount = rows["amount"]
    refund = rng.random(n) < 0.005
    amount[refund] = -amount[refund]
    outlier = rng.random(n) < 0.0005
    amount[outlier] = np.round(amount[outlier] * rng.uniform(50, 200, outlier.sum()), 2)
    columns = {"number": np.arange(1, n + 1), "customer": rows["customer"], "ts": rows["ts"],
               "amount": amount, "amount_null": rng.random(n) < 0.003, "category": rows["category"],
               "loaded": _late_loaded_at(rng, rows["ts"]),
               "spelling": _spellings(rng, rows["category"], CATEGORY_SPELLINGS, 0.9)}
    columns = _take(columns, _with_duplicates(rng, n, 0.003))
    return pa.table({
        "transaction_id": _format_ids("T", columns["number"], 10),
        "customer_id": customer_ids.take(pa.array(columns["customer"])),
        "transaction_ts": _timestamps(columns["ts"]),
        "amount": pa.array(columns["amount"], mask=columns["amount_null"]),
        "category": _strings(_flatten(CATEGORY_SPELLINGS), columns["spelling"]),
        "loaded_at": _timestamps(columns["loaded"]),
    })


def _usage_table(rng, log: _Log, customer_ids: pa.Array) -> pa.Table:
    rows = log.usage.concat()
    n = rows["day"].size
    minutes = rows["minutes"]
    outlier = rng.random(n) < 0.0005
    minutes[outlier] = np.round(rng.uniform(3000, 20000, outlier.sum()), 1)
    rows["minutes_null"] = rng.random(n) < 0.01
    rows["spelling"] = _spellings(rng, rows["feature"], FEATURE_SPELLINGS, 0.9)
    rows = _take(rows, _with_duplicates(rng, n, 0.002))
    return pa.table({
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "activity_date": _dates(rows["day"]),
        "sessions": pa.array(rows["sessions"].astype(np.int32)),
        "minutes": pa.array(rows["minutes"], mask=rows["minutes_null"]),
        "feature_used": _strings(_flatten(FEATURE_SPELLINGS), rows["spelling"]),
    })


def _tickets_table(rng, log: _Log, customer_ids: pa.Array, end_day: int) -> pa.Table:
    rows = log.tickets.concat()
    rows = _take(rows, np.argsort(rows["opened"], kind="stable"))
    n = rows["opened"].size
    unresolved = rows["resolved"] >= (end_day + 1) * US_PER_DAY
    return pa.table({
        "ticket_id": _format_ids("K", np.arange(1, n + 1), 8),
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "opened_at": _timestamps(rows["opened"]),
        "resolved_at": _timestamps(np.where(unresolved, 0, rows["resolved"]), unresolved),
        "category": _messy_strings(rng, rows["category"], _casing_variants(TICKET_CATEGORIES), 0.85),
        "satisfaction": pa.array(rows["satisfaction"].astype(np.int32), mask=rows["satisfaction"] == 0),
    })


def _web_table(rng, log: _Log, customer_ids: pa.Array) -> pa.Table:
    rows = log.web.concat()
    n = rows["ts"].size
    return pa.table({
        "session_id": _format_ids("W", np.arange(1, n + 1), 10),
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "session_start": _timestamps(rows["ts"]),
        "pages": pa.array(rows["pages"].astype(np.int32)),
        "device": _messy_strings(rng, rows["device"], _casing_variants(DEVICES), 0.85),
    })


def _email_table(rng, log: _Log, customer_ids: pa.Array, month_starts: np.ndarray) -> pa.Table:
    rows = log.email.concat()
    n = rows["ts"].size
    rows["number"] = np.arange(1, n + 1)
    rows["spelling"] = _spellings(rng, rows["kind"], EMAIL_SPELLINGS, 0.9)
    rows = _take(rows, _with_duplicates(rng, n, 0.005))
    campaign_month = month_starts[rows["campaign"] // 2].astype("datetime64[D]").astype("datetime64[M]")
    month_index, campaign_month_code = np.unique(campaign_month, return_inverse=True)
    names = [f"CMP-{str(mm)}-{ab}" for mm in month_index for ab in "ab"]
    return pa.table({
        "event_id": _format_ids("E", rows["number"], 10),
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "campaign_id": _strings(names, 2 * campaign_month_code + rows["campaign"] % 2),
        "event_type": _strings(_flatten(EMAIL_SPELLINGS), rows["spelling"]),
        "event_ts": _timestamps(rows["ts"]),
    })


def _truth_table(log: _Log, customer_ids: pa.Array) -> pa.Table:
    rows = log.truth.concat()
    return pa.table({
        "customer_id": customer_ids.take(pa.array(rows["customer"])),
        "month": _dates(rows["month"]),
        "churn_hazard": pa.array(rows["hazard"].astype(np.float64)),
    })


# --- public API ---------------------------------------------------------------------------------

def simulate(customers: int, seed: int, start: datetime.date = datetime.date(2023, 1, 1),
             end: datetime.date = datetime.date(2025, 12, 31)) -> DemoData:
    """Simulate `customers` customers over [start, end]; the same seed gives identical tables.

    Examples
    --------
    >>> data = simulate(500, seed=7)
    >>> sorted(data.tables) == sorted(TABLE_NAMES)
    True
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if end <= start:
        raise ValueError("end must be after start")
    rng_people, rng_identity, rng_consent, rng_history, rng_mess = (
        np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(5))
    start_day, end_day = _day_number(start), _day_number(end)
    month_starts = _month_starts(start, end)
    attrs = _customer_attributes(rng_people, customers, start_day, end_day)
    customers_table = _customers_table(rng_identity, attrs)
    customer_ids = customers_table.column("customer_id").combine_chunks()
    consent_events, consent_windows = _consent(rng_consent, attrs, end_day)
    prices = _Prices(_price_schedule(start))
    log, state = _simulate_months(rng_history, attrs, consent_windows, prices, start_day, end_day, month_starts)
    plans, plan_prices = _plan_tables(prices.schedule)
    tables = {
        "customers": customers_table,
        "plans": plans,
        "plan_prices": plan_prices,
        "subscriptions": _subscriptions_table(log, state, customer_ids),
        "transactions": _transactions_table(rng_mess, log, customer_ids),
        "product_usage": _usage_table(rng_mess, log, customer_ids),
        "support_tickets": _tickets_table(rng_mess, log, customer_ids, end_day),
        "web_sessions": _web_table(rng_mess, log, customer_ids),
        "email_events": _email_table(rng_mess, log, customer_ids, month_starts),
        "consent_events": _consent_table(consent_events, customer_ids, attrs["ccpa"]),
    }
    return DemoData(tables=tables, truth=_truth_table(log, customer_ids))


def write_raw(con: duckdb.DuckDBPyConnection, data: DemoData, schema: str = "raw") -> None:
    """Create or replace every raw table in `schema` of the current database, in one transaction."""
    catalog = con.execute("SELECT current_database()").fetchall()[0][0]
    target = ".".join('"' + part.replace('"', '""') + '"' for part in (catalog, schema))
    views = {name: f"__churnwh_demo_{name}" for name in data.tables}
    for name, view in views.items():
        con.register(view, data.tables[name])
    try:
        con.begin()
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {target}")
            for name, view in views.items():
                con.execute(f'CREATE OR REPLACE TABLE {target}."{name}" AS SELECT * FROM "{view}"')
                faults.point("load.raw_table")
            con.commit()
        except BaseException:
            con.rollback()
            raise
    finally:
        for view in views.values():
            con.unregister(view)


def write_truth(data: DemoData, path: pathlib.Path) -> None:
    """Write the ground-truth hazards to a Parquet file (never into a warehouse file)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data.truth, path)


# --- the oracle: true label probabilities given the state at an observation date -----------------

class _NullCollector(_Collector):
    """A collector that keeps nothing (the oracle needs no behaviour rows)."""

    def add(self, **columns: np.ndarray) -> None:
        return None


def _oracle_log() -> _Log:
    null = _NullCollector
    return _Log(subscriptions=_Collector(), usage=null(), transactions=null(), tickets=null(),
                web=null(), email=null(), truth=_Collector())


def _tile_state(state: _State, copies: int) -> _State:
    def tile(values: np.ndarray) -> np.ndarray:
        return np.tile(values, copies) if values.ndim == 1 else np.tile(values, (1, copies))
    return _State(**{name: tile(getattr(state, name)) for name in state.__dataclass_fields__})


def _tile_tickets(tickets: _TicketPool, n: int, copies: int) -> _TicketPool:
    shift = np.repeat(np.arange(copies, dtype=np.int64) * n, tickets.customer.size)
    return _TicketPool(np.tile(tickets.customer, copies) + shift, np.tile(tickets.opened, copies),
                       np.tile(tickets.resolved, copies), np.tile(tickets.satisfaction, copies))


def _overlap_fraction(lo: np.ndarray, hi: np.ndarray, a: int, b: int) -> np.ndarray:
    """Share of the integer days [lo, hi) that fall in [a, b) (0 where the range is empty)."""
    width = hi - lo
    inside = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0, None)
    return np.where(width > 0, inside / np.maximum(width, 1), 0.0)


def churn_oracle(customers: int, seed: int, observation_date: datetime.date, *,
                 start: datetime.date = datetime.date(2023, 1, 1),
                 end: datetime.date = datetime.date(2025, 12, 31), lead_days: int = 14,
                 label_window_days: int = 90, replicates: int = 64,
                 chunk_customer_months: int = 2_000_000) -> pa.Table:
    """The true probability of the training label given each customer's full state at a date.

    For ``observation_date`` (a month start), re-runs ``simulate(customers, seed, start, end)`` up
    to that month (the same random streams, so the same customers in the same state: engagement,
    disengaging, the recorded activity of the last 90 days, tickets, e-mail history, plan, tenure),
    then continues the simulator's own
    transition model ``replicates`` times from that state, months ahead until the label window ends.
    The label is the one ``marts.training_set`` builds: the active period ends (a cancellation not
    followed by a re-signup within the gap) in ``[t + lead_days, t + lead_days + label_window_days)``,
    for rows whose period did not end in ``[t, t + lead_days)``. So the oracle is

        p = P(first period end in [t + lead, t + lead + window)) / (1 - P(first end in [t, t + lead)))

    estimated without sampling the end itself (Rao-Blackwellized): along every simulated path,
    month k contributes ``[not ended before k] * churn_hazard_k * (share of the month's possible
    cancellation days inside the interval)``, which is the exact conditional probability of an end
    in that part of month k given the path so far. Only the evolution of the state (engagement,
    disengaging, recorded activity, tickets, e-mail, plan changes, earlier cancellations) is sampled, so a few dozen replicates give a
    precise estimate. No model can beat this: it sees the hidden state, not only the data before t.

    Returns
    -------
    pyarrow.Table
        ``customer_id``, ``observation_date``, ``oracle_probability`` for every customer at risk at
        the observation date (inside an active period at that month start).
    """
    t = _day_number(observation_date)
    rng_people, _, rng_consent, rng_history, _ = (
        np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(5))
    start_day, end_day = _day_number(start), _day_number(end)
    month_starts = _month_starts(start, end)
    if t not in set(month_starts[:-1].tolist()):
        raise ValueError(f"observation_date {observation_date} is not a month start inside the history")
    window_end = t + lead_days + label_window_days
    if window_end > end_day + 1:
        raise ValueError(f"the label window of {observation_date} ends after the history end {end}")
    attrs = _customer_attributes(rng_people, customers, start_day, end_day)
    _, consent = _consent(rng_consent, attrs, end_day)
    prices = _Prices(_price_schedule(start))
    state = _initial_state(rng_history, attrs, start_day)
    tickets = _TicketPool()
    m0 = int(np.flatnonzero(month_starts == t)[0])
    for m in range(m0):
        tickets = _simulate_month(rng_history, m, int(month_starts[m]), int(month_starts[m + 1]), state,
                                  attrs, consent, prices, tickets, _oracle_log(), customers)
    at_risk = np.flatnonzero((state.status == SUBSCRIBED) | (state.status == SHORT_GAP))
    months = [m for m in range(m0, month_starts.size - 1) if month_starts[m] < window_end]
    copies_per_chunk = max(1, min(replicates, chunk_customer_months // max(customers * len(months), 1)))
    window_sum = np.zeros(customers)
    early_sum = np.zeros(customers)
    done = 0
    chunk = 0
    while done < replicates:
        copies = min(copies_per_chunk, replicates - done)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, m0, chunk, 7919])))
        n = customers * copies
        tiled_attrs = {name: np.tile(values, copies) for name, values in attrs.items()}
        tiled_consent = _ConsentWindows(np.tile(consent.granted, copies), np.tile(consent.withdrawn, copies),
                                        np.tile(consent.regranted, copies))
        sim_state, sim_tickets = _tile_state(state, copies), _tile_tickets(tickets, customers, copies)
        ended = np.zeros(n, dtype=bool)
        window_p = np.zeros(n)
        early_p = np.zeros(n)
        for m in months:
            ms, me = int(month_starts[m]), int(min(month_starts[m + 1], end_day + 1))
            status = sim_state.status.copy()
            return_day, seg_start = sim_state.return_day.copy(), sim_state.seg_start.copy()
            log = _oracle_log()
            sim_tickets = _simulate_month(rng, m, ms, me, sim_state, tiled_attrs, tiled_consent, prices,
                                          sim_tickets, log, n)
            truth = log.truth.chunks[0]
            who, hazard = truth["customer"], truth["hazard"]
            # possible cancellation days: [max(lo, segment start + 1), month end)
            returning = status[who] == SHORT_GAP
            lo = np.where(returning, return_day[who], ms)
            lo = np.maximum(lo, np.where(returning, return_day[who], seg_start[who]) + 1)
            alive = ~ended[who]
            window_p[who] += alive * hazard * _overlap_fraction(lo, np.full(who.size, me), t + lead_days, window_end)
            early_p[who] += alive * hazard * _overlap_fraction(lo, np.full(who.size, me), t, t + lead_days)
            if log.subscriptions.chunks:
                closed = log.subscriptions.concat()
                cancelled = closed["customer"][closed["reason"] >= 0]
                ended[cancelled[np.isin(sim_state.status[cancelled], (AWAY, GONE))]] = True
        window_sum += window_p.reshape(copies, customers).sum(axis=0)
        early_sum += early_p.reshape(copies, customers).sum(axis=0)
        done += copies
        chunk += 1
    probability = (window_sum / replicates) / np.maximum(1.0 - early_sum / replicates, 1e-9)
    customer_ids = _format_ids("C", np.arange(1, customers + 1), 8)
    return pa.table({
        "customer_id": customer_ids.take(pa.array(at_risk)),
        "observation_date": _dates(np.full(at_risk.size, t)),
        "oracle_probability": pa.array(np.clip(probability[at_risk], 0.0, 1.0)),
    })
