"""`simulate`: every raw table of the demo warehouse and the truth, from a customer count and a seed.

The customers are simulated block by block (``blocks``): ``simulate_blocks`` yields one block of every
table at a time, ids numbered on from the block before; ``simulate`` joins them in memory and
``stream.write_demo`` writes each into DuckDB and the truth file as it comes.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from churnwh.sources.demo.advance import ID_COLUMN, ContinuationPart, _next_number, start_continuation
from churnwh.sources.demo.blocks import BLOCK_CUSTOMERS, block_sizes, block_streams
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
    TABLE_NAMES,
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
from churnwh.sources.demo.vocabulary import US_PER_DAY, _day_number, _month_starts

NUMBERED_TABLES = tuple(name for name in ID_COLUMN if name != "customers")
"""Tables whose ids number rows across blocks (block k's ids follow block k-1's)."""


@dataclass
class Block:
    """One block's rows of every raw table (plans and plan prices in the first block only), its truth, and
    its part of the continuation state."""

    index: int
    tables: dict[str, pa.Table]
    truth: pa.Table
    part: ContinuationPart
    numbers: dict[str, int]      # the next id of every numbered table after this block (``advance.ID_COLUMN``)


def _check(customers: int, start: datetime.date, end: datetime.date, block_customers: int) -> None:
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if end <= start:
        raise ValueError("end must be after start")


def simulate_blocks(customers: int, seed: int, start: datetime.date = datetime.date(2023, 1, 1),
                    end: datetime.date = datetime.date(2025, 12, 31),
                    block_customers: int = BLOCK_CUSTOMERS) -> Iterator[Block]:
    """The demo's blocks in customer order; ids of every table continue from block to block."""
    _check(customers, start, end, block_customers)
    start_day, end_day = _day_number(start), _day_number(end)
    month_starts = _month_starts(start, end)
    prices = _Prices(_price_schedule(start))
    numbers = dict.fromkeys(NUMBERED_TABLES, 1)
    first = 0
    for index, size in enumerate(block_sizes(customers, block_customers)):
        tables, truth, part = _simulate_block(block_streams(seed, index), first, size, numbers, prices,
                                              start_day, end_day, month_starts)
        if index == 0:
            plans, plan_prices = _plan_tables(prices.schedule)
            tables = {"customers": tables.pop("customers"), "plans": plans, "plan_prices": plan_prices} | tables
        first += size
        block = Block(index, tables, truth, part, {"customers": first + 1} | numbers)
        del tables, truth, part
        yield block
        del block  # the caller holds it: one block in memory while the next is simulated


def _simulate_block(streams: list[np.random.Generator], first: int, n: int, numbers: dict[str, int],
                    prices: _Prices, start_day: int, end_day: int, month_starts: np.ndarray):
    """Customers ``first + 1 .. first + n``: their raw rows (ids from ``numbers``, advanced in place),
    truth and continuation part."""
    rng_people, rng_identity, rng_consent, rng_history, rng_mess = streams
    attrs = _customer_attributes(rng_people, n, start_day, end_day)
    customers_table = _customers_table(rng_identity, attrs, first_number=first + 1)
    customer_ids = customers_table.column("customer_id").combine_chunks()
    consent_events, consent_windows = _consent(rng_consent, attrs, end_day)
    log, state, tickets = _simulate_months(rng_history, attrs, consent_windows, prices, start_day, end_day,
                                           month_starts)
    subscription_rows = _subscription_rows(log, state)
    first_subscription = numbers["subscriptions"]
    first_ticket = numbers["support_tickets"]
    tables = {
        "customers": customers_table,
        "subscriptions": _subscriptions_arrow(
            subscription_rows, np.arange(first_subscription, first_subscription + subscription_rows["customer"].size),
            customer_ids),
        "transactions": _transactions_table(rng_mess, log, customer_ids, numbers["transactions"]),
        "product_usage": _usage_table(rng_mess, log, customer_ids),
        "support_tickets": _tickets_table(rng_mess, log, customer_ids, end_day, first_ticket),
        "web_sessions": _web_table(rng_mess, log, customer_ids, numbers["web_sessions"]),
        "email_events": _email_table(rng_mess, log, customer_ids, month_starts, numbers["email_events"]),
        "consent_events": _consent_table(consent_events, customer_ids, attrs["ccpa"], numbers["consent_events"]),
    }
    numbers["subscriptions"] += subscription_rows["customer"].size
    numbers["support_tickets"] += tickets.customer.size
    numbers["consent_events"] += consent_events["ts"].size
    for name in ("transactions", "web_sessions", "email_events"):  # ids numbered before duplicates are planted
        if tables[name].num_rows:
            numbers[name] = _next_number(tables[name], name)
    truth = _truth_table(log, customer_ids)
    is_open = subscription_rows["is_open"]
    ticket_order = np.argsort(tickets.opened, kind="stable")
    open_tickets = np.flatnonzero(tickets.resolved[ticket_order] >= (end_day + 1) * US_PER_DAY)
    part = ContinuationPart(
        first=first, attrs=attrs, consent=consent_windows, state=state, tickets=tickets,
        segments={"number": first_subscription + np.flatnonzero(is_open).astype(np.int64),
                  "customer": first + subscription_rows["customer"][is_open].astype(np.int64),
                  "plan": subscription_rows["plan"][is_open].astype(np.int8),
                  "start": subscription_rows["start"][is_open].astype(np.int64)},
        resolutions={"number": first_ticket + open_tickets.astype(np.int64),
                     "resolved": tickets.resolved[ticket_order][open_tickets].astype(np.int64)},
        rng_history=rng_history.bit_generator.state, rng_mess=rng_mess.bit_generator.state)
    return tables, truth, part


def simulate(customers: int, seed: int, start: datetime.date = datetime.date(2023, 1, 1),
             end: datetime.date = datetime.date(2025, 12, 31), block_customers: int = BLOCK_CUSTOMERS) -> DemoData:
    """Simulate `customers` customers over [start, end]; the same seed gives identical tables.

    Everything in memory (``stream.write_demo`` writes the same tables block by block instead).

    Examples
    --------
    >>> data = simulate(500, seed=7)
    >>> sorted(data.tables) == sorted(TABLE_NAMES)
    True
    """
    blocks = list(simulate_blocks(customers, seed, start, end, block_customers))
    tables = {name: pa.concat_tables([b.tables[name] for b in blocks if name in b.tables]) for name in TABLE_NAMES}
    truth = pa.concat_tables([b.truth for b in blocks])
    continuation = start_continuation(
        parameters={"customers": customers, "seed": seed, "start": str(start), "end": str(end)}, start=start,
        end=end, parts=[b.part for b in blocks], numbers=blocks[-1].numbers, seed=seed)
    return DemoData(tables=tables, truth=truth, continuation=continuation)
