"""Uplift from pilots in the build: learn who a contact saves from finished campaigns, estimate it for
every scored customer.

Point in time. A campaign member's features are those of the scoring set on the campaign date: `churnwh
plan` snapshots them (``snapshot_members``) into ``ml.campaign_member_features``, one row per member
(treated and control), beside the member's group. The table outlives builds like the campaigns: a key
rotation re-keys it (``pilot.OUTLIVE_BUILDS``) and an erasure deletes the customer's rows (every
derived table with a ``customer_pseudonym``). Campaigns planned before the snapshot existed have no
features and are not learned from.

Members learned from (``pilot_members``): the members of every campaign whose pilot window has ended
(campaign date + ``retention.pilot_days`` <= the build's ``as_of``), with the pilot report's outcome
definition counted over the pilot window: churned when the active period they were in on the campaign
date ended before the window's end. The features are the current churn model's features (names taken
from its artifact), as snapshotted; the churn probability the plan saw is the "churn risk" rule.

The build step (``uplift_stage``, after scoring):

1. no finished pilot, or fewer members than ``churnwh.ml.pilot_size`` requires: no model; one
   warning line with the members there are and the members needed; ``ml.uplift_status`` says so and the
   per-customer tables are dropped (a stale estimate is worse than none);
2. else, when the members (their content, not their pseudonyms), the features and the settings are those
   of the saved model (``<models>/uplift``, fingerprint in ``fit.json``): reuse it and its validation;
3. else fit: ``validate_uplift`` holds out 30% of the members (stratified by group and outcome), fits the
   estimator ``ESTIMATOR`` on the rest (the risk-offset model: the churn probability the plan saw, as a
   logit, recalibrated and corrected on the pilot, plus a regularized linear effect of a contact) and
   compares it ("uplift model") on the held-out members with the two-model baseline and with targeting by
   churn risk; the model that was validated is the one used.

Then every scored customer (``ml.churn_scores``: consent for profiling already applied) gets a row of
``ml.customer_uplift``:

- ``expected_uplift = churn_if_not_contacted - churn_if_contacted`` (churn prevented by a contact);
- ``expected_saved_value = expected_uplift x value_at_risk / churn_probability``: the churn prevented
  times the customer's value over the horizon (``value_at_risk`` already carries the churn probability,
  so multiplying it by the uplift would count the probability twice and favour the high-risk customers
  uplift targeting is meant to look past);
- ``recommended_action``: ``contact`` when ``expected_saved_value`` exceeds the cost of the customer's
  tier action (``retention.cost``), or exceeds 0 when the tier has no cost configured; else ``do not
  contact``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.privacy.erasure import UPLIFT_ARTIFACT
from churnwh.stages import registry
from churnwh.stages.explain import write_table
from churnwh.stages.registry import SCHEMA
from churnwh.store import warehouse

logger = logging.getLogger(__name__)

SNAPSHOT = f"{SCHEMA}.campaign_member_features"
CUSTOMER_UPLIFT = f"{SCHEMA}.customer_uplift"
VALIDATION = f"{SCHEMA}.uplift_validation"
CURVE = f"{SCHEMA}.uplift_curve"
STATUS = f"{SCHEMA}.uplift_status"
MEMBERS = f"{SCHEMA}.campaign_members"
CAMPAIGNS = f"{SCHEMA}.campaigns"
SCORES = f"{SCHEMA}.churn_scores"
ARTIFACT_DIR = UPLIFT_ARTIFACT
FIT_FILE = "fit.json"
TREATMENT, LABEL, RISK = "pilot_group", "churned", "plan_churn_probability"
RULE_NAMES = {"network": "uplift model", "two_model": "two-model baseline", "risk": "churn risk"}
ESTIMATOR = "risk_offset"
"""The build's uplift estimator (``churnwh.ml.uplift.validate_uplift``): the churn model's logit, recalibrated
and corrected on the pilot, plus a regularized linear effect of a contact (``fit_offset_uplift``). In the
learning curve (``benchmarks/bench_uplift_learning_curve.py --variants risk_offset``, top fifth of 10,000
held-out demo customers, true customers saved per 1,000 contacts, three pilots a size) it saved 51.9 / 57.2 /
56.6 at 6,000 / 13,000 / 20,000 members against 46.0 for the churn model it starts from, where the two-headed
network needed about 20,000 members to beat it; ``"network"`` selects the network."""
RISK_OFFSET = False
"""Whether the network's control head learns a correction to the churn model's logit (``fit_uplift``'s
``risk_column``) instead of learning churn risk from the pilot. Off: in the learning curve
(benchmarks/bench_uplift_learning_curve.py, top fifth, true saved per 1,000 contacts; churn model 46.0) the
offset network stayed near the churn model's ranking (45.3, 46.0, 48.3, 51.7 at 2,000 / 5,000 / 10,000 /
20,000 members: early stopping on the observed arm's log loss ends it before the effect head learns, since
the offset alone already fits churn well) while the plain network learned the effect from 10,000 members
(46.9, 43.9, 51.7, 57.5)."""

CUSTOMER_COMMENTS = {
    "customer_pseudonym": "Keyed pseudonym of the customer (HMAC-SHA256).",
    "as_of": "Scoring date: features use only data strictly before it.",
    "churn_if_contacted": "Estimated churn probability (within the pilot window) if the customer is contacted.",
    "churn_if_not_contacted": "Estimated churn probability (within the pilot window) if the customer is not contacted.",
    "expected_uplift": "churn_if_not_contacted - churn_if_contacted: churn prevented by a contact "
                       "(positive: a contact helps; negative: it drives the customer away).",
    "expected_saved_value": "expected_uplift x the customer's value over the horizon (value_at_risk / "
                            "churn_probability): the value a contact is expected to save.",
    "recommended_action": "contact when expected_saved_value exceeds the cost of the customer's tier action "
                          "(retention.cost; 0 for a tier without a cost), else do not contact.",
    "uplift_model_version": "The uplift model that gave the estimate (ml.uplift_status).",
}
VALIDATION_COMMENTS = {
    "as_of": "Build date of the validation.",
    "rule": "Targeting rule: uplift model (the estimator behind expected_uplift), two-model baseline or churn risk (the plan's churn probability).",
    "qini": "Qini coefficient on the held-out pilot members (0: random targeting; higher is better).",
    "auuc": "Area under the uplift curve on the held-out pilot members.",
    "qini_gain_low": "Lower end of the 95% paired bootstrap interval of the network's Qini minus this rule's "
                     "(NULL for the network's own row).",
    "qini_gain_high": "Upper end of that interval.",
    "members": "Pilot members with realised outcomes the model was learned and validated from.",
    "test_members": "Members held out for this validation.",
}
CURVE_COMMENTS = {
    "as_of": "Build date of the validation.",
    "rule": "Targeting rule (as in ml.uplift_validation).",
    "share_targeted": "Share of the held-out members targeted, highest score first.",
    "qini": "Qini curve: churners prevented among the treated of the targeted share, per held-out member.",
    "uplift": "Uplift curve: churn prevented if the whole targeted share were contacted, per held-out member.",
}
STATUS_COMMENTS = {
    "as_of": "Build date.",
    "status": "fitted, reused (members unchanged), too small (not enough pilot members) or no pilot.",
    "members": "Members of finished pilots with realised outcomes and point-in-time features.",
    "needed": "Members the pilot-size rule requires (churnwh.ml.pilot_size).",
    "campaigns": "Finished campaigns learned from.",
    "uplift_model_version": "The uplift model in use (NULL when none could be fitted).",
    "reason": "Why, in one line.",
}


# --- the snapshot at plan time ------------------------------------------------------------------


def snapshot_members(con: duckdb.DuckDBPyConnection, config: Config, campaign_id: str,
                     members: pa.Table) -> int:
    """Copy the scoring-set rows of ``members`` (a table with ``customer_pseudonym``) into ``SNAPSHOT``
    under ``campaign_id``: their features on the campaign date. Runs in the caller's transaction."""
    relation = config.training.scoring_model
    if relation not in warehouse.relations(con):
        return 0
    id_column = config.training.id_column
    con.execute(f"CREATE TABLE IF NOT EXISTS {SNAPSHOT} AS SELECT CAST(NULL AS VARCHAR) AS campaign_id, "
                f"{_q(id_column)} AS customer_pseudonym, * EXCLUDE ({_q(id_column)}) FROM {relation} WHERE false")
    have = warehouse.columns(con, SNAPSHOT)
    for name, kind in warehouse.columns(con, relation).items():
        if name != id_column and name not in have:  # the scoring set gained a column since the first snapshot
            con.execute(f"ALTER TABLE {SNAPSHOT} ADD COLUMN {_q(name)} {kind}")
    con.register("_snapshot_members", members.select(["customer_pseudonym"]))
    try:
        return con.execute(
            f"""INSERT INTO {SNAPSHOT} BY NAME
                SELECT {warehouse.sql_literal(campaign_id)} AS campaign_id, s.{_q(id_column)} AS customer_pseudonym,
                       s.* EXCLUDE ({_q(id_column)})
                FROM {relation} s JOIN _snapshot_members m ON m.customer_pseudonym = s.{_q(id_column)}""",
        ).fetchall()[0][0]
    finally:
        con.unregister("_snapshot_members")


