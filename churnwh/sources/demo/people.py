"""Who the customers are: their attributes and identities, their consent decisions, the plans and prices."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from churnwh.sources.demo.arrow import _dates, _format_ids, _messy_strings, _strings, _take, _timestamps
from churnwh.sources.demo.vocabulary import (
    CHANNEL_SHARE,
    CHANNEL_VARIANTS,
    CHANNELS,
    FIRST_NAMES,
    GENDER_SHARE,
    GENDER_VARIANTS,
    LAST_NAMES,
    LAUNCH_PRICES,
    MAIL_DOMAINS,
    PLAN_ENGAGEMENT,
    PLAN_IDS,
    PLAN_NAMES,
    PLAN_SIGNUP_SHARE,
    PRICE_CHANGES,
    REGION_IS_CCPA,
    REGION_SHARE,
    REGION_VARIANTS,
    REGIONS,
    STREET_KINDS,
    STREET_NAMES,
    US_PER_DAY,
    US_PER_HOUR,
    _day_number,
)

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


def _customers_table(rng: np.random.Generator, attrs: dict[str, np.ndarray], first_number: int = 1) -> pa.Table:
    n = attrs["signup_day"].size
    number = np.arange(first_number, first_number + n)
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


def _consent_table(events: dict[str, np.ndarray], customer_ids: pa.Array, ccpa: np.ndarray,
                   first_number: int = 1) -> pa.Table:
    n = events["ts"].size
    return pa.table({
        "event_id": _format_ids("CE", np.arange(first_number, first_number + n), 9),
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
