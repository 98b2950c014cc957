"""Moving the simulated business on in time: the continuation state, month by month, released by day.

``simulate`` ends with a ``Continuation``: every hidden variable of the simulation (engagement,
disengaging, recorded activity, ticket pool, scheduled returns, consent windows, the random streams)
and the bookkeeping a later advance needs (the next id of every table, the subscriptions still open
in the raw data, the tickets still unresolved there). ``advance`` continues the same monthly loop:

* The simulation runs in whole months; the data are released by day. An advance to day ``D``
  simulates every month that starts on or before ``D`` and releases the rows dated on or before
  ``D``; the rest of the month waits in the buffer for a later advance. Released history never
  changes: event tables only get new rows, and the only updates are the ones a source system makes
  to its current-state rows, an open subscription's ``end_date`` and ``cancel_reason`` when it ends and
  an open ticket's ``resolved_at`` when it is resolved.
* The same customers go on (hazard, cancellations, short and long re-signups, plan changes, usage,
  purchases, tickets, web visits, e-mail campaigns); new customers arrive at the history's signup
  rate with their own consent at signup; consent changes go on (marketing withdrawals and re-grants,
  profiling objections) and the list prices keep rising now and then (``LATER_PRICE_RISES``).
* A campaign registered with ``register_campaign`` changes its treated members' monthly hazard by their
  relative effect inside its window (see ``_CampaignEffects`` and ``uplift``); the truth records the hazard
  applied, ``uplift_truth`` both potential outcomes of every member.

Determinism: the same seed and the same sequence of advances and campaigns give identical tables.
An advance is *not* the same draw as simulating to the later end directly: which customers join
during the history depends on ``demo.end`` (signup days are drawn over the history), the raw-table
messiness is drawn month by month instead of once per table, and customers arriving after the
first end are new draws. What holds is continuity: the first advanced month's hazards are the ones
the original simulation would have used, from the same state.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnwh.sources.demo.arrow import _dates, _format_ids, _take, _timestamps
from churnwh.sources.demo.people import (
    NEVER,
    _consent,
    _consent_table,
    _ConsentWindows,
    _customer_attributes,
    _customers_table,
    _price_schedule,
    _Prices,
)
from churnwh.sources.demo.simulation import (
    SIGNED_UP_LATER,
    SUBSCRIBED,
    _Log,
    _simulate_month,
    _State,
    _TicketPool,
)
from churnwh.sources.demo.tables import (
    _email_table,
    _subscriptions_arrow,
    _tickets_table,
    _transactions_table,
    _truth_table,
    _usage_table,
    _web_table,
)
from churnwh.sources.demo.uplift import EFFECT_MODELS, RESPONSES, counted_share, relative_effect
from churnwh.sources.demo.vocabulary import (
    PLAN_IDS,
    Q_SHORT_RETURN,
    US_PER_DAY,
    US_PER_HOUR,
    _day_number,
    _day_of_month,
)

STATE_VERSION = 1
LATER_PRICE_RISES = ((2, 0, 1.08), (5, 3, 1.07), (9, 2, 1.07), (12, 1, 1.10))
"""(months after the first end's month, plan, factor): list-price rises of every year after the history."""
SIGNUP_SHARE_DURING = 0.7
"""Share of the simulated customers who join during the history (``people._customer_attributes``)."""
EVENT_COLUMN = {
    "customers": "signup_date", "plan_prices": "valid_from", "transactions": "transaction_ts",
    "product_usage": "activity_date", "support_tickets": "opened_at", "web_sessions": "session_start",
    "email_events": "event_ts", "consent_events": "event_ts",
}
"""The date that releases a row of each buffered table."""
ID_COLUMN = {
    "customers": ("customer_id", "C", 8), "subscriptions": ("subscription_id", "S", 9),
    "transactions": ("transaction_id", "T", 10), "support_tickets": ("ticket_id", "K", 8),
    "web_sessions": ("session_id", "W", 10), "email_events": ("event_id", "E", 10),
    "consent_events": ("event_id", "CE", 9),
}


class AdvanceError(ValueError):
    """The demo cannot be advanced as asked."""


def day_to_date(day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(day))


def month_start(start: dt.date, index: int) -> int:
    """Day number of the first day of the ``index``-th month from ``start``'s month."""
    return int((np.datetime64(start, "M") + index).astype("datetime64[D]").astype(np.int64))


# --- campaigns ---------------------------------------------------------------------------------


@dataclass
class _Campaign:
    campaign_id: str
    members: np.ndarray       # customer positions, sorted
    treated: np.ndarray       # bool per member
    effect: float             # --effect: the strength of the relative hazard change (uplift.relative_effect)
    first_day: int            # first day the effect applies (the first day not simulated at registration)
    end_day: int              # first day after the window
    no_cancel: np.ndarray     # per member: probability, if not contacted, of no cancellation in the window so far
    no_cancel_contacted: np.ndarray  # the same if contacted (both from the same month-start states)
    response: np.ndarray      # per member: uplift.RESPONSES index of the first month at risk in the window
    effect_model: str = "uniform"
    tau: np.ndarray = field(default_factory=lambda: np.zeros(0))  # this month's relative effect per member
    shadow: bool = False      # no one treated, no draws: only both potential outcomes (``register_shadow``)


class _CampaignEffects:
    """The registered campaigns as the monthly loop applies them.

    Inside a campaign's window a treated member's hazard of the month is ``p x (1 - tau x w)``, ``tau`` the
    member's relative effect from the month-start state (``uplift.relative_effect``), ``w`` the share of the
    month inside the window. A positive ``tau``: a cancellation drawn on a day inside the window is prevented
    with probability ``tau``; a negative one: a member who draws no cancellation cancels on a day inside the
    window with probability ``p x w x -tau / (1 - p)`` (own random stream for both). For every member
    (treated or not) both potential outcomes are accumulated, to state the true uplift."""

    def __init__(self, campaigns: list[_Campaign], rng: np.random.Generator) -> None:
        self.campaigns = campaigns
        self.rng = rng

    def hazard(self, at_risk: np.ndarray, p: np.ndarray, ms: int, me: int, *, disengaging: np.ndarray,
               rec, email_affinity: np.ndarray, plan: np.ndarray) -> np.ndarray:
        """The hazard applied to ``at_risk`` (``p`` without the effect; ``rec`` their ``simulation._Record``)."""
        applied = p.copy()
        for c in self.campaigns:
            c.tau = np.zeros(c.members.size)
            lo, hi = max(c.first_day, ms), min(c.end_day, me)
            if hi <= lo or at_risk.size == 0:
                continue
            share = (hi - lo) / (me - ms)
            pos = np.minimum(np.searchsorted(at_risk, c.members), at_risk.size - 1)
            present = at_risk[pos] == c.members
            at = pos[present]
            tau, kind = relative_effect(c.effect, c.effect_model, disengaging=disengaging[at],
                                        unresolved=rec.unresolved[at], price_rise=rec.price_rise[at],
                                        active_days_30d=rec.active_days_30d[at],
                                        active_days_90d=rec.active_days_90d[at], email_affinity=email_affinity[at],
                                        period_months=rec.period_months[at],
                                        mean_satisfaction=rec.mean_satisfaction[at], plan=plan[at])
            c.tau[present] = tau
            first = present.copy()
            first[present] = c.response[present] == RESPONSES.index("not_at_risk")
            c.response[first] = kind[first[present]]
            c.no_cancel[present] *= 1 - p[at] * share
            c.no_cancel_contacted[present] *= 1 - np.clip(p[at] * share * (1 - tau), 0, 1)
            treated = present & c.treated
            applied[pos[treated]] *= 1 - c.tau[treated] * share
        return np.clip(applied, 0, 1)

    def keep(self, cancels: np.ndarray, cancel_day: np.ndarray) -> np.ndarray:
        """Which drawn cancellations happen: treated members' inside a window are prevented with probability tau."""
        kept = np.ones(cancels.size, dtype=bool)
        for c in self.campaigns:
            if c.shadow:
                continue
            draw = self.rng.random(cancels.size)
            inside = (cancel_day >= c.first_day) & (cancel_day < c.end_day)
            tau = self._tau_of(c, cancels)
            kept &= ~(inside & (draw < tau))
        return kept

    def added(self, at_risk: np.ndarray, p: np.ndarray, drawn: np.ndarray, ms: int, me: int,
              earliest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cancellations a contact causes (negative tau): customers and days inside the window, on or after
        ``earliest`` (per at-risk customer); ``drawn`` marks the customers who drew a cancellation anyway."""
        who, days = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        taken = drawn.copy()
        for c in self.campaigns:
            if c.shadow:
                continue
            lo, hi = max(c.first_day, ms), min(c.end_day, me)
            draw, when = self.rng.random(at_risk.size), self.rng.random(at_risk.size)
            if hi <= lo:
                continue
            tau = self._tau_of(c, at_risk)
            first = np.maximum(earliest, lo)
            q = p * (hi - lo) / (me - ms) * np.maximum(-tau, 0) / np.maximum(1 - p, 1e-9)
            add = ~taken & (tau < 0) & (first < hi) & (draw < q)
            taken |= add
            who.append(at_risk[add])
            days.append((first + (when * (hi - first)).astype(np.int64))[add])
        return np.concatenate(who), np.concatenate(days)

    @staticmethod
    def _tau_of(c: _Campaign, customers: np.ndarray) -> np.ndarray:
        """This month's relative effect of ``customers`` who are treated members of ``c`` (0 for the others)."""
        if c.members.size == 0 or customers.size == 0:
            return np.zeros(customers.size)
        pos = np.minimum(np.searchsorted(c.members, customers), c.members.size - 1)
        member = (c.members[pos] == customers) & c.treated[pos]
        return np.where(member, c.tau[pos] if c.tau.size else 0.0, 0.0)


def _outcome_day(campaign: _Campaign, outcome_day: int | None) -> int:
    return campaign.end_day if outcome_day is None else min(campaign.end_day, outcome_day)


def potential_outcomes(campaign: _Campaign, outcome_day: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per member: the probability of churn counted by ``outcome_day`` (default and at most the window end) if
    not contacted and if contacted, as the pilot report counts churn then (``uplift.counted_share``)."""
    counted = counted_share(campaign.first_day, campaign.end_day, _outcome_day(campaign, outcome_day),
                            Q_SHORT_RETURN)
    return (1 - campaign.no_cancel) * counted, (1 - campaign.no_cancel_contacted) * counted


def planted_effect(campaign: _Campaign, outcome_day: int | None = None) -> float:
    """The churn-rate gap (control - treated) the effect is expected to cause by ``outcome_day``: the mean true
    uplift over the members (``uplift_truth``), which the pilot report estimates (members are assigned at random)."""
    if campaign.members.size == 0:
        return 0.0
    not_contacted, contacted = potential_outcomes(campaign, outcome_day)
    return float(np.mean(not_contacted - contacted))


def uplift_truth(cont: Continuation) -> pa.Table:
    """Every registered campaign's members with both potential outcomes and the true uplift, as of the window
    end or the released data end if earlier (see ``uplift``): the file beside the churn truth."""
    ids = _customer_ids(cont.state.status.size)
    parts = []
    for c in cont.campaigns:
        outcome = min(c.end_day, cont.info["released_through"] + 1)
        not_contacted, contacted = potential_outcomes(c, outcome)
        k = c.members.size
        parts.append(pa.table({
            "campaign_id": pa.array([c.campaign_id] * k, pa.string()),
            "customer_id": ids.take(pa.array(c.members)),
            "treated": pa.array(c.treated),
            "effect_model": pa.array([c.effect_model] * k, pa.string()),
            "response": pa.array([RESPONSES[i] for i in c.response], pa.string()),
            "churn_if_contacted": pa.array(contacted),
            "churn_if_not_contacted": pa.array(not_contacted),
            "uplift": pa.array(not_contacted - contacted),
            "window_start": _dates(np.full(k, c.first_day, np.int64)),
            "outcome_date": _dates(np.full(k, outcome, np.int64)),
        }))
    return pa.concat_tables(parts) if parts else UPLIFT_TRUTH_SCHEMA.empty_table()


UPLIFT_TRUTH_SCHEMA = pa.schema([
    ("campaign_id", pa.string()), ("customer_id", pa.string()), ("treated", pa.bool_()),
    ("effect_model", pa.string()), ("response", pa.string()), ("churn_if_contacted", pa.float64()),
    ("churn_if_not_contacted", pa.float64()), ("uplift", pa.float64()), ("window_start", pa.date32()),
    ("outcome_date", pa.date32())])


# --- the continuation state ----------------------------------------------------------------------


@dataclass
class Continuation:
    """Everything an advance needs; saved outside the warehouse (it holds hidden variables)."""

    info: dict
    attrs: dict[str, np.ndarray]
    consent: _ConsentWindows
    state: _State
    tickets: _TicketPool
    segments: dict[str, np.ndarray]      # subscriptions not final in the raw data (number 0: not released)
    resolutions: dict[str, np.ndarray]   # released tickets still open in the raw data: number, resolved
    buffer: dict[str, pa.Table]          # simulated rows dated after the released end
    campaigns: list[_Campaign] = field(default_factory=list)

    @property
    def released_through(self) -> dt.date:
        return day_to_date(self.info["released_through"])


def _next_number(table: pa.Table, name: str) -> int:
    column, prefix, _ = ID_COLUMN[name]
    if table.num_rows == 0:
        return 1
    return int(pc.max(table.column(column)).as_py()[len(prefix):]) + 1


def _rng(state: dict) -> np.random.Generator:
    bits = np.random.PCG64()
    bits.state = state
    return np.random.Generator(bits)


@dataclass
class ContinuationPart:
    """One block of customers' share of the continuation (``generate.simulate_blocks``): customer positions
    in ``segments`` are global, those in ``tickets`` and ``state`` local to the block (from ``first``)."""

    first: int
    attrs: dict[str, np.ndarray]
    consent: _ConsentWindows
    state: _State
    tickets: _TicketPool
    segments: dict[str, np.ndarray]      # the block's open subscriptions: number, customer, plan, start
    resolutions: dict[str, np.ndarray]   # the block's tickets still open at the end: number, resolved
    rng_history: dict                    # the block's streams at the end (the advance goes on with block 0's)
    rng_mess: dict


def _joined_state(parts: list[ContinuationPart]) -> _State:
    """The blocks' states side by side (customers are the last axis of every array)."""
    return _State(**{f.name: np.concatenate([getattr(p.state, f.name) for p in parts], axis=-1)
                     for f in fields(_State)})


def start_continuation(*, parameters: dict, start: dt.date, end: dt.date, parts: list[ContinuationPart],
                       numbers: dict[str, int], seed: int) -> Continuation:
    """The continuation at the end of ``simulate``: the blocks' parts in customer order joined into one state;
    ``numbers`` is the next id of every table of ``ID_COLUMN``. The advance continues the first block's
    history and mess streams for everyone (one block: exactly the streams the history ended with)."""
    end_day = _day_number(end)
    months = int((np.datetime64(end, "M") - np.datetime64(start, "M")).astype(int)) + 1
    customers = sum(p.state.status.size for p in parts)
    growth, campaign = (np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(k,))))
                        for k in (5, 6))
    info = {
        "version": STATE_VERSION, "parameters": parameters, "start": str(start), "first_end": str(end),
        "next_month": months, "released_through": end_day, "simulated_through": end_day,
        "aligned": month_start(start, months) == end_day + 1,
        "arrivals_per_day": SIGNUP_SHARE_DURING * customers / (end_day - _day_number(start) + 1),
        "numbers": dict(numbers),
        "rng": {"history": parts[0].rng_history, "mess": parts[0].rng_mess,
                "growth": growth.bit_generator.state, "campaign": campaign.bit_generator.state},
    }
    segments = {name: np.concatenate([p.segments[name] for p in parts]) for name in ("number", "customer", "plan",
                                                                                     "start")}
    segments |= {"end": np.full(segments["number"].size, NEVER, dtype=np.int64),
                 "reason": np.full(segments["number"].size, -1, dtype=np.int8)}
    resolutions = {name: np.concatenate([p.resolutions[name] for p in parts]) for name in ("number", "resolved")}
    tickets = _TicketPool(np.concatenate([p.tickets.customer + p.first for p in parts]),
                          *(np.concatenate([getattr(p.tickets, name) for p in parts])
                            for name in ("opened", "resolved", "satisfaction")))
    attrs = {name: np.concatenate([p.attrs[name] for p in parts]) for name in parts[0].attrs}
    consent = _ConsentWindows(*(np.concatenate([getattr(p.consent, f.name) for p in parts])
                                for f in fields(_ConsentWindows)))
    base_prices = _price_schedule(start)
    later = _later_price_rows(base_prices, end)
    buffer = {"plan_prices": pa.table({
        "plan_id": pa.array([PLAN_IDS[p] for _, p, _ in later], pa.string()),
        "monthly_price": pa.array([price for _, _, price in later], pa.float64()),
        "valid_from": _dates(np.array([d for d, _, _ in later], dtype=np.int64)),
    })}
    return Continuation(info=info, attrs=attrs, consent=consent, state=_joined_state(parts), tickets=tickets,
                        segments=segments, resolutions=resolutions, buffer=buffer)