# --- the members learned from --------------------------------------------------------------------


def pilot_members(con: duckdb.DuckDBPyConnection, config: Config, features: list[str]) -> pl.DataFrame:
    """Members of finished pilots with their outcome, group, planned churn risk and snapshotted features
    (rows in an order fixed by their content, pseudonyms dropped)."""
    existing = warehouse.relations(con)
    if not {SNAPSHOT, MEMBERS, CAMPAIGNS, "staging.active_periods"} <= existing.keys():
        return pl.DataFrame()
    snapshot_columns = warehouse.columns(con, SNAPSHOT)
    present = [name for name in features if name in snapshot_columns]
    if len(present) < len(features):
        return pl.DataFrame()  # the churn model's features changed since the pilots: nothing comparable
    data_end = config.variables["as_of"]
    days = int(config.retention.pilot_days)
    selected = ", ".join(f"f.{_q(name)}" for name in features)
    frame = pl.from_arrow(con.sql(
        f"""SELECT m.campaign_id, m.pilot_group AS {TREATMENT}, m.churn_probability AS {RISK},
                   CASE WHEN p.period_end IS NOT NULL
                         AND p.period_end < CAST(c.as_of AS DATE) + CAST({days} AS INTEGER) THEN 1 ELSE 0 END AS {LABEL},
                   {selected}
            FROM {MEMBERS} m
            JOIN {CAMPAIGNS} c USING (campaign_id)
            JOIN {SNAPSHOT} f ON f.campaign_id = m.campaign_id AND f.customer_pseudonym = m.customer_pseudonym
            LEFT JOIN staging.active_periods p
              ON p.customer_pseudonym = m.customer_pseudonym AND p.period_start < m.as_of
             AND (p.period_end IS NULL OR p.period_end >= m.as_of)
            WHERE CAST(c.as_of AS DATE) + CAST({days} AS INTEGER) <= CAST({warehouse.sql_literal(str(data_end))} AS DATE)
              AND m.churn_probability IS NOT NULL""").to_arrow_table())
    if frame.height == 0:
        return frame
    return frame.sort(frame.columns, nulls_last=True)


