"""`simulate`: every raw table of the demo warehouse and the truth, from a customer count and a seed."""

from __future__ import annotations

import datetime

import numpy as np

from churnwh.sources.demo.advance import start_continuation
from churnwh.sources.demo.people import (
    _consent,
    _consent_table,
    _customer_attributes,
    _customers_table,
    _plan_tables,
    _price_schedule,
    _Prices,
)
from churnwh.sources.demo.simulation import _simulate_months
from churnwh.sources.demo.tables import (
    DemoData,
    _email_table,
    _subscription_rows,
    _subscriptions_arrow,
    _tickets_table,
    _transactions_table,
    _truth_table,
    _usage_table,
    _web_table,
)
from churnwh.sources.demo.vocabulary import _day_number, _month_starts


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
    log, state, tickets = _simulate_months(rng_history, attrs, consent_windows, prices, start_day, end_day,
                                           month_starts)
    plans, plan_prices = _plan_tables(prices.schedule)
    subscription_rows = _subscription_rows(log, state)
    tables = {
        "customers": customers_table,
        "plans": plans,
        "plan_prices": plan_prices,
        "subscriptions": _subscriptions_arrow(subscription_rows, np.arange(1, subscription_rows["customer"].size + 1),
                                              customer_ids),
        "transactions": _transactions_table(rng_mess, log, customer_ids),
        "product_usage": _usage_table(rng_mess, log, customer_ids),
        "support_tickets": _tickets_table(rng_mess, log, customer_ids, end_day),
        "web_sessions": _web_table(rng_mess, log, customer_ids),
        "email_events": _email_table(rng_mess, log, customer_ids, month_starts),
        "consent_events": _consent_table(consent_events, customer_ids, attrs["ccpa"]),
    }
    truth = _truth_table(log, customer_ids)
    continuation = start_continuation(
        parameters={"customers": customers, "seed": seed, "start": str(start), "end": str(end)}, start=start,
        end=end, attrs=attrs, consent=consent_windows, state=state, tickets=tickets,
        subscription_rows=subscription_rows, tables=tables, rng_history=rng_history, rng_mess=rng_mess, seed=seed)
    return DemoData(tables=tables, truth=truth, continuation=continuation)