def _later_price_rows(schedule: list[tuple[int, int, float]], end: dt.date, years: int = 30) -> list:
    """Yearly list-price rises after the history end (``LATER_PRICE_RISES``)."""
    current = {}
    for _, plan, price in sorted(schedule):
        current[plan] = price
    rows = []
    for year in range(years):
        for months, plan, factor in LATER_PRICE_RISES:
            day = int((np.datetime64(end, "M") + 12 * year + months).astype("datetime64[D]").astype(np.int64))
            current[plan] = round(round(current[plan] * factor) - 0.01, 2)
            rows.append((day, plan, current[plan]))
    return rows


def _prices(cont: Continuation) -> _Prices:
    start = dt.date.fromisoformat(cont.info["start"])
    schedule = _price_schedule(start) + _later_price_rows(_price_schedule(start),
                                                          dt.date.fromisoformat(cont.info["first_end"]))
    return _Prices(sorted(schedule))


# --- saving and loading ------------------------------------------------------------------------------


def _state_arrays(cont: Continuation) -> dict[str, np.ndarray]:
    arrays = {f"attrs.{k}": v for k, v in cont.attrs.items()}
    arrays |= {f"consent.{f.name}": getattr(cont.consent, f.name) for f in fields(_ConsentWindows)}
    arrays |= {f"state.{f.name}": getattr(cont.state, f.name) for f in fields(_State)}
    arrays |= {f"tickets.{f.name}": getattr(cont.tickets, f.name) for f in fields(_TicketPool)}
    arrays |= {f"segments.{k}": v for k, v in cont.segments.items()}
    arrays |= {f"resolutions.{k}": v for k, v in cont.resolutions.items()}
    for i, c in enumerate(cont.campaigns):
        arrays |= {f"campaign{i}.members": c.members, f"campaign{i}.treated": c.treated,
                   f"campaign{i}.no_cancel": c.no_cancel, f"campaign{i}.no_cancel_contacted": c.no_cancel_contacted,
                   f"campaign{i}.response": c.response}
    return arrays


