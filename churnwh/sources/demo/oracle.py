"""The oracle: true label probabilities given each customer's full state at an observation date."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa

from churnwh.sources.demo.arrow import _dates, _format_ids
from churnwh.sources.demo.blocks import BLOCK_CUSTOMERS, block_sizes, block_streams
from churnwh.sources.demo.people import _consent, _ConsentWindows, _customer_attributes, _price_schedule, _Prices
from churnwh.sources.demo.simulation import (
    AWAY,
    GONE,
    SHORT_GAP,
    SUBSCRIBED,
    _Collector,
    _initial_state,
    _Log,
    _simulate_month,
    _State,
    _TicketPool,
)
from churnwh.sources.demo.vocabulary import _day_number, _month_starts


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
                 chunk_customer_months: int = 2_000_000, block_customers: int = BLOCK_CUSTOMERS) -> pa.Table:
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

    Customers are continued block by block (``generate.block_streams``), each block from its own streams.

    Returns
    -------
    pyarrow.Table
        ``customer_id``, ``observation_date``, ``oracle_probability`` for every customer at risk at
        the observation date (inside an active period at that month start).
    """
    t = _day_number(observation_date)
    end_day = _day_number(end)
    month_starts = _month_starts(start, end)
    if t not in set(month_starts[:-1].tolist()):
        raise ValueError(f"observation_date {observation_date} is not a month start inside the history")
    window_end = t + lead_days + label_window_days
    if window_end > end_day + 1:
        raise ValueError(f"the label window of {observation_date} ends after the history end {end}")
    m0 = int(np.flatnonzero(month_starts == t)[0])
    parts, first = [], 0
    for block, size in enumerate(block_sizes(customers, block_customers)):
        parts.append(_block_oracle(seed, block, size, first, start, end, t, m0, month_starts, window_end,
                                   lead_days, replicates, chunk_customer_months))
        first += size
    return pa.concat_tables(parts)


def _block_oracle(seed: int, block: int, customers: int, first: int, start, end, t, m0, month_starts,
                  window_end, lead_days, replicates, chunk_customer_months) -> pa.Table:
    """The oracle of one block's customers (``first + 1 .. first + customers``), from the block's streams."""
    rng_people, _, rng_consent, rng_history, _ = block_streams(seed, block)
    start_day, end_day = _day_number(start), _day_number(end)
    attrs = _customer_attributes(rng_people, customers, start_day, end_day)
    _, consent = _consent(rng_consent, attrs, end_day)
    prices = _Prices(_price_schedule(start))
    state = _initial_state(rng_history, attrs, start_day)
    tickets = _TicketPool()
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
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, m0, chunk, 7919] + ([block] if block else []))))
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
    customer_ids = _format_ids("C", np.arange(first + 1, first + customers + 1), 8)
    return pa.table({
        "customer_id": customer_ids.take(pa.array(at_risk)),
        "observation_date": _dates(np.full(at_risk.size, t)),
        "oracle_probability": pa.array(np.clip(probability[at_risk], 0.0, 1.0)),
    })