def fingerprint(members: pl.DataFrame, features: list[str], settings: dict) -> str:
    """Content of the members (no pseudonyms), the feature list and the fit settings."""
    digest = hashlib.sha256(json.dumps({"features": features, "settings": settings}, sort_keys=True,
                                       default=str).encode())
    digest.update(members.write_csv().encode())
    return digest.hexdigest()


# --- the build stage -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UpliftStatus:
    status: str
    members: int
    needed: int
    campaigns: int
    version: str | None
    reason: str

    @property
    def fitted(self) -> bool:
        return self.version is not None


def fit_settings(config: Config):
    """The uplift estimator's settings: ``UPLIFT_DEFAULTS`` with the project's seed, and no more epochs than
    [network] epochs allows (a tiny test network stays tiny; the risk-offset model reads the preprocessing
    settings only)."""
    from churnwh.ml.uplift import UPLIFT_DEFAULTS
    from churnwh.stages.train import train_config

    churn = train_config(config)
    return dataclasses.replace(UPLIFT_DEFAULTS, seed=config.training.seed,
                               epochs=min(UPLIFT_DEFAULTS.epochs, churn.epochs),
                               patience=min(UPLIFT_DEFAULTS.patience, churn.patience))


def uplift_stage(con: duckdb.DuckDBPyConnection, config: Config) -> str:
    """The build's ``uplift`` step (see the module docstring); returns its one-line detail."""
    from churnwh.ml.pilot_size import pilot_size

    if SCORES not in warehouse.relations(con):
        raise ChurnwhError("no scores yet: run `churnwh build` first")
    record = registry.current(con) if registry.exists(con) else None
    if record is None:
        raise ChurnwhError("no trained model yet: run `churnwh build` first")
    as_of = _scores_as_of(con, config)
    features = sorted(registry.features(config.warehouse.models, record.version))
    members = pilot_members(con, config, features)
    campaigns = members["campaign_id"].n_unique() if members.height else 0
    members = members.drop("campaign_id") if members.height else members
    if members.height == 0:
        needed = _needed_without_pilot(con, config)
        return _not_fitted(con, as_of, UpliftStatus(
            "no pilot", 0, needed, 0, None,
            f"no finished pilot with point-in-time features yet: plan a campaign of at least {needed} customers "
            f"(`churnwh plan`), let its {config.retention.pilot_days}-day window pass and build again"))
    treated = (members[TREATMENT] == "treatment").cast(pl.Float64).to_numpy()
    rule = pilot_rule(config)
    size = pilot_size(treated, members[LABEL].to_numpy(), rule)
    if not size.large_enough:
        return _not_fitted(con, as_of, UpliftStatus("too small", size.members, size.required_members, campaigns,
                                                    None, size.message()))
    from churnwh.ml import uplift, uplift_artifact  # JAX: only once there is a pilot to learn from

    settings = fit_settings(config)
    digest = fingerprint(members, features, {**settings.to_dict(), "risk_offset": RISK_OFFSET,
                                             "estimator": ESTIMATOR})
    version = f"uplift-{digest[:12]}"
    folder = config.warehouse.models / ARTIFACT_DIR
    saved = _read_fit(folder)
    if saved is not None and saved.get("fingerprint") == digest:
        model = uplift_artifact.load_uplift_model(folder)
        validation, curve, status = saved["validation"], saved["curve"], "reused"
    else:
        model, checked = uplift.validate_uplift(members, treatment_column=TREATMENT, label_column=LABEL,
                                                risk_column=RISK, config=settings, risk_offset=RISK_OFFSET,
                                                rule=rule, estimator=ESTIMATOR)
        validation, curve = _validation_rows(checked), _curve_rows(checked)
        _save_fit(folder, model, {"fingerprint": digest, "version": version, "validation": validation,
                                  "curve": curve})
        status = "fitted"
    rows = customer_rows(con, config, model, features, version, as_of)
    _write_results(con, as_of, validation, curve, rows)
    result = UpliftStatus(status, size.members, size.required_members, campaigns, version,
                          f"{status} on {size.members} members of {campaigns} finished pilots")
    _write_status(con, as_of, result)
    network = next(row for row in validation if row["rule"] == RULE_NAMES["network"])
    return (f"{version} {status} on {size.members} pilot members (held-out Qini {network['qini']:.4f}); "
            f"{rows.num_rows} customers estimated")


