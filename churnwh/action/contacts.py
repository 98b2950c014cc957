"""The retention team's contact list, campaign-aware: `churnwh contacts`.

Two lists, both of customers whose latest marketing consent is granted and who did not object to
profiling:

- ``--tier T``: the scored customers of risk tier T, **less every customer in the control group of an
  active campaign** (``churnwh.action.pilot.active_campaigns``). The list is still written (a pilot runs
  for months and the retention team keeps working meanwhile), and the number held back is reported;
  contacting a held-out customer would make the control group a treated one and the pilot's effect
  meaningless.
- ``--campaign ID``: the treated group of that campaign's plan, and only it (less anyone held out by
  another active campaign, which a plan made after it never selects anyway).

Each row carries its top reasons in words (``reason_1`` .. ``reason_3``): the customer's strongest
actionable drivers that raise their risk in ``ml.churn_drivers`` (usage, engagement, price and plan,
support, e-mail), never the customer profile (tenure, acquisition channel, demographics) nor a withheld
attribute (quasi-identifiers such as age band, gender or region) that an agent cannot and must not
talk about.
Re-identification, the file and the audit record are ``churnwh.privacy.access.export_contacts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from churnwh.action import pilot
from churnwh.action.report import reasons_in_words
from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.privacy import access
from churnwh.stages.score import contactable_condition
from churnwh.store import warehouse

SCORES = "ml.churn_scores"
CONSENT_STATE = "staging.consent_state"
TIERS = ("high", "medium", "low")
REASONS = 3


@dataclass(frozen=True)
class ContactExport:
    rows: int
    """Customers written to the file."""
    held_back: int
    """Contactable customers of the selection left out because they are in an active control group."""
    active_campaigns: tuple[str, ...]
    """The campaigns whose pilot runs on the scores' date."""
    campaign: str | None = None
    tier: str | None = None


def _planned_action(config: Config) -> str:
    """The action of the tier a member was planned in (what the campaign treats them with)."""
    return ("CASE CAST(m.risk_tier AS VARCHAR) " + " ".join(
        f"WHEN {warehouse.sql_literal(t)} THEN {warehouse.sql_literal(a)}" for t, a in config.tiers.actions.items())
        + " END")


def _selection(config: Config, campaign: str | None, tier: str | None) -> tuple[str, list]:
    """(query, parameters) of the contactable candidates, in export order, before any hold-out."""
    if campaign is None:
        return (f"""SELECT s.customer_pseudonym, CAST(s.risk_tier AS VARCHAR) AS risk_tier, s.churn_probability,
                        s.value_at_risk, s.priority_rank, s.action, s.as_of
                    FROM {SCORES} AS s WHERE CAST(s.risk_tier AS VARCHAR) = ? AND {contactable_condition('s.customer_pseudonym')}
                    ORDER BY s.priority_rank, s.customer_pseudonym""", [tier])
    # The treated group as planned; the score columns are the current scores (empty for a member no
    # longer scored, e.g. one whose subscription has ended since).
    return (f"""SELECT m.customer_pseudonym, CAST(s.risk_tier AS VARCHAR) AS risk_tier, s.churn_probability,
                    s.value_at_risk, s.priority_rank,
                    {_planned_action(config)} AS action, s.as_of,
                    m.campaign_id, m.risk_tier AS planned_tier
                FROM {pilot.MEMBERS} AS m LEFT JOIN {SCORES} AS s USING (customer_pseudonym)
                WHERE m.campaign_id = ? AND m.pilot_group = 'treatment' AND {contactable_condition('m.customer_pseudonym')}
                ORDER BY s.priority_rank NULLS LAST, m.customer_pseudonym""", [campaign])


def export(config: Config, output: Path, *, tier: str | None = None, campaign: str | None = None) -> ContactExport:
    """Write the contact list (see the module docstring) to ``output`` (CSV, 0600) and log it."""
    if campaign is not None and tier is not None:
        raise ChurnwhError("--tier and --campaign do not go together: a campaign's list is its whole treated "
                           "group (contacting part of it changes what the pilot measures); drop --tier")
    if campaign is None:
        tier = tier or "high"
        if tier not in TIERS:
            raise ChurnwhError(f"--tier {tier!r} is not allowed: use one of {', '.join(TIERS)}")
    with warehouse.open_private(config) as con:
        relations = warehouse.relations(con)
        for needed in (SCORES, "raw.customers", CONSENT_STATE):
            if needed not in relations:
                raise ChurnwhError(f"{needed} does not exist: run `churnwh build` first")
        if campaign is not None:
            pilot.campaign(con, campaign)  # an unknown id is refused, naming the known ones
        running = pilot.active_campaigns(con, config, pilot.scores_date(con, config))
        query, parameters = _selection(config, campaign, tier)
        candidates = con.sql(query, params=parameters).to_arrow_table()
        held = {row[0] for row in con.execute(pilot.held_out_sql(running)).fetchall()}
        keep = [p not in held for p in candidates["customer_pseudonym"].to_pylist()]
        selection = candidates.filter(pa.array(keep, pa.bool_()))
        pseudonyms = selection["customer_pseudonym"].to_pylist()
        # the build explains the tiers acted on and a sample ([explain] sample_customers): a list of other
        # customers (the low tier) gets theirs now, so that everyone on a contact list has reasons
        from churnwh.stages.explain import explain_customers

        explain_customers(con, config, pseudonyms)
        words = reasons_in_words(con, pseudonyms, REASONS)
        texts = [words.get(p, []) for p in pseudonyms]
        for n in range(REASONS):
            selection = selection.append_column(
                f"reason_{n + 1}", pa.array([t[n] if len(t) > n else None for t in texts], pa.string()))
        held_back = candidates.num_rows - selection.num_rows
        rows = access.export_contacts(con, config, selection, output, detail={
            "tier": tier, "campaign": campaign, "held_back_control": held_back, "active_campaigns": running})
    return ContactExport(rows=rows, held_back=held_back, active_campaigns=tuple(running), campaign=campaign,
                         tier=tier)
