"""The monthly simulation: hidden state, the churn hazard, and the behaviour it leaves in the record."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from churnwh.sources.demo.people import NEVER, _ConsentWindows, _Prices
from churnwh.sources.demo.vocabulary import (
    CHANNEL_EFFECT,
    FEATURES,
    PLAN_CHANGE_RATE,
    PLAN_EFFECT,
    PLAN_IDS,
    PLAN_SIGNUP_SHARE,
    Q_LONG_RETURN,
    Q_SHORT_RETURN,
    US_PER_DAY,
    US_PER_HOUR,
    _day_of_month,
    _draw_categories,
    _sigmoid,
    _uniform_days,
)

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
                     start_day: int, end_day: int, month_starts: np.ndarray) -> tuple[_Log, _State, _TicketPool]:
    state = _initial_state(rng, attrs, start_day)
    log = _Log()
    tickets = _TicketPool()
    n = state.status.size
    for m in range(month_starts.size - 1):
        ms, me = int(month_starts[m]), int(min(month_starts[m + 1], end_day + 1))
        if ms > end_day:
            break
        tickets = _simulate_month(rng, m, ms, me, state, attrs, consent, prices, tickets, log, n)
    return log, state, tickets


def _simulate_month(rng, m, ms, me, state: _State, attrs, consent, prices: _Prices, tickets: _TicketPool,
                    log: _Log, n, effects=None) -> _TicketPool:
    """One month: hazards and cancellations, plan changes, arrivals, then the month's behaviour.

    ``effects`` (the advance's registered campaigns, ``advance._CampaignEffects``) changes treated
    customers' hazard inside a campaign window by their relative effect: the truth records the hazard
    applied, a drawn cancellation on a day inside the window is prevented with probability the effect
    when it is positive, and a contact causes cancellations when it is negative."""
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
    applied = p_cancel if effects is None else effects.hazard(
        at_risk, p_cancel, ms, me, disengaging=state.disengaging[at_risk], rec=rec,
        email_affinity=attrs["email_affinity"][at_risk], plan=state.plan[at_risk])
    log.truth.add(customer=at_risk, month=np.full(at_risk.size, ms), hazard=applied * (1 - Q_SHORT_RETURN))

    cancelling = rng.random(at_risk.size) < p_cancel
    cancels = at_risk[cancelling]
    cancel_day = _uniform_days(rng, np.maximum(lo[cancels], state.seg_start[cancels] + 1), np.full(cancels.size, me))
    reason = _cancel_reasons(rng, rec.price_rise[cancelling], rec.active_days_30d[cancelling] < 4,
                             rec.unresolved[cancelling] > 0)
    if effects is not None:
        kept = effects.keep(cancels, cancel_day)
        cancels, cancel_day, reason = cancels[kept], cancel_day[kept], reason[kept]
        earliest = np.maximum(lo[at_risk], state.seg_start[at_risk] + 1)
        added, added_day = effects.added(at_risk, p_cancel, cancelling, ms, me, earliest)
        row = np.searchsorted(at_risk, added)
        added_reason = _cancel_reasons(effects.rng, rec.price_rise[row], rec.active_days_30d[row] < 4,
                                       rec.unresolved[row] > 0)
        order = np.argsort(np.concatenate([cancels, added]), kind="stable")
        cancels, cancel_day, reason = (np.concatenate(pair)[order] for pair in
                                       ((cancels, added), (cancel_day, added_day), (reason, added_reason)))
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
