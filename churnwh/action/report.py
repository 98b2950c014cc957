"""`churnwh report`: one self-contained HTML page a retention manager can read on screen and print.

The charts are inline SVG rendered offline (churnwh.action.charts); the page loads nothing from
elsewhere. Each chart sits in ``<figure data-plot=NAME>``; a chart with no data yet shows a note
instead. A small inline script writes onto ``<body>`` what the browser test reads: the charts drawn
(``data-plots-rendered``), chart labels drawn outside their chart (``data-labels-outside``), how far
the page overflows the window's width (``data-overflow-x``) and script errors (``data-errors``).

Only what the published file may show reaches the page: aggregates, and for the customers to act on
first their pseudonym, tier, value at risk, reasons in words, contactability and campaign group. The
page reads no raw table, so no name, e-mail or source id can reach it. The uplift section shows the
Qini curve points the published file may show (churnwh.privacy.uplift_publish: at least k held-out
pilot members each), counts, and the pilot results per campaign (each group at least k).
"""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from churnwh.action import charts
from churnwh.action.charts import TIERS
from churnwh.config import Config
from churnwh.store import freshness, warehouse

ACT_ON_FIRST = 25
"""Customers listed in the 'act on first' table by default (`churnwh report --customers N`)."""
REASONS_PER_CUSTOMER = 3
SCORE_LABEL = "Churn score (the model's output)"


def _frame(con: duckdb.DuckDBPyConnection, relation: str, query: str, params: list | None = None) -> pl.DataFrame:
    if relation not in warehouse.relations(con):
        return pl.DataFrame()
    return pl.from_arrow(con.sql(query, params=params or None).to_arrow_table())


def reasons_in_words(con: duckdb.DuckDBPyConnection, pseudonyms: list[str],
                     per_customer: int = REASONS_PER_CUSTOMER) -> dict[str, list[str]]:
    """Pseudonym -> up to ``per_customer`` drivers that raise its risk, in words, strongest first.

    ``ml.churn_drivers`` ranks actionable features only (``churnwh.stages.actionable``): the customer
    profile (tenure, acquisition channel, demographics) and withheld attributes (quasi-identifiers) say
    nothing a retention team can act on, so they are never a reason here.
    """
    if "ml.churn_drivers" not in warehouse.relations(con) or not pseudonyms:
        return {}
    rows = con.execute(
        f"""SELECT customer_pseudonym, label, value_bucket FROM ml.churn_drivers
            WHERE direction = 'raises risk' AND value_bucket <> 'withheld'
              AND customer_pseudonym IN (SELECT unnest(?::VARCHAR[]))
            QUALIFY row_number() OVER (PARTITION BY customer_pseudonym ORDER BY rank) <= {int(per_customer)}
            ORDER BY customer_pseudonym, rank""", [pseudonyms]).fetchall()
    words: dict[str, list[str]] = {}
    for pseudonym, label, bucket in rows:
        words.setdefault(pseudonym, []).append(f"{short_label(label)}: {bucket}")
    return words


def short_label(comment: str) -> str:
    """A column comment's first clause, short enough for an axis: 'Customer's gender (female, ...)' ->
    "Customer's gender"; 'Change in spending: last 30 days ...' -> 'Change in spending'."""
    text = comment.strip().split(". ")[0].rstrip(".")
    return re.split(r" \(|; |: ", text, maxsplit=1)[0].strip() or text


def feature_labels(con: duckdb.DuckDBPyConnection, config: Config) -> dict[str, str]:
    """Feature column -> short label from its column comment in the scoring set (the model's inputs)."""
    from churnwh.stages.explain import column_labels

    relation = config.training.scoring_model
    labels = column_labels(con, relation) if relation in warehouse.relations(con) else {}
    return {name: short_label(text) for name, text in labels.items()} | {"__score__": SCORE_LABEL}


def _labelled(features: list[str], labels: dict[str, str]) -> list[str]:
    """Axis labels for features: their comment's words, wrapped, never two alike."""
    words = [charts.wrap(labels.get(f, f.replace("_", " "))) for f in features]
    return charts.distinct(words, features)


# --- charts --------------------------------------------------------------------------------------