def customer_rows(con: duckdb.DuckDBPyConnection, config: Config, model, features: list[str], version: str,
                  as_of: dt.date) -> pa.Table:
    """``CUSTOMER_UPLIFT`` rows for every scored customer (features from the current scoring set)."""
    from churnwh.ml.uplift import predict_uplift

    relation, id_column = config.training.scoring_model, config.training.id_column
    selected = ", ".join(f"f.{_q(name)}" for name in features)
    frame = pl.from_arrow(con.sql(
        f"""SELECT s.customer_pseudonym, s.as_of, s.risk_tier, s.churn_probability, s.value_at_risk,
                   s.churn_probability AS {RISK}, {selected}
            FROM {SCORES} s JOIN {relation} f ON f.{_q(id_column)} = s.customer_pseudonym
            ORDER BY s.customer_pseudonym""").to_arrow_table())
    estimates = predict_uplift(model, frame)
    cost = {tier: float(amount) for tier, amount in config.retention.cost.items()}
    probability = frame["churn_probability"].cast(pl.Float64).to_numpy()
    value_at_risk = frame["value_at_risk"].cast(pl.Float64).fill_null(0.0).to_numpy()
    horizon_value = np.divide(value_at_risk, probability, out=np.zeros_like(value_at_risk), where=probability > 0)
    prevented = estimates.prevented
    saved = prevented * horizon_value
    threshold = frame["risk_tier"].cast(pl.String).replace_strict(cost, default=0.0, return_dtype=pl.Float64)
    contact = saved > threshold.to_numpy()
    return pa.table({
        "customer_pseudonym": frame["customer_pseudonym"].to_arrow(),
        "as_of": pa.array([as_of] * frame.height, pa.date32()),
        "churn_if_contacted": pa.array(estimates.churn_if_contacted, pa.float64()),
        "churn_if_not_contacted": pa.array(estimates.churn_if_not_contacted, pa.float64()),
        "expected_uplift": pa.array(prevented, pa.float64()),
        "expected_saved_value": pa.array(saved, pa.float64()),
        "recommended_action": pa.array(np.where(contact, "contact", "do not contact"), pa.string()),
        "uplift_model_version": pa.array([version] * frame.height, pa.string()),
    })


