"""Which column dates the rows of each source (its event time), and how long each source may lag.

The demo's raw tables are declared here. A declared source ([sources.NAME]) names its column with
``event_time`` (``""``: a static table), else it is inferred: a table of many rows per customer with
exactly one plain DATE or TIMESTAMP column named like an event time (``event_ts``, ``opened_at``,
``activity_date``; not ``valid_from``, ``start_date`` or ``loaded_at``) is dated by it; a
one-row-per-customer table (a label or ``unique_id``) is static; anything else is not known, is not
checked, and shows as ``unknown`` in ``data_quality``.
"""

from __future__ import annotations

import re

from churnwh.config import Config, SourceConfig
from churnwh.errors import ConfigError
from churnwh.store.freshness import EVENT, STATIC, UNKNOWN, Declaration

CONSENT_SOURCE = "consent_events"

DEMO_EVENT_TIMES: dict[str, str | None] = {
    "customers": None,        # one row per customer: signup_date is an attribute, not an event
    "plans": None,
    "plan_prices": None,      # a price schedule: valid_from changes rarely
    "subscriptions": "start_date",
    "transactions": "transaction_ts",
    "product_usage": "activity_date",
    "support_tickets": "opened_at",
    "web_sessions": "session_start",
    "email_events": "event_ts",
    "consent_events": "event_ts",
}
DEMO_MAX_LAG_DAYS: dict[str, int] = {
    # sparse events: in a demo of a few hundred customers days or weeks pass without one
    "subscriptions": 62,
    "support_tickets": 31,
    "email_events": 31,       # campaigns are sent twice a month
    "consent_events": 92,     # consent changes are rare
}
"""Demo sources that legitimately lag more than [freshness] max_lag_days (unless the config names them)."""


EVENT_NAME = re.compile(r"(^|_)(ts|at|time|timestamp|date|day|on|start)$")
"""A column name that reads as when something happened: event_ts, opened_at, activity_date, session_start."""
NOT_EVENT_NAME = re.compile(r"valid|birth|signup|expir|effective|resolved|closed|loaded|(^|_)end(_|$)|^start(_|$)")
"""Names of validity bounds, attributes and bookkeeping times (valid_from, birth_date, loaded_at)."""


def infer(source: SourceConfig) -> tuple[str | None, str]:
    """(event-time column, kind) of a declared source.

    Only an events table is inferred: a one-row-per-customer table (a label or unique ids) is static, and
    consent decisions are too rare to be dated by default (declare ``event_time`` to check them)."""
    if source.event_time is not None:
        return (source.event_time, EVENT) if source.event_time else (None, STATIC)
    if source.label or source.unique_id:
        return None, STATIC
    if source.name == CONSENT_SOURCE:
        return None, UNKNOWN
    dated = [c.name for c in source.columns if c.type in ("DATE", "TIMESTAMP") and c.privacy == "plain"
             and EVENT_NAME.search(c.name.lower()) and not NOT_EVENT_NAME.search(c.name.lower())]
    return (dated[0], EVENT) if len(dated) == 1 else (None, UNKNOWN)


def declarations(config: Config) -> list[Declaration]:
    """Every source's event time and tolerance: the demo's raw tables, or the declared sources."""
    fresh = config.freshness
    if config.source == "demo":
        unknown = sorted(set(fresh.source_max_lag_days) - set(DEMO_EVENT_TIMES))
        if unknown:
            raise ConfigError(f"freshness.source_max_lag_days names {unknown[0]!r}, which is no demo source: use one "
                              f"of {', '.join(DEMO_EVENT_TIMES)}")
        return [Declaration(name, column, EVENT if column else STATIC,
                            fresh.source_max_lag_days.get(name, max(DEMO_MAX_LAG_DAYS.get(name, 0), fresh.max_lag_days)))
                for name, column in DEMO_EVENT_TIMES.items()]
    result = []
    for source in config.sources:
        column, kind = infer(source)
        lag = source.max_lag_days if source.max_lag_days is not None else \
            fresh.source_max_lag_days.get(source.name, fresh.max_lag_days)
        result.append(Declaration(source.name, column, kind, lag))
    return result