def _figure(name: str, title: str, svg: str | None, *, note: str = "", empty: str = "") -> str:
    caption = f"<figcaption><strong>{html.escape(title)}</strong>"
    caption += f"<span class=\"note\">{html.escape(note)}</span>" if note and svg else ""
    body = svg if svg else f'<p class="empty">{html.escape(empty)}</p>'
    state = "drawn" if svg else "empty"
    return f'<figure data-plot="{name}" data-state="{state}">{caption}</figcaption>{body}</figure>'


def _tiers(summary: pl.DataFrame, currency: str) -> str:
    title = "Customers and value at risk per risk tier"
    if summary.height == 0:
        return _figure("tiers", title, None, empty="no scores yet (run churnwh build)")
    return _figure("tiers", title, charts.render(charts.tiers(summary.to_dicts(), currency), "tiers"))


def _score_distribution(con, config: Config) -> str:
    title = "How churn probabilities are spread, by risk tier"
    scores = _frame(con, "ml.churn_scores", "SELECT churn_probability, CAST(risk_tier AS VARCHAR) AS tier "
                                            "FROM ml.churn_scores")
    if scores.height == 0:
        return _figure("score_distribution", title, None, empty="no scores yet")
    edges = np.linspace(0, 1, 21)
    rows = []
    for tier in TIERS:
        counts = np.histogram(scores.filter(pl.col("tier") == tier)["churn_probability"].to_numpy(), edges)[0]
        rows += [{"start": float(edges[i]), "end": float(edges[i + 1]), "tier": tier, "customers": int(c)}
                 for i, c in enumerate(counts) if c]
    thresholds = ([("high", config.tiers.high), ("medium", config.tiers.medium)]
                  if config.tiers.mode == "probability" else [])
    note = (f"dashed lines: the tier thresholds, medium from {config.tiers.medium:.0%}, high from "
            f"{config.tiers.high:.0%}" if thresholds else
            f"tiers by rank: the top {config.tiers.high:.0%} are high, the next "
            f"{config.tiers.medium - config.tiers.high:.0%} medium")
    return _figure("score_distribution", title, charts.render(charts.score_histogram(rows, thresholds),
                                                              "score_distribution"), note=note)


def _drivers(con, labels: dict[str, str]) -> str:
    title = "What drives churn risk (15 strongest drivers over the customers scored)"
    imp = _frame(con, "ml.feature_importance", "SELECT feature, mean_abs_contribution, mean_contribution "
                                               "FROM ml.feature_importance ORDER BY rank LIMIT 15")
    if imp.height == 0:
        return _figure("drivers", title, None, empty="no explanation yet")
    names = _labelled(imp["feature"].to_list(), labels)
    rows = [{"label": name, "mean_abs_contribution": a, "effect": "raises risk" if m > 0 else "lowers risk"}
            for name, (_, a, m) in zip(names, imp.iter_rows())]
    return _figure("drivers", title, charts.render(charts.drivers(rows), "drivers"),
                   note="longer bar: the feature moves customers' risk more; colour: its average direction")


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    y = labels[order]
    tp = np.concatenate([[0], np.cumsum(y)])
    fp = np.concatenate([[0], np.cumsum(1 - y)])
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def _roc(con, config: Config, version: str | None) -> str:
    title = "ROC curve: how well the model ranks churners above retained customers"
    tr = config.training
    if version is None or tr.model not in warehouse.relations(con):
        return _figure("roc", title, None, empty="no model yet")
    from churnwh.ml.metrics import roc_auc
    from churnwh.ml.train import predict_proba
    from churnwh.stages import registry

    test = pl.from_arrow(con.sql(
        f'SELECT * FROM {tr.model} WHERE "{tr.date_column}" = (SELECT max("{tr.date_column}") FROM {tr.model})'
    ).to_arrow_table())
    labels = test[tr.label_column].to_numpy().astype(float) if test.height else np.zeros(0)
    if test.height == 0 or labels.min() == labels.max():
        return _figure("roc", title, None, empty="needs churned and retained rows")
    scores = predict_proba(registry.load(config.warehouse.models, version), test)
    fpr, tpr = roc_points(labels, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 300)).round().astype(int))
    rows = [{"fpr": float(fpr[i]), "tpr": float(tpr[i]), "order": int(i)} for i in keep]
    svg = charts.render(charts.roc(rows, roc_auc(labels, scores), test.height), "roc")
    return _figure("roc", title, svg, note="latest observation date of the training set, current model")


