"""Which features a retention team can act on: the per-customer reasons list only those.

A reason such as "age band (lowers risk)" or "days since signup: very low (raises risk)" is true but
gives an agent nothing to do or say. Features fall into three groups:

- **withheld**: quasi-identifiers, sensitive and direct identifiers (privacy class). Never listed nor
  summarised per customer: their contribution would disclose their value (tests/test_inference.py).
- **profile** (not actionable): who the customer is and how they came, not what they do: demographics
  (age, gender, region, household, ...), tenure and subscription history, acquisition channel, and
  data-availability indicators (missing / withheld / unknown flags). Summed per customer into one
  ``profile_contribution``.
- **actionable**: everything else: usage, engagement, price and plan, support tickets, e-mail
  engagement, payments. The top reasons are the strongest of these.

The default is a rule on the feature's name: its words (split at ``_``, other punctuation and
camelCase) against ``PROFILE_WORDS`` and ``AVAILABILITY_WORDS``. ``[explain] actionable`` and
``not_actionable`` in the config override it, by exact name or glob pattern (``fnmatch``); an exact
name beats a pattern, and of two patterns ``not_actionable`` wins.
"""

from __future__ import annotations

import fnmatch
import re

from churnwh.errors import DataError

WITHHELD_CLASSES = frozenset({"quasi_identifier", "sensitive", "direct_identifier"})
PROFILE_WORDS = frozenset({
    # demographics
    "age", "ages", "gender", "sex", "birth", "birthday", "birthdate", "born", "dob", "senior", "citizen", "marital",
    "married", "partner", "spouse", "dependents", "dependent", "children", "kids", "household", "nationality", "ethnicity",
    "race", "religion", "income", "education", "occupation",
    # where the customer lives
    "region", "geography", "state", "country", "county", "city", "zip", "zipcode", "postcode", "postal", "area",
    # tenure and subscription history
    "tenure", "signup", "vintage", "cohort", "period", "periods",
    # how the customer came
    "acquisition", "acquired",
})
"""Name words of features that describe who the customer is rather than what they do."""
AVAILABILITY_WORDS = frozenset({"missing", "withheld", "unknown", "null", "isnull", "available", "availability"})
"""Name words of data-availability indicators: whether a value is known says nothing to act on."""


def name_words(name: str) -> set[str]:
    """'previous_active_periods' -> {previous, active, periods}; 'SeniorCitizen' -> {senior, citizen}."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word}


def actionable_by_name(name: str) -> bool:
    """The default rule: no word of the name is a profile or data-availability word."""
    return not name_words(name) & (PROFILE_WORDS | AVAILABILITY_WORDS)


def _matches(name: str, patterns: tuple[str, ...]) -> tuple[bool, bool]:
    """(exact name listed, a glob pattern matches)."""
    return name in patterns, any(fnmatch.fnmatchcase(name, p) for p in patterns if p != name)


def classify(features: tuple[str, ...] | list[str], privacy: dict[str, str], actionable: tuple[str, ...] = (),
             not_actionable: tuple[str, ...] = ()) -> dict[str, str]:
    """Feature -> 'withheld', 'profile' or 'actionable' (see the module docstring).

    ``actionable`` / ``not_actionable``: the config's overrides (names or glob patterns). An entry that
    matches no feature, or that would make a withheld feature actionable, is refused (DataError naming
    the key, the entry and how to fix it).
    """
    for key, entries in (("actionable", actionable), ("not_actionable", not_actionable)):
        for entry in entries:
            if not any(fnmatch.fnmatchcase(f, entry) for f in features):
                raise DataError(f"[explain] {key} lists {entry!r}, which matches no feature of the model "
                                f"(features: {', '.join(sorted(features))}): correct or remove it")
    classes = {}
    for name in features:
        yes_exact, yes_pattern = _matches(name, actionable)
        no_exact, no_pattern = _matches(name, not_actionable)
        if privacy.get(name, "plain") in WITHHELD_CLASSES:
            if yes_exact or yes_pattern:
                raise DataError(f"[explain] actionable names {name!r}, a {privacy[name]} column: its contribution "
                                "is never listed per customer (it would disclose its value); remove it from the list")
            classes[name] = "withheld"
        elif no_exact:
            classes[name] = "profile"
        elif yes_exact:
            classes[name] = "actionable"
        elif no_pattern:
            classes[name] = "profile"
        elif yes_pattern:
            classes[name] = "actionable"
        else:
            classes[name] = "actionable" if actionable_by_name(name) else "profile"
    return classes