def save(cont: Continuation, folder: Path) -> None:
    """Write the state to ``folder`` (replaced as a whole: a new folder beside it, then renamed)."""
    folder = Path(folder)
    staged, old = folder.with_name(folder.name + ".new"), folder.with_name(folder.name + ".old")
    stage(cont, staged)
    swap(staged, folder, old)


def stage(cont: Continuation, staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)
    (staged / "buffer").mkdir(parents=True)
    np.savez(staged / "arrays.npz", **_state_arrays(cont))
    for name, table in cont.buffer.items():
        pq.write_table(table, staged / "buffer" / f"{name}.parquet")
    campaigns = [{"campaign_id": c.campaign_id, "effect": c.effect, "effect_model": c.effect_model,
                  "first_day": c.first_day, "end_day": c.end_day, "shadow": c.shadow} for c in cont.campaigns]
    (staged / "state.json").write_text(json.dumps({**cont.info, "campaigns": campaigns}, indent=1))


def swap(staged: Path, folder: Path, old: Path) -> None:
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staged.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def read_info(folder: Path) -> dict | None:
    """The state's JSON part (parameters, released end), or None when there is no state."""
    path = Path(folder) / "state.json"
    return json.loads(path.read_text()) if path.exists() else None


def load(folder: Path) -> Continuation:
    folder = Path(folder)
    info = read_info(folder)
    if info is None or info.get("version") != STATE_VERSION:
        raise AdvanceError(f"{folder} holds no demo state of this version: run `churnwh demo --force` to simulate "
                           "the demo again (it writes the state)")
    with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}

    campaigns = []
    for i, c in enumerate(info.pop("campaigns")):
        arrays_of = group(f"campaign{i}")
        if "no_cancel_contacted" not in arrays_of:
            raise AdvanceError(f"{folder} was written by an older churnwh (campaign {c['campaign_id']} has no record "
                               "of its per-customer effect): run `churnwh demo --force` to simulate the demo again")
        campaigns.append(_Campaign(campaign_id=c["campaign_id"], effect=c["effect"], first_day=c["first_day"],
                                   end_day=c["end_day"], effect_model=c["effect_model"],
                                   shadow=c.get("shadow", False), **arrays_of))
    buffer = {p.stem: pq.read_table(p) for p in sorted((folder / "buffer").glob("*.parquet"))}
    return Continuation(info=info, attrs=group("attrs"), consent=_ConsentWindows(**group("consent")),
                        state=_State(**group("state")), tickets=_TicketPool(**group("tickets")),
                        segments=group("segments"), resolutions=group("resolutions"), buffer=buffer,
                        campaigns=campaigns)