def _lift(con, version) -> str:
    title = "Lift: how much more churn among the highest scores"
    lift = _frame(con, "ml.lift", "SELECT decile, lift FROM ml.lift WHERE version = ? ORDER BY decile", [version])
    if lift.height == 0:
        return _figure("lift", title, None, empty="no evaluation yet")
    return _figure("lift", title, charts.render(charts.lift(lift.to_dicts()), "lift"),
                   note="test rows; dashed line: 1× = no better than picking customers at random")


def _calibration(con, version) -> str:
    title = "Calibration: predicted against observed churn"
    cal = _frame(con, "ml.calibration", "SELECT mean_predicted, observed_rate FROM ml.calibration "
                                        "WHERE version = ? ORDER BY bin", [version])
    if cal.height == 0:
        return _figure("calibration", title, None, empty="no evaluation yet")
    return _figure("calibration", title, charts.render(charts.calibration(cal.to_dicts()), "calibration"),
                   note="test rows; on the dashed line the probabilities mean what they say")


def _churn_over_time(con) -> str:
    title = "Monthly churn rate (all consenting customers)"
    monthly = _frame(con, "marts.churn_monthly", "SELECT month, churn_rate FROM marts.churn_monthly "
                                                 "WHERE segment_type = 'all' AND churn_rate IS NOT NULL ORDER BY month")
    if monthly.height < 2:
        return _figure("churn_over_time", title, None, empty="no monthly history yet")
    highest = int(monthly["churn_rate"].arg_max())
    marks = {highest: "highest", monthly.height - 1: "latest"}
    rows = [{"month": m.isoformat(), "churn_rate": float(r), "mark": marks.get(i, "")}
            for i, (m, r) in enumerate(monthly.iter_rows())]
    return _figure("churn_over_time", title, charts.render(charts.monthly_churn(rows), "churn_over_time"),
                   note="labelled: the latest and the highest month")


def _pilot(con) -> str:
    title = "Pilot: churn of contacted (treated) against held-out (control) customers"
    results = _frame(con, "ml.pilot_results", "SELECT * FROM ml.pilot_results ORDER BY evaluated_at DESC LIMIT 1")
    if results.height == 0:
        return _figure("pilot", title, None,
                       empty="no pilot evaluated yet (churnwh plan, then churnwh pilot-report)")
    r = results.row(0, named=True)
    rows = [{"label": f"treated ({r['treated']:,} customers)", "value": float(r["treated_churn_rate"])},
            {"label": f"control ({r['control']:,} customers)", "value": float(r["control_churn_rate"])}]
    note = (f"campaign {r['campaign_id']}: effect {r['effect']:+.1%} (95% CI {r['ci_low']:+.1%} to "
            f"{r['ci_high']:+.1%})")
    svg = charts.render(charts.labelled_bars(rows, value_title="churned since the campaign", percent=True,
                                             colours=("#2a8f5a", "#999")), "pilot")
    return _figure("pilot", title, svg, note=note)


