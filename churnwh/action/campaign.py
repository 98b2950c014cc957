"""Demo only: play out a planned campaign in the simulated raw data, with a planted treatment effect.

``simulate_campaign`` advances time for the members of a campaign: each member churns within
``days`` after the campaign date with probability ``p`` (their churn probability from the plan,
taken as the truth of this simulation), treated members with ``p x (1 - effect)``. A churn ends the
member's open subscriptions in ``raw.subscriptions`` on a uniform day in the window. Building with
``as_of`` moved past the window then lets ``churnwh pilot-report`` measure the effect, whose true
value (the planted absolute reduction of the churn rate) is ``effect x mean(p)`` over the members.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa

from churnwh.action.pilot import MEMBERS, campaign
from churnwh.errors import ChurnwhError
from churnwh.store import warehouse


def simulate_campaign(con: duckdb.DuckDBPyConnection, campaign_id: str, *, days: int = 90, effect: float = 0.3,
                      seed: int = 0) -> dict:
    """Write the members' outcomes into raw.subscriptions; returns the planted figures."""
    if not 0 <= effect <= 1:
        raise ChurnwhError(f"effect {effect} is not allowed: give the relative churn reduction from 0 to 1")
    if days < 1:
        raise ChurnwhError(f"days {days} is not allowed: give at least 1")
    if "raw.subscriptions" not in warehouse.relations(con):
        raise ChurnwhError("raw.subscriptions does not exist: the campaign simulation needs the demo warehouse")
    info = campaign(con, campaign_id)
    start: dt.date = info["as_of"]
    cursor = con.cursor()
    try:
        members = cursor.sql(
            f"""SELECT k.customer_id, m.churn_probability, m.pilot_group FROM {MEMBERS} m
                JOIN raw.customer_keys k USING (customer_pseudonym)
                WHERE m.campaign_id = ? ORDER BY m.customer_pseudonym""", params=[campaign_id]).to_arrow_table()
    finally:
        cursor.close()
    p = np.asarray(members["churn_probability"].to_pylist(), dtype=float)
    treated = np.asarray(members["pilot_group"].to_pylist()) == "treatment"
    rng = np.random.default_rng(seed)
    churn_p = np.where(treated, p * (1 - effect), p)
    churned = rng.random(p.size) < churn_p
    end_days = rng.integers(0, days, size=p.size)
    ends = pa.table({
        "customer_id": members["customer_id"].filter(pa.array(churned)),
        "end_date": pa.array([start + dt.timedelta(days=int(d)) for d in end_days[churned]], pa.date32()),
    })
    con.register("_campaign_ends", ends)
    try:
        con.execute(
            """UPDATE raw.subscriptions AS s SET end_date = e.end_date, cancel_reason = 'campaign_window'
               FROM _campaign_ends e WHERE s.customer_id = e.customer_id AND s.end_date IS NULL
               AND s.start_date < e.end_date""")
    finally:
        con.unregister("_campaign_ends")
    return {
        "campaign_id": campaign_id, "members": int(p.size), "churned": int(churned.sum()),
        "window_end": start + dt.timedelta(days=days),
        "planted_effect": float(effect * p.mean()) if p.size else 0.0,
    }