# --- campaigns ---------------------------------------------------------------------------------------


def register_campaign(cont: Continuation, campaign_id: str, customer_numbers: np.ndarray, treated: np.ndarray,
                      effect: float, window_start: dt.date, window_end: dt.date,
                      effect_model: str = EFFECT_MODELS[0]) -> dt.date:
    """Change the treated members' hazard in [window_start, window_end) by their relative effect
    (``uplift.relative_effect`` of ``effect`` and ``effect_model``); returns the first day the effect applies
    (the first day not simulated yet, when the window starts inside a simulated month)."""
    if effect_model not in EFFECT_MODELS:
        raise AdvanceError(f"effect model {effect_model!r} is not allowed: give one of {', '.join(EFFECT_MODELS)}")
    if any(c.campaign_id == campaign_id for c in cont.campaigns):
        raise AdvanceError(f"campaign {campaign_id} already plays out in the demo: plan a new campaign")
    positions = np.asarray(customer_numbers, dtype=np.int64) - 1
    known = (positions >= 0) & (positions < cont.state.status.size)
    order = np.argsort(positions[known], kind="stable")
    members, treated = positions[known][order], np.asarray(treated, dtype=bool)[known][order]
    first_day = max(_day_number(window_start), cont.info["simulated_through"] + 1)
    if first_day >= _day_number(window_end):
        raise AdvanceError(f"campaign {campaign_id}'s window {window_start} to {window_end} is already simulated "
                           f"(the demo is simulated through {day_to_date(first_day - 1)}): plan a new campaign from "
                           "the current scores")
    cont.campaigns.append(_Campaign(campaign_id, members, treated, float(effect), first_day, _day_number(window_end),
                                    no_cancel=np.ones(members.size), no_cancel_contacted=np.ones(members.size),
                                    response=np.full(members.size, RESPONSES.index("not_at_risk"), np.int8),
                                    effect_model=effect_model))
    return day_to_date(first_day)