def current_status(con: duckdb.DuckDBPyConnection) -> UpliftStatus | None:
    """The last build's ``ml.uplift_status`` row, None before the first build with the uplift step."""
    if STATUS not in warehouse.relations(con):
        return None
    row = con.execute(f"SELECT status, members, needed, campaigns, uplift_model_version, reason FROM {STATUS}"
                      ).fetchall()
    return UpliftStatus(*row[0]) if row else None


@dataclasses.dataclass(frozen=True)
class VersusRisk:
    """The uplift model against targeting by churn risk on the held-out pilot members (``ml.uplift_validation``):
    the network's Qini coefficient minus churn risk's, with its 95% paired bootstrap interval."""

    gain: float
    low: float
    high: float

    @property
    def better(self) -> bool:
        """Measurably better: the whole interval above 0."""
        return self.low > 0

    @property
    def worse(self) -> bool:
        """No better on the held-out members (the estimate itself at or below 0)."""
        return self.gain <= 0

    def message(self) -> str:
        return (f"the uplift model does not beat targeting by churn risk on the held-out pilot members "
                f"(Qini {self.gain:+.5f} against churn risk, 95% CI {self.low:+.5f} to {self.high:+.5f})")


def versus_risk(con: duckdb.DuckDBPyConnection) -> VersusRisk | None:
    """The current validation's network-vs-churn-risk comparison; None without one."""
    if VALIDATION not in warehouse.relations(con):
        return None
    rows = dict((rule, (qini, low, high)) for rule, qini, low, high in con.execute(
        f"SELECT rule, qini, qini_gain_low, qini_gain_high FROM {VALIDATION}").fetchall())
    network, risk = rows.get(RULE_NAMES["network"]), rows.get(RULE_NAMES["risk"])
    if network is None or risk is None or risk[1] is None or risk[2] is None:
        return None
    return VersusRisk(gain=float(network[0] - risk[0]), low=float(risk[1]), high=float(risk[2]))


# --- helpers ---------------------------------------------------------------------------------------


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _scores_as_of(con: duckdb.DuckDBPyConnection, config: Config) -> dt.date:
    found = con.execute(f"SELECT max(as_of) FROM {SCORES}").fetchall()[0][0] or config.variables["as_of"]
    return found.date() if isinstance(found, dt.datetime) else found


def _needed_without_pilot(con: duckdb.DuckDBPyConnection, config: Config) -> int:
    """The rule's pilot size at the scored customers' mean churn probability and the configured treated share."""
    from churnwh.ml.pilot_size import required_members

    mean_risk = con.execute(f"SELECT avg(churn_probability) FROM {SCORES}").fetchall()[0][0] or 0.0
    return required_members(float(mean_risk), 1.0 - config.retention.control_fraction, pilot_rule(config))


