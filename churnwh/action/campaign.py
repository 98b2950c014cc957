"""Demo only: move the simulated business on in time, and play out a planned campaign through it.

``advance_demo`` continues the demo simulator (``churnwh.sources.demo.advance``) from its saved state
by ``days`` days for every customer and appends what happened to the raw tables (see that module for
what changes and what never does). ``simulate_campaign`` first registers a planned campaign's treated
members and effect with the simulator, then advances: inside the campaign window the treated
members' monthly churn hazard changes by their relative effect (by default heterogeneous: it depends on
each customer's state, see ``churnwh.sources.demo.uplift``), so ``churnwh pilot-report`` measures the
effect from the data the next build loads. The planted effect it reports is the churn-rate gap
(control - treated) the simulator's hazards imply for the window (``advance.planted_effect``): the mean
over the members of their true uplift, which ``uplift_truth.parquet`` beside the truth file holds per member.

Where things live: the state (hidden variables) in ``demo.truth``'s folder under ``demo_state/``, never in
a warehouse file; the truth file gains the new months; ``uplift_truth.parquet`` there is rewritten with
every played-out campaign's members and their true uplift; ``_churnwh.meta`` 'demo_end' holds the last day
the raw data cover (a demo project's default ``as_of`` is the day after it).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churnwh.action.pilot import MEMBERS, campaign
from churnwh.config import Config, demo_parameters
from churnwh.errors import ChurnwhError
from churnwh.store import warehouse

DEMO_END = "demo_end"
"""_churnwh.meta: the last day the demo's raw data cover."""


def _load_state(config: Config, con: duckdb.DuckDBPyConnection):
    from churnwh.sources.demo import advance

    if warehouse.get_meta(con, "demo_parameters") != demo_parameters(config.demo):
        raise ChurnwhError("the warehouse holds no demo data for this configuration: run `churnwh build` (or "
                           "`churnwh demo`) first")
    try:
        state = advance.load(config.demo.state)
    except advance.AdvanceError as error:
        raise ChurnwhError(str(error)) from None
    data_end = warehouse.get_meta(con, DEMO_END)
    if data_end != str(state.released_through):
        raise ChurnwhError(
            f"the demo state in {config.demo.state} ends {state.released_through} but the raw data end {data_end}: "
            "an advance was interrupted; run `churnwh demo --force` to simulate the demo again")
    return state


def _write(config: Config, con: duckdb.DuckDBPyConnection, state, release) -> None:
    """Raw rows, updates and 'demo_end' in one transaction; the state and truth files around it."""
    from churnwh.sources.demo import advance

    folder = config.demo.state
    staged, old = folder.with_name(folder.name + ".new"), folder.with_name(folder.name + ".old")
    advance.stage(state, staged)
    truth_path = config.demo.truth
    truth_staged = truth_path.with_name(truth_path.name + ".new")
    truth = pq.read_table(truth_path) if truth_path.exists() else release.truth.slice(0, 0)
    pq.write_table(pa.concat_tables([truth, release.truth.cast(truth.schema)]), truth_staged)
    uplift_path = config.demo.uplift_truth
    uplift_staged = uplift_path.with_name(uplift_path.name + ".new")
    pq.write_table(advance.uplift_truth(state), uplift_staged)
    con.begin()
    try:
        advance.write_release(con, release)
        warehouse.set_meta(con, DEMO_END, str(release.data_end))
        con.commit()
    except BaseException:
        con.rollback()
        raise
    truth_staged.replace(truth_path)
    uplift_staged.replace(uplift_path)
    advance.swap(staged, folder, old)


def advance_demo(config: Config, con: duckdb.DuckDBPyConnection, days: int) -> dict:
    """Advance the demo business by ``days`` days; returns the new data end and the rows added per table."""
    from churnwh.sources.demo import advance

    state = _load_state(config, con)
    old_end = state.released_through
    try:
        release = advance.advance(state, days)
    except advance.AdvanceError as error:
        raise ChurnwhError(str(error)) from None
    _write(config, con, state, release)
    return {"from": old_end, "data_end": release.data_end, "as_of": release.data_end + dt.timedelta(days=1),
            "rows": {name: table.num_rows for name, table in release.appends.items()},
            "customers": int(state.state.status.size)}


def simulate_campaign(con: duckdb.DuckDBPyConnection, config: Config, campaign_id: str, *, days: int = 90,
                      effect: float = 0.3, effect_model: str = "heterogeneous",
                      truth_for_everyone: bool = False) -> dict:
    """Register the campaign's treated members and effect with the simulator and advance ``days`` days;
    ``truth_for_everyone``: the uplift truth also follows every customer (``advance.register_shadow``)."""
    from churnwh.sources.demo import advance
    from churnwh.sources.demo.uplift import EFFECT_MODELS

    if not 0 <= effect <= 1:
        raise ChurnwhError(f"effect {effect} is not allowed: give the relative churn reduction from 0 to 1")
    if effect_model not in EFFECT_MODELS:
        raise ChurnwhError(f"--effect-model {effect_model} is not allowed: give one of {', '.join(EFFECT_MODELS)}")
    if days < 1:
        raise ChurnwhError(f"days {days} is not allowed: give at least 1")
    info = campaign(con, campaign_id)
    start: dt.date = info["as_of"]
    state = _load_state(config, con)
    cursor = con.cursor()
    try:
        members = cursor.sql(
            f"""SELECT k.customer_id, m.pilot_group FROM {MEMBERS} m
                JOIN {warehouse.RAW_SCHEMA}.customer_keys k USING (customer_pseudonym)
                WHERE m.campaign_id = ? ORDER BY m.customer_pseudonym""", params=[campaign_id]).to_arrow_table()
    finally:
        cursor.close()
    ids = members["customer_id"].to_pylist()
    if any(not (isinstance(i, str) and i.startswith("C") and i[1:].isdigit()) for i in ids):
        raise ChurnwhError("raw.customer_keys holds customer ids the demo simulator did not make: demo-campaign "
                           "works only on the demo warehouse")
    numbers = np.array([int(i[1:]) for i in ids], dtype=np.int64)
    treated = np.asarray(members["pilot_group"].to_pylist()) == "treatment"
    window_end = start + dt.timedelta(days=days)
    try:
        effect_from = advance.register_campaign(state, campaign_id, numbers, treated, effect, start, window_end,
                                                effect_model)
        if truth_for_everyone:
            advance.register_shadow(state, campaign_id)
        release = advance.advance(state, days)
    except advance.AdvanceError as error:
        raise ChurnwhError(str(error)) from None
    _write(config, con, state, release)
    outcome_day = (release.data_end - dt.date(1970, 1, 1)).days + 1
    planted = advance.planted_effect(advance.campaign_of(state, campaign_id), outcome_day)
    return {"effect_model": effect_model, "uplift_truth": config.demo.uplift_truth,
        "campaign_id": campaign_id, "members": int(numbers.size), "treated": int(treated.sum()),
        "effect_from": effect_from, "window_end": window_end, "data_end": release.data_end,
        "as_of": release.data_end + dt.timedelta(days=1), "planted_effect": planted,
        "rows": {name: table.num_rows for name, table in release.appends.items()},
    }