SHADOW_SUFFIX = "+everyone"
"""A shadow campaign's id is its campaign's id with this suffix."""


def register_shadow(cont: Continuation, campaign_id: str) -> str:
    """Follow both potential outcomes of every customer over ``campaign_id``'s window, with its effect, to
    score targeting rules against every candidate (an oracle that contacts the customers a contact saves
    most), not only the campaign's members. Nobody is treated and no random number is drawn for it, so
    the simulated business is the same with or without it; its rows in ``uplift_truth`` (every customer,
    ``treated`` false) carry the campaign id plus ``SHADOW_SUFFIX``. Returns that id."""
    campaign = campaign_of(cont, campaign_id)
    everyone = np.arange(cont.state.status.size, dtype=np.int64)
    shadow = _Campaign(campaign_id + SHADOW_SUFFIX, everyone, np.zeros(everyone.size, bool), campaign.effect,
                       campaign.first_day, campaign.end_day, no_cancel=np.ones(everyone.size),
                       no_cancel_contacted=np.ones(everyone.size),
                       response=np.full(everyone.size, RESPONSES.index("not_at_risk"), np.int8),
                       effect_model=campaign.effect_model, shadow=True)
    cont.campaigns.append(shadow)
    return shadow.campaign_id


def campaign_of(cont: Continuation, campaign_id: str) -> _Campaign:
    return next(c for c in cont.campaigns if c.campaign_id == campaign_id)


