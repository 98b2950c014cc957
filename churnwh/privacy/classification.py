"""Privacy classification of every source column (the ``raw`` schema of the private warehouse).

Every column of every ``raw.*`` table must appear here; an unclassified column stops the build
(``classify_sources``), naming the table and the column, so a new source column is never used
before someone decided what it is. Classes:

- ``direct_identifier``: identifies a person on its own (id, name, e-mail, phone, address, exact
  birth date). Never leaves ``raw``; only the keyed pseudonym stands in for the customer.
- ``quasi_identifier``: identifies in combination (region, gender, signup date); coarsened or
  grouped (k-anonymity) before publication.
- ``sensitive``: personal but not identifying, needs care (cancellation reasons in free text).
- ``pseudonym``: the keyed HMAC pseudonym (raw.customer_keys.customer_pseudonym).
- ``plain``: everything else.
"""

from __future__ import annotations

import duckdb

from churnwh.errors import ChurnwhError
from churnwh.store import warehouse

DIRECT_IDENTIFIER = "direct_identifier"
QUASI_IDENTIFIER = "quasi_identifier"
SENSITIVE = "sensitive"
PSEUDONYM = "pseudonym"
PLAIN = "plain"
CLASSES = (DIRECT_IDENTIFIER, QUASI_IDENTIFIER, SENSITIVE, PSEUDONYM, PLAIN)

D, Q, S, P, _ = DIRECT_IDENTIFIER, QUASI_IDENTIFIER, SENSITIVE, PSEUDONYM, PLAIN

SOURCE_COLUMNS: dict[str, dict[str, str]] = {
    "raw.customers": {
        "customer_id": D,
        "full_name": D,
        "email": D,
        "phone": D,
        "street_address": D,
        "birth_date": D,
        "gender": Q,
        "region": Q,
        "signup_date": Q,
        "acquisition_channel": _,
    },
    "raw.customer_keys": {"customer_id": D, "customer_pseudonym": P},
    "raw.plans": {"plan_id": _, "plan_name": _, "tier_rank": _},
    "raw.plan_prices": {"plan_id": _, "monthly_price": _, "valid_from": _},
    "raw.subscriptions": {
        "subscription_id": _,
        "customer_id": D,
        "plan_id": _,
        "start_date": _,
        "end_date": _,
        "cancel_reason": S,
    },
    "raw.transactions": {
        "transaction_id": _,
        "customer_id": D,
        "transaction_ts": _,
        "amount": _,
        "category": _,
        "loaded_at": _,
    },
    "raw.product_usage": {"customer_id": D, "activity_date": _, "sessions": _, "minutes": _, "feature_used": _},
    "raw.support_tickets": {
        "ticket_id": _,
        "customer_id": D,
        "opened_at": _,
        "resolved_at": _,
        "category": _,
        "satisfaction": _,
    },
    "raw.web_sessions": {"session_id": _, "customer_id": D, "session_start": _, "pages": _, "device": _},
    "raw.email_events": {"event_id": _, "customer_id": D, "campaign_id": _, "event_type": _, "event_ts": _},
    "raw.consent_events": {
        "event_id": _,
        "customer_id": D,
        "purpose": _,
        "action": _,
        "event_ts": _,
        "source": _,
        "regulation": _,
    },
}

PSEUDONYM_SOURCE = ("raw.customer_keys", "customer_pseudonym")
"""The one way a customer may leave ``raw``: the keyed pseudonym."""

GENERALIZATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("staging.customers", "birth_month"): ("raw.customers.birth_date", "date_trunc"),
}
"""Reviewed coarsenings of a direct identifier into a quasi-identifier: (model, output column) ->
(the one direct-identifier source it may read, a function its SELECT expression must apply). The
lineage proof accepts such a column only if nothing else identifying reaches it and the function
is there; downstream of it the value counts as a quasi-identifier."""


def classification(table: str, column: str) -> str | None:
    return SOURCE_COLUMNS.get(table, {}).get(column)


def direct_identifiers() -> list[tuple[str, str]]:
    """Every (raw table, column) classified as a direct identifier."""
    return [
        (table, column)
        for table, columns in SOURCE_COLUMNS.items()
        for column, kind in columns.items()
        if kind == DIRECT_IDENTIFIER
    ]


def quasi_identifier_names(project=None) -> set[str]:
    """Column names that are quasi-identifiers: in the sources and in any model header."""
    names = {column for columns in SOURCE_COLUMNS.values() for column, kind in columns.items() if kind == Q}
    names |= {"age_band", "birth_month"}
    if project is not None:
        for model in project.models.values():
            names |= {name for name, column in model.columns.items() if column.privacy == Q}
    return names


def classify_sources(con: duckdb.DuckDBPyConnection) -> int:
    """Fail on the first source column without a classification; return the number classified."""
    checked = 0
    prefix = f"{warehouse.RAW_SCHEMA}."
    for relation in sorted(warehouse.relations(con)):
        if not relation.startswith(prefix):
            continue
        for column in warehouse.columns(con, relation):
            if classification(relation, column) is None:
                raise ChurnwhError(
                    f"source column {relation}.{column} is not classified: add it to SOURCE_COLUMNS in "
                    "churnwh/privacy/classification.py as direct_identifier, quasi_identifier, sensitive, pseudonym or plain"
                )
            checked += 1
    return checked
