"""Vocabularies, rates and the small date and random helpers every part of the demo simulator shares."""

from __future__ import annotations

import datetime

import numpy as np

PLAN_IDS = ("basic", "standard", "premium", "family")
PLAN_NAMES = ("Basic", "Standard", "Premium", "Family")
PLAN_SIGNUP_SHARE = np.array([0.36, 0.34, 0.18, 0.12])
PLAN_EFFECT = np.array([0.5, 0.0, -0.25, -0.7], dtype=np.float32)
PLAN_ENGAGEMENT = np.array([-0.2, 0.0, 0.25, 0.15], dtype=np.float32)
# (months after `start`, plan, new monthly price); first row of each plan is the launch price.
LAUNCH_PRICES = (9.99, 15.99, 24.99, 29.99)
PRICE_CHANGES = ((8, 1, 17.99), (13, 3, 27.99), (15, 0, 11.99), (21, 2, 27.99), (26, 1, 19.99))

CHANNELS = ("organic", "paid_search", "social", "referral", "partner")
CHANNEL_SHARE = np.array([0.34, 0.24, 0.18, 0.14, 0.10])
CHANNEL_EFFECT = np.array([-0.15, 0.5, 0.3, -0.5, 0.05], dtype=np.float32)
CHANNEL_VARIANTS = [[c, c.upper(), c.title(), f" {c}"] for c in CHANNELS]

REGIONS = ("north", "south", "east", "west", "central")
REGION_SHARE = np.array([0.22, 0.2, 0.2, 0.23, 0.15])
REGION_IS_CCPA = np.array([False, True, False, True, False])
REGION_VARIANTS = [[r, r.upper() + " ", r.title(), f" {r}", r.upper()] for r in REGIONS]

GENDER_VARIANTS = [["F", "female", "Female"], ["M", "male", " Male"], ["X"]]
GENDER_SHARE = np.array([0.49, 0.48, 0.03])

TRANSACTION_CATEGORIES = ("subscription", "add_on", "merchandise", "gift_card")
FEATURES = ("dashboard", "reports", "search", "export", "mobile_app", "sharing")
DEVICES = ("desktop", "mobile", "tablet")
TICKET_CATEGORIES = ("billing", "technical", "account", "cancellation")
EMAIL_EVENT_TYPES = ("sent", "opened", "clicked")
CANCEL_REASONS = ("too_expensive", "not_using", "support_issues", "switched_competitor",
                  "moving", "other")

FIRST_NAMES = np.array("""Emma Liam Olivia Noah Ava Elijah Sophia Lucas Mia Mateo Amelia Levi Harper
    Ezra Evelyn Leo Luna Kai Nora Omar Aisha Yuki Priya Arjun Sofia Jonas Lena Felix Clara Ivan
    Zoe Hugo Ines Marta Pavel Chloe Ravi Anna Tom Julia""".split())
LAST_NAMES = np.array("""Smith Johnson Garcia Miller Davis Martinez Lopez Wilson Anderson Taylor
    Thomas Moore Jackson Martin Lee Perez Thompson White Harris Clark Lewis Young Walker Hall
    Allen King Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell Roberts Carter
    Phillips Evans Turner Novak Schmidt Rossi Silva Kim Nguyen""".split())
STREET_NAMES = np.array("""Oak Maple Pine Cedar Elm Birch Willow Lake Hill River Park Church Mill
    Station High Main Spring Meadow Forest Garden Sunset Harbor Bridge Orchard""".split())
STREET_KINDS = np.array(["Street", "Avenue", "Road", "Lane", "Drive", "Way", "Court"])
MAIL_DOMAINS = np.array(["example.com", "mail.example.org", "inbox.example.net", "post.example.com"])

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000
Q_SHORT_RETURN = 0.2
Q_LONG_RETURN = 0.1
PLAN_CHANGE_RATE = 0.012


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _day_number(d: datetime.date) -> int:
    return (d - datetime.date(1970, 1, 1)).days


def _month_starts(start: datetime.date, end: datetime.date) -> np.ndarray:
    """Day numbers of the first day of every month from start's month to the month after end."""
    first = np.datetime64(start, "M")
    last = np.datetime64(end, "M") + 1
    return np.arange(first, last + 1).astype("datetime64[D]").astype(np.int64)


def _day_of_month(days: np.ndarray) -> np.ndarray:
    as_date = days.astype("datetime64[D]")
    return (as_date - as_date.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64)


def _draw_categories(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row of `probs` (rows sum to 1), by inverse CDF."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None] * cdf[:, -1:]
    return (u > cdf).sum(axis=1).astype(np.int8)


def _uniform_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A uniform integer day in [lo, hi) per row (hi > lo)."""
    return lo + np.floor(rng.random(lo.shape[0]) * (hi - lo)).astype(np.int64)