# --- the advance -----------------------------------------------------------------------------------------


@dataclass
class Release:
    """What an advance adds to the raw tables and the truth."""

    appends: dict[str, pa.Table]
    subscription_ends: pa.Table     # subscription_id, end_date, cancel_reason of rows that were open
    ticket_resolutions: pa.Table    # ticket_id, resolved_at of tickets that were open
    truth: pa.Table
    data_end: dt.date


def advance(cont: Continuation, days: int) -> Release:
    """Move the business on by ``days`` days (changes ``cont`` in place); returns the rows to add."""
    if days < 1:
        raise AdvanceError(f"days {days} is not allowed: give at least 1")
    if not cont.info["aligned"]:
        raise AdvanceError(f"demo.end = {cont.info['first_end']} is not the last day of a month: the demo advances "
                           "from a month end only; set demo.end to a month end and run `churnwh demo --force`")
    target = cont.info["released_through"] + days
    truth = []
    while cont.info["simulated_through"] < target:
        truth.append(_simulate_next_month(cont))
    return _release(cont, target, truth)


def _customer_ids(n: int) -> pa.Array:
    return _format_ids("C", np.arange(1, n + 1), 8)


def _extend_customers(cont: Continuation, ms: int, me: int, rng: np.random.Generator) -> tuple[pa.Table, dict]:
    """New customers signing up in [ms, me): attributes, hidden state, identity and consent at signup."""
    k = int(rng.poisson(cont.info["arrivals_per_day"] * (me - ms)))
    attrs = _customer_attributes(rng, k, ms, me - 1)
    attrs["signup_day"] = rng.integers(ms, me, k).astype(np.int64)
    n = cont.state.status.size
    table = _customers_table(rng, attrs, first_number=n + 1)
    events, windows = _consent(rng, attrs, me - 1)
    events["customer"] = events["customer"] + n
    cont.attrs = {name: np.concatenate([cont.attrs[name], attrs[name]]) for name in cont.attrs}
    cont.consent = _ConsentWindows(*(np.concatenate([getattr(cont.consent, f.name), getattr(windows, f.name)])
                                     for f in fields(_ConsentWindows)))
    s = cont.state
    signup = attrs["signup_day"]
    grown = {
        "status": np.full(k, SIGNED_UP_LATER, np.int8), "plan": attrs["plan"].copy(), "seg_start": signup.copy(),
        "period_start": signup.copy(), "return_day": np.full(k, NEVER, np.int64), "billing_dom": _day_of_month(signup),
        "baseline": attrs["baseline"].copy(),
        "engagement": (attrs["baseline"] + rng.normal(0, 0.3, k)).astype(np.float32),
        "disengaging": np.zeros(k, bool),
    }
    for name, values in grown.items():
        setattr(s, name, np.concatenate([getattr(s, name), values.astype(getattr(s, name).dtype)]))
    for name in ("use_days", "web_days", "opens_past", "clicks_past"):
        buffer = getattr(s, name)
        setattr(s, name, np.concatenate([buffer, np.zeros((buffer.shape[0], k), buffer.dtype)], axis=1))
    return table, events


def _consent_changes(cont: Continuation, ms: int, me: int, rng: np.random.Generator) -> dict:
    """Consent decisions of existing customers in [ms, me): marketing withdrawals (about 0.6% a month of those
    opted in, once) and re-grants (2% a month of those withdrawn), profiling objections (0.15% a month)."""
    n = cont.state.status.size
    live = cont.state.status != SIGNED_UP_LATER
    c = cont.consent
    day = rng.integers(ms, me, n)
    ts = day * US_PER_DAY + rng.integers(8 * US_PER_HOUR, 22 * US_PER_HOUR, n)
    withdraw = live & c.allowed(ms) & (c.withdrawn == NEVER) & (rng.random(n) < 0.006)
    regrant = live & (c.withdrawn < ms) & (c.regranted == NEVER) & (rng.random(n) < 0.02)
    object_ = live & (rng.random(n) < 0.0015)
    gpc = cont.attrs["ccpa"] & (rng.random(n) < 0.5)
    c.withdrawn[withdraw] = day[withdraw] + 1
    c.regranted[regrant] = day[regrant] + 1
    parts = [(withdraw, 1, 1, np.where(rng.random(n) < 0.8, 1, 3)), (regrant, 1, 0, np.ones(n, np.int64)),
             (object_, 0, 1, np.where(gpc, 2, 1))]
    return {
        "customer": np.concatenate([np.flatnonzero(w) for w, *_ in parts]),
        "ts": np.concatenate([ts[w] for w, *_ in parts]),
        "purpose": np.concatenate([np.full(w.sum(), p) for w, p, *_ in parts]),
        "action": np.concatenate([np.full(w.sum(), a) for w, _, a, _ in parts]),
        "source": np.concatenate([s[w] for w, _, _, s in parts]),
    }