def pilot_rule(config: Config):
    """The pilot-size rule with the project's [retention] uplift_min_gain and uplift_target_share."""
    from churnwh.ml.pilot_size import PilotSizeRule

    return PilotSizeRule(min_gain=config.retention.uplift_min_gain,
                         target_share=config.retention.uplift_target_share)


def _not_fitted(con: duckdb.DuckDBPyConnection, as_of: dt.date, status: UpliftStatus) -> str:
    logger.warning("uplift model not fitted: %d pilot members, %d needed (%s)", status.members, status.needed,
                   status.reason)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in (CUSTOMER_UPLIFT, VALIDATION, CURVE):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    _write_status(con, as_of, status)
    return f"no uplift model ({status.status}): {status.members} pilot members, {status.needed} needed"


def _write_status(con: duckdb.DuckDBPyConnection, as_of: dt.date, status: UpliftStatus) -> None:
    # Polars, not pyarrow, builds the row: pyarrow's constructors import pandas (seconds on a loaded
    # machine), which a build without an uplift model otherwise never needs.
    table = pl.DataFrame({
        "as_of": [as_of], "status": [status.status], "members": [status.members], "needed": [status.needed],
        "campaigns": [status.campaigns], "uplift_model_version": [status.version], "reason": [status.reason],
    }, schema={"as_of": pl.Date, "status": pl.String, "members": pl.Int64, "needed": pl.Int64,
               "campaigns": pl.Int64, "uplift_model_version": pl.String, "reason": pl.String}).to_arrow()
    write_table(con, STATUS, table, STATUS_COMMENTS,
                "The uplift model of the last build: fitted or why not (pilot members there are and needed).")


def _write_results(con: duckdb.DuckDBPyConnection, as_of: dt.date, validation: list[dict], curve: list[dict],
                   rows: pa.Table) -> None:
    dated = [{"as_of": as_of, **row} for row in validation]
    write_table(con, VALIDATION, pa.Table.from_pylist(dated, schema=pa.schema([
        ("as_of", pa.date32()), ("rule", pa.string()), ("qini", pa.float64()), ("auuc", pa.float64()),
        ("qini_gain_low", pa.float64()), ("qini_gain_high", pa.float64()), ("members", pa.int64()),
        ("test_members", pa.int64())])), VALIDATION_COMMENTS,
        "Held-out validation of the uplift model next to a two-model baseline and targeting by churn risk.")
    write_table(con, CURVE, pa.Table.from_pylist([{"as_of": as_of, **row} for row in curve], schema=pa.schema([
        ("as_of", pa.date32()), ("rule", pa.string()), ("share_targeted", pa.float64()), ("qini", pa.float64()),
        ("uplift", pa.float64())])), CURVE_COMMENTS,
        "Qini and uplift curves of each targeting rule on the held-out pilot members.")
    write_table(con, CUSTOMER_UPLIFT, rows, CUSTOMER_COMMENTS,
                "Per scored customer: churn if contacted and if not, the churn a contact prevents, its value and "
                "the recommended action.")


def _validation_rows(checked) -> list[dict]:
    rows = []
    for name, curve in checked.rules.items():
        gain = checked.network_gain.get(name)
        rows.append({"rule": RULE_NAMES[name], "qini": float(curve.qini_coefficient), "auuc": float(curve.auuc),
                     "qini_gain_low": None if gain is None else float(gain[1]),
                     "qini_gain_high": None if gain is None else float(gain[2]),
                     "members": int(checked.pilot.members), "test_members": int(checked.test_members)})
    return rows


def _curve_rows(checked) -> list[dict]:
    return [{"rule": RULE_NAMES[name], "share_targeted": float(share), "qini": float(qini), "uplift": float(up)}
            for name, curve in checked.rules.items()
            for share, qini, up in zip(curve.share, curve.qini, curve.uplift)]


def _read_fit(folder: Path) -> dict | None:
    try:
        return json.loads((folder / FIT_FILE).read_text())
    except (OSError, ValueError):
        return None


def _save_fit(folder: Path, model, fit: dict) -> None:
    """The model and its validation (aggregates only) in ``folder``, replaced whole."""
    from churnwh.ml.uplift_artifact import save_uplift_model

    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    save_uplift_model(model, staging)
    (staging / FIT_FILE).write_text(json.dumps(fit, indent=1, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