def _uplift_intro(con, config: Config) -> str:
    """What the uplift model says now, or why there is none yet (ml.uplift_status)."""
    from churnwh.privacy import uplift_publish

    if not uplift_publish.usable(con):
        reason = uplift_publish.status(con)
        return ('<p class="empty" id="uplift-none">No uplift model yet'
                + (f": {html.escape(reason)}" if reason else "") + ". Until one is learned from randomized pilots "
                "(<code>churnwh plan</code>, then <code>churnwh pilot-report</code>), campaigns target by churn risk "
                "and the published <code>expected_uplift</code> and <code>recommended_action</code> are empty.</p>")
    scored, helped, contact = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE u.expected_uplift > 0),
                   count(*) FILTER (WHERE u.recommended_action = 'contact' AND coalesce(s.contactable, false))
            FROM {uplift_publish.CUSTOMER_UPLIFT} AS u
            JOIN ml.churn_scores AS s ON s.customer_pseudonym = u.customer_pseudonym AND s.as_of = u.as_of""",
    ).fetchone()
    return (f'<p id="uplift-summary">The uplift model estimates, for each of {scored:,} scored customers, how much '
            f"a contact lowers their churn probability (learned from randomized pilots: treated against control "
            f"members). A contact is expected to help {helped:,} of them; {contact:,} contactable customers are "
            "recommended for contact by it (customers without marketing consent never are). High churn risk does not "
            "mean a contact helps: some customers leave anyway, a few are annoyed by contact.</p>")


def _qini(con, config: Config) -> str:
    from churnwh.privacy import uplift_publish

    title = "Qini curves: churn prevented when contacting the best-ranked share of held-out pilot members"
    k = config.publish.k_anonymity
    query = uplift_publish.curve_sql(con, k)
    curve = pl.DataFrame() if query is None else pl.from_arrow(con.sql(
        f"SELECT * FROM ({query}) WHERE as_of = (SELECT max(as_of) FROM {uplift_publish.CURVE})").to_arrow_table())
    if curve.height == 0:
        reason = uplift_publish.status(con)
        return _figure("qini", title, None, empty="no uplift model yet" + (f": {reason}" if reason else
                                                                           " (no randomized pilot to learn from)"))
    validation = pl.from_arrow(con.sql(
        f"SELECT rule, qini, qini_gain_low, qini_gain_high, test_members FROM ({uplift_publish.validation_sql(con, k)}) "
        f"WHERE as_of = (SELECT max(as_of) FROM {uplift_publish.CURVE})").to_arrow_table())
    ends = curve.filter(pl.col("share_targeted") == pl.col("share_targeted").max())
    random_end = float(ends["qini"].mean())
    order = {rule: i for i, rule in enumerate(charts.RULE_COLOURS)}
    curve = curve.sort(pl.col("rule").replace_strict(order, default=len(order)), "rule", "share_targeted")
    validation = validation.sort(pl.col("rule").replace_strict(order, default=len(order)), "rule")
    svg = charts.render(charts.qini(curve.select("rule", "share_targeted", "qini").to_dicts(), random_end), "qini")
    parts = [f"{r['rule']}: Qini {r['qini']:.4f}" + (
        f" (gain over churn risk, 95% interval {r['qini_gain_low']:+.4f} to {r['qini_gain_high']:+.4f})"
        if r["rule"] != "churn risk" and r["qini_gain_low"] is not None else "")
        for r in validation.iter_rows(named=True)]
    members = int(validation["test_members"].max()) if validation.height else 0
    note = (f"{members:,} held-out members; dashed: random targeting; higher curve: better targeting. "
            + "; ".join(parts))
    return _figure("qini", title, svg, note=note)


def targeting_results(con) -> pl.DataFrame:
    """Realised effect of each evaluated campaign (and arm), with its targeting rule: ml.pilot_results, with
    ml.campaigns.targeting where the campaign records it ('risk' before targeting existed)."""
    relations = warehouse.relations(con)
    if "ml.pilot_results" not in relations:
        return pl.DataFrame()
    present = warehouse.columns(con, "ml.pilot_results")
    campaigns = warehouse.columns(con, "ml.campaigns") if "ml.campaigns" in relations else {}
    if "targeting" in present:
        targeting = "CAST(r.targeting AS VARCHAR)"
    elif "targeting" in campaigns:
        targeting = "(SELECT CAST(c.targeting AS VARCHAR) FROM ml.campaigns AS c WHERE c.campaign_id = r.campaign_id)"
    else:
        targeting = "NULL::VARCHAR"
    arm = "CAST(r.arm AS VARCHAR)" if "arm" in present else "NULL::VARCHAR"
    budget = ("(SELECT c.budget FROM ml.campaigns AS c WHERE c.campaign_id = r.campaign_id)" if "budget" in campaigns
              else "NULL::DOUBLE")
    per_1000 = "r.retained_per_1000_cost" if "retained_per_1000_cost" in present else "NULL::DOUBLE"
    return pl.from_arrow(con.sql(
        f"""SELECT r.campaign_id, {arm} AS arm, coalesce({targeting}, 'risk') AS targeting, {budget} AS budget,
                   r.treated, r.control,
                   r.effect, r.ci_low, r.ci_high, {per_1000} AS retained_per_1000_cost, r.outcome_through
            FROM ml.pilot_results AS r
            QUALIFY row_number() OVER (PARTITION BY r.campaign_id, {arm} ORDER BY r.evaluated_at DESC) = 1
            ORDER BY r.outcome_through, r.campaign_id, {arm} NULLS FIRST""").to_arrow_table())


def _targeting_table(results: pl.DataFrame) -> str:
    if results.height == 0:
        return ('<p class="empty" id="targeting-empty">No pilot evaluated yet: the realised effect of each targeting '
                "rule appears after <code>churnwh pilot-report</code>.</p>")
    def _number(value, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)
    rows = "".join(
        f'<tr><td>{html.escape(r["campaign_id"])}{" / " + html.escape(r["arm"]) if r["arm"] else ""}</td>'
        f'<td>{html.escape(r["targeting"])}</td><td class="num">{_number(r["budget"], ",.0f")}</td>'
        f'<td class="num">{r["treated"]:,} / {r["control"]:,}</td>'
        f'<td class="num">{_number(r["effect"], "+.1%")}</td>'
        f'<td class="num">{_number(r["ci_low"], "+.1%")} to {_number(r["ci_high"], "+.1%")}</td>'
        f'<td class="num">{_number(r["retained_per_1000_cost"], ",.2f")}</td></tr>'
        for r in results.iter_rows(named=True))
    return ('<table class="targeting" id="targeting-results"><thead><tr><th>campaign</th><th>targeting</th>'
            "<th>budget</th><th>treated / control</th><th>effect</th><th>95% interval</th>"
            "<th>customers saved per 1,000 spent</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
            '<p class="note">Effect: churn rate of the control group minus that of the treated group (churn '
            "prevented per contacted customer), measured against each campaign's own random control group; an "
            "interval that excludes 0 is an effect beyond chance. Compare targeting rules on campaigns of the same "
            "budget.</p>")


def _drift(con, labels: dict[str, str]) -> str:
    title = "Drift: features whose distribution moved since the reference training dates (15 largest)"
    drift = _frame(con, "ml.drift", "SELECT * FROM ml.drift WHERE psi IS NOT NULL ORDER BY psi DESC, feature LIMIT 15")
    if drift.height == 0:
        return _figure("drift", title, None, empty="no drift measured yet")
    names = _labelled(drift["feature"].to_list(), labels)
    rows = [{"label": name, "psi": p, "status": s}
            for name, p, s in zip(names, drift["psi"].to_list(), drift["status"].to_list())]
    threshold = float(drift["threshold"][0])
    warnings = int((drift["status"] == "warning").sum())
    note = f"dashed line: warning threshold {threshold:g}; {warnings} of these {drift.height} above it"
    if "reference" in drift.columns:
        note += f"; compared with {drift['reference'][0]}"
    svg = charts.render(charts.drift(rows, threshold), "drift")
    if "explanation" in drift.columns and warnings:  # what moved, in words, under the chart
        items = "".join(
            f"<li><strong>{html.escape(name)}</strong> (PSI {psi:.2f}{', severe' if severe else ''}): "
            f"{html.escape((text or '').replace(feature, name))}</li>"  # words, never the column name
            for feature, name, psi, status, severe, text in zip(
                drift["feature"].to_list(), names, drift["psi"].to_list(), drift["status"].to_list(),
                drift["severe"].to_list() if "severe" in drift.columns else [False] * drift.height,
                drift["explanation"].to_list())
            if status == "warning")
        svg += f'<ul class="drift-explanations">{items}</ul>'
    return _figure("drift", title, svg, note=note)


def _consent(con) -> str:
    title = "Customers excluded by consent (latest state: withdrawn)"
    counts = _frame(con, "staging.consent_state",
                    "SELECT purpose || ' withdrawn' AS label, count(DISTINCT customer_pseudonym) AS value "
                    "FROM staging.consent_state WHERE is_latest AND state = 'withdrawn' GROUP BY ALL ORDER BY 1")
    if counts.height == 0:
        return _figure("consent", title, None, empty="no consent withdrawn" if counts.width else "no consent data yet")
    svg = charts.render(charts.labelled_bars(counts.to_dicts(), value_title="customers", count=True), "consent")
    return _figure("consent", title, svg,
                   note="profiling withdrawn: not scored; marketing withdrawn: scored, never contacted")


# --- tables --------------------------------------------------------------------------------------


def tier_summary(con: duckdb.DuckDBPyConnection, config: Config) -> pl.DataFrame:
    """One row per tier in severity order, tiers without customers included (0)."""
    counts = _frame(con, "ml.churn_scores", "SELECT CAST(risk_tier AS VARCHAR) AS tier, count(*) AS customers, "
                                            "sum(value_at_risk) AS value_at_risk FROM ml.churn_scores GROUP BY ALL")
    if counts.height == 0:
        return counts
    found = {t: (c, v) for t, c, v in counts.iter_rows()}
    return pl.DataFrame([{"tier": t, "customers": int(found.get(t, (0, 0.0))[0]),
                          "value_at_risk": float(found.get(t, (0, 0.0))[1] or 0.0),
                          "action": config.tiers.actions.get(t, "")} for t in TIERS])


def act_on_first(con: duckdb.DuckDBPyConnection, limit: int) -> pl.DataFrame:
    """The high- and medium-tier customers to act on first (tier, then value at risk), with their top
    reasons in words, whether they may be contacted, and their group in the latest campaign."""
    if "ml.churn_scores" not in warehouse.relations(con):
        return pl.DataFrame()
    present = warehouse.columns(con, "ml.churn_scores")
    # Scores written before these columns existed: shown as unknown until the next `churnwh score`.
    contactable = "s.contactable" if "contactable" in present else "NULL::BOOLEAN"
    group = "CAST(s.campaign_group AS VARCHAR)" if "campaign_group" in present else "NULL::VARCHAR"
    top = _frame(con, "ml.churn_scores", f"""
        SELECT s.customer_pseudonym AS pseudonym, CAST(s.risk_tier AS VARCHAR) AS tier, s.churn_probability,
               s.value_at_risk, {contactable} AS contactable, {group} AS campaign_group
        FROM ml.churn_scores s
        WHERE CAST(s.risk_tier AS VARCHAR) IN ('high', 'medium')
        ORDER BY CAST(s.risk_tier AS VARCHAR) = 'medium', s.priority_rank, s.customer_pseudonym
        LIMIT ?""", [limit])
    if top.height == 0:
        return top
    words = reasons_in_words(con, top["pseudonym"].to_list())
    return top.with_columns(reasons=pl.Series([words.get(p, []) for p in top["pseudonym"]],
                                              dtype=pl.List(pl.String)))


def _tier_table(summary: pl.DataFrame, currency: str) -> str:
    if summary.height == 0:
        return '<p class="empty">No scores yet: run <code>churnwh build</code>.</p>'
    total = max(int(summary["customers"].sum()), 1)
    rows = "".join(
        f'<tr class="tier-{t}"><th scope="row">{t}</th><td class="num">{c:,}</td><td class="num">{c / total:.0%}</td>'
        f'<td class="num">{v:,.0f}</td><td>{html.escape(a)}</td></tr>' for t, c, v, a in summary.iter_rows())
    return ('<table class="tiers"><thead><tr><th>risk tier</th><th>customers</th><th>share</th>'
            f'<th>value at risk{html.escape(currency)}</th><th>action</th></tr></thead><tbody>{rows}</tbody></table>')


def _yes_no(value) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def _act_table(top: pl.DataFrame, currency: str) -> str:
    if top.width == 0:
        return '<p class="empty" id="act-on-first-empty">No scores yet: run <code>churnwh build</code>.</p>'
    if top.height == 0:
        return ('<p class="empty" id="act-on-first-empty">No customer is in the high or medium risk tier: '
                'nobody to act on now.</p>')
    rows = "".join(
        f'<tr class="tier-{r["tier"]}"><td class="num">{i}</td><td class="pseudonym">{html.escape(r["pseudonym"])}'
        f'</td><td>{r["tier"]}</td><td class="num">{r["churn_probability"]:.0%}</td>'
        f'<td class="num">{r["value_at_risk"]:,.0f}</td>'
        f'<td><ul>{"".join(f"<li>{html.escape(w)}</li>" for w in r["reasons"]) or "<li>none recorded</li>"}</ul></td>'
        f'<td>{_yes_no(r["contactable"])}</td><td>{html.escape(r["campaign_group"] or "unknown")}</td></tr>'
        for i, r in enumerate(top.iter_rows(named=True), start=1))
    note = ('<p class="note">Top reasons: the explanation\'s strongest actionable drivers that raise this '
            "customer\'s risk (usage, engagement, price and plan, support, e-mail); the customer profile (tenure, "
            "acquisition channel, demographics such as age band, gender or region) is never a reason here. "
            "Contactable: the latest marketing consent is granted. Campaign group: in the latest campaign "
            "(<code>churnwh plan</code>).</p>")
    return (f'<table class="act" id="act-on-first"><thead><tr><th>#</th><th>pseudonym</th><th>tier</th>'
            f'<th>churn probability</th><th>value at risk{html.escape(currency)}</th><th>top reasons (raising risk)</th>'
            f'<th>contactable</th><th>campaign group</th></tr></thead><tbody>{rows}</tbody></table>{note}')


# --- page ----------------------------------------------------------------------------------------

SCRIPT = """
<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });
document.addEventListener('DOMContentLoaded', function () {
  var figures = document.querySelectorAll('figure[data-plot]');
  var rendered = 0, empty = 0, outside = 0;
  figures.forEach(function (figure) {
    var svg = figure.querySelector('svg');
    if (!svg) { empty += 1; return; }
    var box = svg.getBBox();
    if (svg.querySelector('.role-mark') && box.width > 0 && box.height > 0) { rendered += 1; }
    var frame = svg.getBoundingClientRect();
    svg.querySelectorAll('text').forEach(function (text) {
      var r = text.getBoundingClientRect();
      if (r.width > 0 && (r.left < frame.left - 1 || r.right > frame.right + 1 || r.top < frame.top - 1 ||
                          r.bottom > frame.bottom + 1)) { outside += 1; }
    });
  });
  var page = document.documentElement;
  document.body.setAttribute('data-plots', String(figures.length));
  document.body.setAttribute('data-plots-rendered', String(rendered));
  document.body.setAttribute('data-plots-empty', String(empty));
  document.body.setAttribute('data-labels-outside', String(outside));
  document.body.setAttribute('data-overflow-x', String(Math.max(0, page.scrollWidth - page.clientWidth)));
  document.body.setAttribute('data-errors', String(window.__errors.length));
});
</script>
"""

STYLE = """
:root { color: #222; font-family: "Liberation Sans", Arial, Helvetica, sans-serif; }
body { margin: 0; background: #f4f4f2; }
main { max-width: 760px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 0 0 8px; border-bottom: 2px solid #ddd; }
section { margin-top: 32px; } p { line-height: 1.4; } .meta { color: #555; margin-top: 0; }
figure { margin: 16px 0; break-inside: avoid; page-break-inside: avoid; }
figcaption { font-size: 14px; margin-bottom: 4px; } figcaption .note { display: block; color: #555; font-size: 12px; }
figure svg { display: block; max-width: 100%; height: auto; }
.empty { color: #666; font-style: italic; border: 1px dashed #ccc; padding: 12px; }
.note { color: #555; font-size: 12px; }
table { border-collapse: collapse; font-size: 12.5px; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid #999; } td.num { text-align: right; white-space: nowrap; }
td.pseudonym { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 11px;
               overflow-wrap: anywhere; width: 17ch; }
table.act ul { margin: 0; padding-left: 14px; } table.act li { margin: 0; }
table.tiers tr.tier-high th, table.act tr.tier-high td:nth-child(3) { color: #b2182b; font-weight: bold; }
table.tiers tr.tier-medium th, table.act tr.tier-medium td:nth-child(3) { color: #a0620a; font-weight: bold; }
@media print {
  @page { size: auto; margin: 14mm 12mm; }
  body { background: #fff; }
  main { max-width: none; padding: 0; }
  section { break-before: page; page-break-before: always; margin-top: 0; }
  section.first { break-before: auto; page-break-before: auto; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
}
"""


def _at_risk_intro(scored: int, as_of: str, horizon: int) -> str:
    return (f"<p>{scored:,} customers scored on {html.escape(as_of)}. Value at risk = churn probability × "
            f"monthly revenue × {horizon} months.</p>")


def _act_intro(customers: int) -> str:
    return (f"<p>High risk first, then medium; within a tier the largest value at risk first (at most {customers}). "
            "Customers are shown by pseudonym only: <code>churnwh contacts --tier high</code> writes the "
            "contactable customers of a tier, re-identified, to a CSV for the retention team (logged in the audit "
            "log).</p>")


def _section(number: int, title: str, parts: list[str]) -> str:
    first = ' class="first"' if number == 1 else ""
    return f'<section{first} id="s{number}"><h2>{html.escape(title)}</h2>{"".join(parts)}</section>'


def _stale_warning(con: duckdb.DuckDBPyConnection) -> str:
    """A visible warning when the scores were built with --allow-stale (churnwh.store.freshness)."""
    override = freshness.override(con)
    if not override:
        return ""
    stale = ", ".join(f"{html.escape(name)} ends {item['last_event']} ({item['lag_days']} days early)"
                      for name, item in sorted(override["sources"].items()))
    return (f'<p class="meta"><strong>Built with --allow-stale:</strong> {stale}; recent-activity features of these '
            "sources read as if nothing happened, so treat these scores with care.</p>")


def build_html(con: duckdb.DuckDBPyConnection, config: Config, *, customers: int = ACT_ON_FIRST,
               now: dt.datetime | None = None) -> str:
    from churnwh.stages import registry

    record = registry.current(con) if registry.exists(con) else None
    version = record.version if record else None
    labels = feature_labels(con, config)
    currency = f" ({config.scoring.currency})" if config.scoring.currency else ""
    summary = tier_summary(con, config)
    as_of = _frame(con, "ml.churn_scores", "SELECT max(as_of) FROM ml.churn_scores")
    as_of_text = str(as_of.item() if as_of.height and as_of.item() is not None else config.variables.get("as_of"))
    scored = int(summary["customers"].sum()) if summary.height else 0
    sections = [
        ("Who is at risk", [_at_risk_intro(scored, as_of_text, config.scoring.horizon_months),
                            _tier_table(summary, currency), _tiers(summary, currency),
                            _score_distribution(con, config)]),
        ("Customers to act on first", [_act_intro(customers), _act_table(act_on_first(con, customers), currency)]),
        ("Why customers churn", [_drivers(con, labels)]),
        ("How good the model is", [_roc(con, config, version), _lift(con, version), _calibration(con, version)]),
        ("Churn over time and the pilot", [_churn_over_time(con), _pilot(con)]),
        ("Whom a contact changes: uplift from the pilots", [_uplift_intro(con, config), _qini(con, config),
                                                            _targeting_table(targeting_results(con))]),
        ("Data health", [_drift(con, labels), _consent(con)]),
    ]
    body = "".join(_section(i, title, parts) for i, (title, parts) in enumerate(sections, start=1))
    written = (now or dt.datetime.now()).strftime("%Y-%m-%d %H:%M")
    data_end = freshness.data_end(con)  # from the data, never from the configuration
    header = (f'<p class="meta">Scores as of {html.escape(as_of_text)} · data end {data_end or "not measured"} · '
              f'model {html.escape(version or "none")} · page written {written}</p>') + _stale_warning(con)
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><title>Churn risk report</title>'
            f"<style>{STYLE}</style>{SCRIPT}</head><body><main><h1>Churn risk report</h1>{header}{body}</main>"
            "</body></html>")


def write_report(con: duckdb.DuckDBPyConnection, config: Config, output: Path, *,
                 customers: int = ACT_ON_FIRST) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(output.suffix + ".tmp")
    temporary.write_text(build_html(con, config, customers=customers), encoding="utf-8")
    temporary.replace(output)
    return output