def _simulate_next_month(cont: Continuation) -> pa.Table:
    """Simulate the next whole month into the buffer; returns its truth rows."""
    info = cont.info
    start = dt.date.fromisoformat(info["start"])
    m = info["next_month"]
    ms, me = month_start(start, m), month_start(start, m + 1)
    rngs = {name: _rng(state) for name, state in info["rng"].items()}
    new_customers, new_consent = _extend_customers(cont, ms, me, rngs["growth"])
    changes = _consent_changes(cont, ms, me, rngs["growth"])
    consent = {k: np.concatenate([changes[k], new_consent[k]]) for k in changes}
    consent = _take(consent, np.lexsort((consent["purpose"], consent["ts"])))
    n = cont.state.status.size
    log = _Log()
    effects = _CampaignEffects(cont.campaigns, rngs["campaign"])
    cont.tickets = _simulate_month(rngs["history"], m, ms, me, cont.state, cont.attrs, cont.consent, _prices(cont),
                                   cont.tickets, log, n, effects)
    ids = _customer_ids(n)
    numbers = info["numbers"]
    rng = rngs["mess"]
    month_starts = np.array([month_start(start, i) for i in range(m + 2)], dtype=np.int64)
    made = {
        "customers": new_customers,
        "consent_events": _consent_table(consent, ids, cont.attrs["ccpa"], numbers["consent_events"]),
        "transactions": _transactions_table(rng, log, ids, numbers["transactions"]),
        "product_usage": _usage_table(rng, log, ids),
        "support_tickets": _tickets_table(rng, log, ids, NEVER // US_PER_DAY, numbers["support_tickets"]),
        "web_sessions": _web_table(rng, log, ids, numbers["web_sessions"]),
        "email_events": _email_table(rng, log, ids, month_starts, numbers["email_events"]),
    }
    for name, table in made.items():
        if name in ID_COLUMN and table.num_rows:
            numbers[name] = max(numbers[name], _next_number(table, name))
        cont.buffer[name] = pa.concat_tables([cont.buffer[name], table]) if name in cont.buffer else table
    _merge_segments(cont, log)
    info["rng"] = {name: g.bit_generator.state for name, g in rngs.items()}
    info["next_month"] = m + 1
    info["simulated_through"] = me - 1
    return _truth_table(log, ids)


def _segment_keys(customer: np.ndarray, start: np.ndarray) -> np.ndarray:
    return customer.astype(np.int64) * (1 << 24) + start.astype(np.int64)


def _merge_segments(cont: Continuation, log: _Log) -> None:
    """Record the month's subscription changes: closed segments get their end, new segments are added."""
    closed = log.subscriptions.concat()
    s = cont.state
    open_now = np.flatnonzero(s.status == SUBSCRIBED)
    seg = cont.segments
    for customer, plan, start, end, reason in (
            (closed["customer"], closed["plan"], closed["start"], closed["end"], closed["reason"]),
            (open_now, s.plan[open_now], s.seg_start[open_now], np.full(open_now.size, NEVER), None)):
        keys = _segment_keys(seg["customer"], seg["start"])
        order = np.argsort(keys, kind="stable")
        new_keys = _segment_keys(customer, start)
        pos = np.zeros(new_keys.size, dtype=np.int64)
        found = np.zeros(new_keys.size, dtype=bool)
        if keys.size:
            pos = np.minimum(np.searchsorted(keys[order], new_keys), keys.size - 1)
            found = keys[order][pos] == new_keys
        if reason is not None:
            seg["end"][order[pos[found]]] = end[found]
            seg["reason"][order[pos[found]]] = reason[found]
        add = ~found
        extra = {"number": np.zeros(add.sum(), np.int64), "customer": customer[add].astype(np.int64),
                 "plan": plan[add].astype(np.int8), "start": start[add].astype(np.int64),
                 "end": np.asarray(end)[add].astype(np.int64),
                 "reason": (reason[add] if reason is not None else np.full(add.sum(), -1)).astype(np.int8)}
        for name in seg:
            seg[name] = np.concatenate([seg[name], extra[name]])


def _event_us(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(EVENT_COLUMN[name])
    if pa.types.is_date32(column.type):
        return column.cast(pa.int32()).to_numpy().astype(np.int64) * US_PER_DAY
    return column.cast(pa.int64()).to_numpy()


def _release(cont: Continuation, target: int, truth: list[pa.Table]) -> Release:
    cutoff = (target + 1) * US_PER_DAY
    appends = {}
    for name, table in list(cont.buffer.items()):
        due = _event_us(table, name) < cutoff
        appends[name], cont.buffer[name] = table.filter(pa.array(due)), table.filter(pa.array(~due))
    tickets = appends.get("support_tickets")
    resolved_updates = _resolve_tickets(cont, cutoff)
    if tickets is not None and tickets.num_rows:
        resolved = tickets.column("resolved_at").cast(pa.int64()).to_numpy()
        still_open = resolved >= cutoff
        numbers = np.array([int(x[1:]) for x in tickets.column("ticket_id").filter(pa.array(still_open)).to_pylist()],
                           dtype=np.int64)
        cont.resolutions = {"number": np.concatenate([cont.resolutions["number"], numbers]),
                            "resolved": np.concatenate([cont.resolutions["resolved"], resolved[still_open]])}
        masked = pa.array(resolved, mask=still_open).cast(pa.timestamp("us"))
        appends["support_tickets"] = tickets.set_column(tickets.schema.get_field_index("resolved_at"),
                                                        "resolved_at", masked)
    appends["subscriptions"], ends = _release_segments(cont, target)
    cont.info["released_through"] = target
    empty_truth = pa.table({"customer_id": pa.array([], pa.string()), "month": pa.array([], pa.date32()),
                            "churn_hazard": pa.array([], pa.float64())})
    return Release(appends=appends, subscription_ends=ends, ticket_resolutions=resolved_updates,
                   truth=pa.concat_tables(truth) if truth else empty_truth, data_end=day_to_date(target))


def write_release(con, release: Release, schema: str = "raw") -> None:
    """Add a release to the raw tables of ``schema`` (inside the caller's transaction): new rows, then the ends
    of subscriptions and the resolutions of tickets that were open. Rows of customers no longer in
    ``customers`` (erased with `churnwh forget`) are not written: they stay gone."""
    views = []

    def register(name: str, table: pa.Table) -> str:
        view = f"__churnwh_advance_{name}"
        con.register(view, table)
        views.append(view)
        return view

    target = '"' + schema.replace('"', '""') + '"'
    try:
        for name in ["customers"] + sorted(set(release.appends) - {"customers"}):
            table = release.appends.get(name)
            if table is None or table.num_rows == 0:
                continue
            view = register(name, table)
            known = ("" if name in ("customers", "plan_prices") else
                     f" WHERE customer_id IN (SELECT customer_id FROM {target}.customers)")
            con.execute(f'INSERT INTO {target}."{name}" BY NAME SELECT * FROM "{view}"{known}')
        if release.subscription_ends.num_rows:
            view = register("subscription_ends", release.subscription_ends)
            con.execute(f"""UPDATE {target}.subscriptions AS s SET end_date = e.end_date, cancel_reason = e.cancel_reason
                            FROM "{view}" e WHERE s.subscription_id = e.subscription_id""")
        if release.ticket_resolutions.num_rows:
            view = register("ticket_resolutions", release.ticket_resolutions)
            con.execute(f"""UPDATE {target}.support_tickets AS t SET resolved_at = r.resolved_at
                            FROM "{view}" r WHERE t.ticket_id = r.ticket_id""")
    finally:
        for view in views:
            con.unregister(view)


def _resolve_tickets(cont: Continuation, cutoff: int) -> pa.Table:
    r = cont.resolutions
    due = r["resolved"] < cutoff
    table = pa.table({"ticket_id": _format_ids("K", r["number"][due], 8),
                      "resolved_at": _timestamps(r["resolved"][due])})
    cont.resolutions = {k: v[~due] for k, v in r.items()}
    return table


def _release_segments(cont: Continuation, target: int) -> tuple[pa.Table, pa.Table]:
    seg = cont.segments
    new = (seg["number"] == 0) & (seg["start"] <= target)
    order = np.flatnonzero(new)[np.lexsort((seg["customer"][new], seg["start"][new]))]
    first = cont.info["numbers"]["subscriptions"]
    seg["number"][order] = np.arange(first, first + order.size)
    cont.info["numbers"]["subscriptions"] = first + int(order.size)
    ended = seg["end"] <= target
    rows = {"customer": seg["customer"][order], "plan": seg["plan"][order], "start": seg["start"][order],
            "end": np.where(ended[order], seg["end"][order], 0), "reason": np.where(ended[order], seg["reason"][order], -1),
            "is_open": ~ended[order]}
    inserted = _subscriptions_arrow(rows, seg["number"][order], _customer_ids(cont.state.status.size))
    updated = ended & ~new & (seg["number"] > 0)
    ends = _subscriptions_arrow(
        {"customer": seg["customer"][updated], "plan": seg["plan"][updated], "start": seg["start"][updated],
         "end": seg["end"][updated], "reason": seg["reason"][updated], "is_open": np.zeros(updated.sum(), bool)},
        seg["number"][updated], _customer_ids(cont.state.status.size)
    ).select(["subscription_id", "end_date", "cancel_reason"])
    keep = ~(ended & (seg["number"] > 0))
    cont.segments = {k: v[keep] for k, v in seg.items()}
    return inserted, ends


__all__ = ["UPLIFT_TRUTH_SCHEMA", "AdvanceError", "Continuation", "ContinuationPart", "Release", "advance",
           "SHADOW_SUFFIX", "campaign_of", "load", "planted_effect", "potential_outcomes", "read_info", "register_campaign", "register_shadow", "save",
           "stage", "start_continuation", "swap", "uplift_truth", "write_release"]
