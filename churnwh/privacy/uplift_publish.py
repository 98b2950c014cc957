"""Uplift in the published file: per-customer expected uplift on churn_scores, validation and Qini curves.

The uplift stage (churnwh.stages) writes the private tables ``ml.customer_uplift``,
``ml.uplift_validation``, ``ml.uplift_curve`` (and ``ml.uplift_status`` when no model could be
fitted). Here they are generalized for BI, the way value at risk is banded:

- ``expected_uplift`` is rounded to a percentage point (0.01), and a rounded value that fewer than k
  scored customers share is replaced by the nearest value that at least k share (towards zero on a
  tie), so no uplift value singles a customer out; with fewer than k customers with an uplift, none
  is published;
- ``expected_saved_value`` is recomputed from the published ``expected_uplift`` x the customer's
  banded value over the horizon (the published ``value_at_risk / churn_probability``: value at risk
  already counts the churn probability, the churn a contact prevents does not), so dividing one
  published column by another gives back no exact private value (a price);
- ``recommended_action`` is 'contact' only for a contactable customer (latest marketing consent
  granted); everyone else is 'do not contact'. Customers who objected to profiling are not in
  churn_scores, so they get no uplift either;
- validation rows need at least k held-out members, and a Qini curve point is published only where
  the customers targeted so far (share_targeted x test_members) are at least k.

The publish check (churnwh.privacy.publish.verify -> ``problems``) tests the same rules on the
published copy.
"""

from __future__ import annotations

import duckdb

from churnwh.store import warehouse

CUSTOMER_UPLIFT = "ml.customer_uplift"
VALIDATION = "ml.uplift_validation"
CURVE = "ml.uplift_curve"
STATUS = "ml.uplift_status"
PUBLISHED_VALIDATION = "uplift_validation"
PUBLISHED_CURVE = "uplift_curve"
STEP = 0.01
"""Published expected_uplift is a multiple of this (one percentage point)."""
UPLIFT_COLUMNS = ("expected_uplift", "expected_saved_value", "recommended_action")
CONTACT, NO_CONTACT = "contact", "do not contact"
_NEEDED = ("customer_pseudonym", "as_of", "expected_uplift", "recommended_action")

SCORE_COMMENTS = {
    "expected_uplift": (
        "Estimated churn prevented by contacting this customer: P(churn if not contacted) - P(churn if contacted), "
        "from the uplift model learned on randomized pilots (treated vs control campaign members). Positive: a "
        "contact helps; near 0: the customer stays or leaves either way; negative: a contact makes churn more "
        "likely. An estimate, not a measurement: see uplift_validation for how well it ranks customers. Rounded "
        "to 0.01; a value fewer than {k} customers share is moved to the nearest one at least {k} share. NULL: "
        "no uplift model yet (the about table says why)."),
    "expected_saved_value": (
        "expected_uplift x the customer's value over the horizon (value_at_risk / churn_probability, both as "
        "published), to the cent: the value a contact is expected to save. Compare it with the cost of the contact. "
        "NULL when expected_uplift is NULL."),
    "recommended_action": (
        "'contact' when the uplift model says a contact pays (the expected saved value beats its cost) and the "
        "customer may be contacted (contactable); 'do not contact' otherwise, always for customers without "
        "marketing consent. NULL when there is no uplift model."),
}
VALIDATION_COMMENTS = {
    None: "How well each targeting rule ranks customers by the churn a contact prevents, on held-out members of "
          "randomized pilots (aggregates only; rules validated on fewer than {k} held-out members are left out).",
    "as_of": "Scoring date of the uplift model.",
    "rule": "Targeting rule: 'uplift model' (the model behind expected_uplift), 'two-model baseline' (separate "
            "churn models for treated and control), 'churn risk' (contact the highest churn probability first).",
    "qini": "Qini coefficient: area between the rule's Qini curve and random targeting; higher ranks better, 0 is "
            "no better than random.",
    "auuc": "Area under the uplift curve (churn prevented per member, averaged over all targeting depths).",
    "qini_gain_low": "Lower end of the 95% bootstrap interval of this rule's Qini minus the churn-risk rule's.",
    "qini_gain_high": "Upper end of that interval: an interval above 0 says the rule beats targeting by risk.",
    "members": "Pilot members (treated and control) the model learned from and was validated on.",
    "test_members": "Held-out pilot members the rule was validated on.",
}
CURVE_COMMENTS = {
    None: "Qini and uplift curves of each targeting rule on held-out pilot members: contact the top share of "
          "customers by the rule, and see how much churn that prevents. Points covering fewer than {k} members "
          "are left out.",
    "as_of": "Scoring date of the uplift model.",
    "rule": "Targeting rule, as in uplift_validation.",
    "share_targeted": "Share of the held-out members contacted, best first by the rule (0 to 1).",
    "qini": "Cumulative churners prevented by contacting that share, per held-out member (the Qini curve); the "
            "straight line from 0 to the last point is random targeting.",
    "uplift": "Cumulative churn prevented at that share (churn rate difference control - treated among those "
              "targeted x their count), per held-out member.",
}


def usable(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ml.customer_uplift exists with the columns the publication needs."""
    if warehouse.relations(con).get(CUSTOMER_UPLIFT) != "table":
        return False
    return all(column in warehouse.columns(con, CUSTOMER_UPLIFT) for column in _NEEDED)


def score_columns_sql(k: int, source: str, *, available: bool) -> tuple[str, str, str]:
    """(CTEs appended after ``source``, select list, the relation to select from) for the uplift columns.

    ``source`` is a CTE with one row per published customer carrying customer_pseudonym, as_of,
    contactable and the published (banded) value over the horizon as ``_horizon_value``. Without a
    usable uplift table the
    columns are typed NULLs.
    """
    if not available:
        return ("", "NULL::DOUBLE AS expected_uplift, NULL::DOUBLE AS expected_saved_value, "
                    "NULL::VARCHAR AS recommended_action", source)
    ctes = f""",
        uplift_joined AS (
            SELECT s.*, round(u.expected_uplift / {STEP}) * {STEP} AS _u_round,
                   u.recommended_action AS _u_action
            FROM {source} AS s
            LEFT JOIN {CUSTOMER_UPLIFT} AS u
              ON u.customer_pseudonym = s.customer_pseudonym AND u.as_of = s.as_of),
        uplift_bands AS (
            SELECT _u_round AS _band, count(*) AS _sharing FROM uplift_joined
            WHERE _u_round IS NOT NULL GROUP BY _u_round),
        uplift_kept AS (SELECT _band FROM uplift_bands WHERE _sharing >= {int(k)}),
        uplift_moved AS (
            SELECT b._band AS _from,
                   (SELECT kept._band FROM uplift_kept AS kept
                    ORDER BY abs(kept._band - b._band), abs(kept._band), kept._band LIMIT 1) AS _to
            FROM uplift_bands AS b),
        uplift_published AS (
            SELECT j.*, round(m._to, 2) AS _uplift
            FROM uplift_joined AS j LEFT JOIN uplift_moved AS m ON m._from = j._u_round)"""
    select = (
        "_uplift AS expected_uplift, "
        "round(_uplift * _horizon_value, 2) AS expected_saved_value, "
        f"CASE WHEN _uplift IS NULL THEN NULL "
        f"WHEN _u_action = '{CONTACT}' AND coalesce(contactable, false) THEN '{CONTACT}' "
        f"ELSE '{NO_CONTACT}' END AS recommended_action")
    return ctes, select, "uplift_published"


def validation_sql(con: duckdb.DuckDBPyConnection, k: int) -> str | None:
    """The published uplift_validation, or None when the private table is absent or lacks columns."""
    if warehouse.relations(con).get(VALIDATION) != "table":
        return None
    present = warehouse.columns(con, VALIDATION)
    columns = [c for c in VALIDATION_COMMENTS if c is not None]
    if not all(c in present for c in columns):
        return None
    listed = ", ".join(columns)
    return (f"SELECT {listed} FROM {VALIDATION} WHERE test_members >= {int(k)} AND members >= {int(k)} "
            "ORDER BY as_of, rule")


def curve_sql(con: duckdb.DuckDBPyConnection, k: int) -> str | None:
    """The published uplift_curve: points of validated rules covering at least k held-out members."""
    validation = validation_sql(con, k)
    if validation is None or warehouse.relations(con).get(CURVE) != "table":
        return None
    present = warehouse.columns(con, CURVE)
    columns = [c for c in CURVE_COMMENTS if c is not None]
    if not all(c in present for c in columns):
        return None
    return (f"SELECT {', '.join('c.' + c for c in columns)} FROM {CURVE} AS c "
            f"JOIN ({validation}) AS v ON v.as_of = c.as_of AND v.rule = c.rule "
            f"WHERE c.share_targeted = 0 OR c.share_targeted * v.test_members >= {int(k)} "
            "ORDER BY c.as_of, c.rule, c.share_targeted")


def status(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why no uplift model is in use (ml.uplift_status, written by the uplift stage), in words; None
    without that record or when a model was fitted."""
    if warehouse.relations(con).get(STATUS) != "table":
        return None
    rows = con.execute(f"SELECT status, members, needed, reason FROM {STATUS} LIMIT 1").fetchall()
    if not rows or rows[0][0] in ("fitted", "reused"):
        return None
    state, members, needed, reason = rows[0]
    return f"{reason or state} ({members or 0:,} members, {needed or 0:,} needed)"


def problems(con: duckdb.DuckDBPyConnection, catalog: str, tables: dict[str, dict[str, str]], k: int) -> list[str]:
    """The uplift rules, checked on the published copy; messages hold counts, never values."""
    found: list[str] = []
    checks = 0
    for table, columns in tables.items():
        target = f"{catalog}.main.{_q(table)}"
        if "expected_uplift" in columns:
            checks += 1
            small = con.execute(
                f"SELECT count(*) FROM (SELECT expected_uplift FROM {target} WHERE expected_uplift IS NOT NULL "
                "GROUP BY ALL HAVING count(*) < ?)", [k]).fetchone()[0]
            off_grid = con.execute(
                f"SELECT count(*) FROM {target} WHERE abs(expected_uplift / {STEP} - round(expected_uplift / {STEP}))"
                " > 1e-6").fetchone()[0]
            if small:
                found.append(f"{table}.expected_uplift has {small} value{'s' if small != 1 else ''} shared by fewer "
                             f"than k = {k} customers")
            if off_grid:
                found.append(f"{table}.expected_uplift has {off_grid} value{'s' if off_grid != 1 else ''} not "
                             f"rounded to {STEP}")
        if {"expected_saved_value", "expected_uplift", "value_at_risk", "churn_probability"} <= set(columns):
            # value_at_risk is rounded to the cent, so value_at_risk / churn_probability is the horizon value
            # up to 0.005 / churn_probability; the saved value is then rounded to the cent once more.
            underived = con.execute(
                f"SELECT count(*) FROM {target} WHERE churn_probability > 0 AND ((expected_saved_value IS NULL) <> "
                "(expected_uplift IS NULL) OR abs(expected_saved_value - expected_uplift * value_at_risk / "
                "churn_probability) > abs(expected_uplift) * 0.005 / churn_probability + 0.0051)").fetchone()[0]
            if underived:
                found.append(f"{table}.expected_saved_value has {underived} value{'s' if underived != 1 else ''} "
                             "not derived from the published expected_uplift x value_at_risk / churn_probability")
        if "recommended_action" in columns:
            contactable = "coalesce(contactable, false)" if "contactable" in columns else "false"
            wrong = con.execute(
                f"SELECT count(*) FROM {target} WHERE recommended_action = '{CONTACT}' AND NOT {contactable}"
            ).fetchone()[0]
            unknown = con.execute(
                f"SELECT count(*) FROM {target} WHERE recommended_action NOT IN ('{CONTACT}', '{NO_CONTACT}')"
            ).fetchone()[0]
            if wrong:
                found.append(f"{table}.recommended_action says contact for {wrong} customer"
                             f"{'s' if wrong != 1 else ''} who may not be contacted")
            if unknown:
                found.append(f"{table}.recommended_action has {unknown} value{'s' if unknown != 1 else ''} other "
                             f"than '{CONTACT}' and '{NO_CONTACT}'")
    if PUBLISHED_VALIDATION in tables:
        small = con.execute(
            f"SELECT count(*) FROM {catalog}.main.{PUBLISHED_VALIDATION} WHERE test_members < ? OR members < ?",
            [k, k]).fetchone()[0]
        if small:
            found.append(f"{PUBLISHED_VALIDATION} has {small} rule{'s' if small != 1 else ''} validated on fewer "
                         f"than k = {k} members")
    if PUBLISHED_CURVE in tables:
        join = (f"LEFT JOIN {catalog}.main.{PUBLISHED_VALIDATION} AS v ON v.as_of = c.as_of AND v.rule = c.rule"
                if PUBLISHED_VALIDATION in tables else "LEFT JOIN (SELECT NULL::DATE AS as_of, NULL::VARCHAR AS rule, "
                                                       "NULL::BIGINT AS test_members) AS v ON false")
        small = con.execute(
            f"SELECT count(*) FROM {catalog}.main.{PUBLISHED_CURVE} AS c {join} WHERE c.share_targeted > 0 AND "
            "coalesce(c.share_targeted * v.test_members, 0) < ?", [k]).fetchone()[0]
        if small:
            found.append(f"{PUBLISHED_CURVE} has {small} point{'s' if small != 1 else ''} covering fewer than "
                         f"k = {k} members (or of no validated rule)")
    return found


def comment(con: duckdb.DuckDBPyConnection, target: str, comments: dict[str | None, str], k: int) -> None:
    """COMMENT ON the published ``target`` (catalog.main.table) and its columns."""
    for column, text in comments.items():
        what = "TABLE" if column is None else "COLUMN"
        name = target if column is None else f"{target}.{_q(column)}"
        con.execute(f"COMMENT ON {what} {name} IS {warehouse.sql_literal(text.format(k=k))}")


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
