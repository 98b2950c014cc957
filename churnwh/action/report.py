"""`churnwh report`: one self-contained HTML file with inline SVG plots (no network, no scripts from
elsewhere). Every plot is an ``<svg class="plot" data-plot=NAME>``; a plot with no data yet shows a
note instead of marks. A small inline script counts the rendered plots into ``data-plots-rendered``
on ``<body>`` and records script errors in ``data-errors`` (what the browser test reads).

Only aggregates reach the page: curves, histograms, rates and counts, never a customer row.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from churnwh.config import Config
from churnwh.store import warehouse

WIDTH, HEIGHT = 560, 300
MARGIN = {"left": 56, "right": 16, "top": 16, "bottom": 40}
TIER_COLOURS = {"high": "#c0392b", "medium": "#e67e22", "low": "#2e86c1"}
PLOTS = ("roc", "lift", "calibration", "score_distribution", "drivers", "drift", "churn_over_time", "pilot",
         "consent")


def _frame(con: duckdb.DuckDBPyConnection, relation: str, query: str) -> pl.DataFrame:
    if relation not in warehouse.relations(con):
        return pl.DataFrame()
    return pl.from_arrow(con.sql(query).to_arrow_table())


# --- SVG primitives ----------------------------------------------------------------------------


class Axes:
    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]):
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1
        self.w = WIDTH - MARGIN["left"] - MARGIN["right"]
        self.h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]

    def x(self, v: float) -> float:
        return MARGIN["left"] + (v - self.x0) / (self.x1 - self.x0) * self.w

    def y(self, v: float) -> float:
        return MARGIN["top"] + self.h - (v - self.y0) / (self.y1 - self.y0) * self.h

    def frame(self, x_label: str, y_label: str, x_ticks=None, y_ticks=None) -> str:
        parts = [f'<rect x="{MARGIN["left"]}" y="{MARGIN["top"]}" width="{self.w}" height="{self.h}" '
                 'fill="none" stroke="#bbb"/>']
        for v in (x_ticks if x_ticks is not None else np.linspace(self.x0, self.x1, 5)):
            label = v if isinstance(v, str) else _fmt(v)
            xv = self.x(float(v)) if not isinstance(v, str) else None
            if xv is not None:
                parts.append(f'<text x="{xv:.1f}" y="{HEIGHT - MARGIN["bottom"] + 14}" font-size="10" '
                             f'text-anchor="middle">{html.escape(str(label))}</text>')
        for v in (y_ticks if y_ticks is not None else np.linspace(self.y0, self.y1, 5)):
            parts.append(f'<text x="{MARGIN["left"] - 4}" y="{self.y(float(v)) + 3:.1f}" font-size="10" '
                         f'text-anchor="end">{_fmt(v)}</text>')
        parts.append(f'<text x="{MARGIN["left"] + self.w / 2}" y="{HEIGHT - 6}" font-size="11" '
                     f'text-anchor="middle">{html.escape(x_label)}</text>')
        parts.append(f'<text transform="translate(12,{MARGIN["top"] + self.h / 2}) rotate(-90)" font-size="11" '
                     f'text-anchor="middle">{html.escape(y_label)}</text>')
        return "".join(parts)

    def line(self, xs, ys, colour="#2e86c1", dash="") -> str:
        points = " ".join(f"{self.x(float(a)):.1f},{self.y(float(b)):.1f}" for a, b in zip(xs, ys)
                          if math.isfinite(float(a)) and math.isfinite(float(b)))
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        return f'<polyline class="mark" points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dashed}/>'


def _fmt(v: float) -> str:
    v = float(v)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _svg(name: str, title: str, body: str, note: str = "") -> str:
    caption = f'<figcaption>{html.escape(title)}{(" — " + html.escape(note)) if note else ""}</figcaption>'
    return (f'<figure>{caption}<svg class="plot" data-plot="{name}" xmlns="http://www.w3.org/2000/svg" '
            f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{html.escape(title)}">{body}</svg></figure>')


def _empty(name: str, title: str, why: str) -> str:
    body = (f'<text class="mark empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="13" '
            f'fill="#777">{html.escape(why)}</text>')
    return _svg(name, title, body)


def _bars(name: str, title: str, labels: list[str], values: list[float], *, colours=None, x_label="",
          threshold: float | None = None, note: str = "") -> str:
    n = len(values)
    if n == 0:
        return _empty(name, title, "no data yet")
    top = max(max(values), threshold or 0, 1e-9) * 1.1
    left = 170
    w = WIDTH - left - MARGIN["right"]
    row = (HEIGHT - MARGIN["top"] - MARGIN["bottom"]) / n
    parts = []
    for i, (label, value) in enumerate(zip(labels, values)):
        colour = (colours[i] if colours else "#2e86c1")
        y = MARGIN["top"] + i * row
        parts.append(f'<text x="{left - 4}" y="{y + row * 0.7:.1f}" font-size="{min(11, row * 0.8):.1f}" '
                     f'text-anchor="end">{html.escape(str(label)[:28])}</text>')
        parts.append(f'<rect class="mark" x="{left}" y="{y + row * 0.1:.1f}" width="{max(value, 0) / top * w:.1f}" '
                     f'height="{row * 0.8:.1f}" fill="{colour}"><title>{html.escape(str(label))}: '
                     f'{value:.4g}</title></rect>')
    if threshold is not None:
        tx = left + threshold / top * w
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{MARGIN["top"]}" y2="{HEIGHT - MARGIN["bottom"]}" '
                     'stroke="#c0392b" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{left + w / 2}" y="{HEIGHT - 10}" font-size="11" text-anchor="middle">'
                 f'{html.escape(x_label)}</text>')
    return _svg(name, title, "".join(parts), note)


# --- plots -------------------------------------------------------------------------------------


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    y = labels[order]
    tp = np.concatenate([[0], np.cumsum(y)])
    fp = np.concatenate([[0], np.cumsum(1 - y)])
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def _roc(con, config: Config, version: str | None) -> str:
    title = "ROC curve (latest observation date of the training set, current model)"
    tr = config.training
    if version is None or tr.model not in warehouse.relations(con):
        return _empty("roc", title, "no model yet")
    from churnwh.ml.train import predict_proba
    from churnwh.stages import registry

    test = pl.from_arrow(con.sql(
        f'SELECT * FROM {tr.model} WHERE "{tr.date_column}" = (SELECT max("{tr.date_column}") FROM {tr.model})'
    ).to_arrow_table())
    labels = test[tr.label_column].to_numpy().astype(float) if test.height else np.zeros(0)
    if test.height == 0 or labels.min() == labels.max():
        return _empty("roc", title, "needs churned and retained rows")
    model = registry.load(config.warehouse.models, version)
    scores = predict_proba(model, test)
    fpr, tpr = roc_points(labels, scores)
    from churnwh.ml.metrics import roc_auc

    axes = Axes((0, 1), (0, 1))
    body = axes.frame("false positive rate", "true positive rate") + axes.line([0, 1], [0, 1], "#999", "4 3")
    body += axes.line(fpr, tpr)
    return _svg("roc", title, body, f"AUC {roc_auc(labels, scores):.3f} on {test.height:,} rows")


def _lift(con, version) -> str:
    title = "Lift by score decile (test rows)"
    lift = _frame(con, "ml.lift", f"SELECT decile, lift FROM ml.lift WHERE version = '{version}' ORDER BY decile")
    if lift.height == 0:
        return _empty("lift", title, "no evaluation yet")
    axes = Axes((1, max(lift["decile"].max(), 2)), (0, max(float(lift["lift"].max()), 1.0) * 1.1))
    body = axes.frame("decile (1 = highest scores)", "lift", x_ticks=lift["decile"].to_list())
    body += axes.line([1, lift["decile"].max()], [1, 1], "#999", "4 3") + axes.line(lift["decile"], lift["lift"])
    return _svg("lift", title, body)


def _calibration(con, version) -> str:
    title = "Calibration (test rows)"
    cal = _frame(con, "ml.calibration", f"SELECT mean_predicted, observed_rate FROM ml.calibration "
                                        f"WHERE version = '{version}' ORDER BY bin")
    if cal.height == 0:
        return _empty("calibration", title, "no evaluation yet")
    top = max(float(cal["mean_predicted"].max()), float(cal["observed_rate"].max()), 0.05) * 1.1
    axes = Axes((0, top), (0, top))
    body = axes.frame("mean predicted probability", "observed churn rate") + axes.line([0, top], [0, top], "#999",
                                                                                         "4 3")
    body += axes.line(cal["mean_predicted"], cal["observed_rate"])
    body += "".join(f'<circle class="mark" cx="{axes.x(a):.1f}" cy="{axes.y(b):.1f}" r="3" fill="#2e86c1"/>'
                    for a, b in zip(cal["mean_predicted"], cal["observed_rate"]))
    return _svg("calibration", title, body)


def _score_distribution(con) -> str:
    title = "Score distribution by risk tier (current scores)"
    scores = _frame(con, "ml.churn_scores", "SELECT churn_probability, risk_tier FROM ml.churn_scores")
    if scores.height == 0:
        return _empty("score_distribution", title, "no scores yet")
    edges = np.linspace(0, 1, 21)
    counts = {t: np.histogram(scores.filter(pl.col("risk_tier") == t)["churn_probability"].to_numpy(), edges)[0]
              for t in TIER_COLOURS}
    total = sum(counts.values())
    axes = Axes((0, 1), (0, max(float(total.max()), 1.0) * 1.1))
    body = axes.frame("churn probability", "customers")
    bottom = np.zeros(20)
    for tier, colour in TIER_COLOURS.items():
        for i, c in enumerate(counts[tier]):
            if c:
                x0, x1 = axes.x(edges[i]), axes.x(edges[i + 1])
                y_top, y_bottom = axes.y(bottom[i] + c), axes.y(bottom[i])
                body += (f'<rect class="mark" x="{x0:.1f}" y="{y_top:.1f}" width="{x1 - x0 - 1:.1f}" '
                         f'height="{y_bottom - y_top:.1f}" fill="{colour}"><title>{tier}: {c}</title></rect>')
        bottom += counts[tier]
    legend = " ".join(f"{t} ({int(counts[t].sum()):,})" for t in TIER_COLOURS)
    return _svg("score_distribution", title, body, legend)


def _drivers(con) -> str:
    imp = _frame(con, "ml.feature_importance", "SELECT feature, mean_abs_contribution, mean_contribution "
                                               "FROM ml.feature_importance ORDER BY rank LIMIT 15")
    colours = ["#c0392b" if v > 0 else "#27ae60" for v in imp["mean_contribution"]] if imp.height else None
    return _bars("drivers", "Global churn drivers (mean |attribution|, log-odds; red raises risk on average)",
                 imp["feature"].to_list() if imp.height else [],
                 imp["mean_abs_contribution"].to_list() if imp.height else [], colours=colours,
                 x_label="mean absolute contribution")


def _drift(con) -> str:
    drift = _frame(con, "ml.drift", "SELECT feature, psi, threshold, status FROM ml.drift "
                                    "WHERE psi IS NOT NULL ORDER BY psi DESC LIMIT 15")
    if drift.height == 0:
        return _empty("drift", "Drift (PSI, training data vs current scoring set)", "no drift measured yet")
    colours = ["#c0392b" if s == "warning" else "#2e86c1" for s in drift["status"]]
    warnings = int((drift["status"] == "warning").sum())
    return _bars("drift", "Drift (PSI, training data vs current scoring set; dashed: warning threshold)",
                 drift["feature"].to_list(), drift["psi"].to_list(), colours=colours,
                 threshold=float(drift["threshold"][0]), x_label="population stability index",
                 note=f"{warnings} warnings among the 15 largest")


def _churn_over_time(con) -> str:
    title = "Monthly churn rate (all consenting customers)"
    monthly = _frame(con, "marts.churn_monthly", "SELECT month, churn_rate FROM marts.churn_monthly "
                                                 "WHERE segment_type = 'all' ORDER BY month")
    if monthly.height < 2:
        return _empty("churn_over_time", title, "no monthly history yet")
    days = [(m - monthly["month"][0]).days for m in monthly["month"]]
    axes = Axes((0, days[-1]), (0, max(float(monthly["churn_rate"].max()), 0.01) * 1.15))
    ticks = np.linspace(0, days[-1], 5)
    body = axes.frame("", "churn rate", x_ticks=[])
    for t in ticks:  # month labels
        label = (monthly["month"][0] + dt.timedelta(days=float(t))).strftime("%Y-%m")
        body += (f'<text x="{axes.x(t):.1f}" y="{HEIGHT - 8}" font-size="10" text-anchor="middle">'
                 f'{label}</text>')
    body += axes.line(days, monthly["churn_rate"])
    return _svg("churn_over_time", title, body)


def _pilot(con) -> str:
    title = "Pilot: churn of treated vs control customers"
    results = _frame(con, "ml.pilot_results", "SELECT * FROM ml.pilot_results ORDER BY evaluated_at DESC LIMIT 1")
    if results.height == 0:
        return _empty("pilot", title, "no pilot evaluated yet (churnwh plan, then churnwh pilot-report)")
    r = results.row(0, named=True)
    note = (f"campaign {r['campaign_id']}: effect {r['effect']:+.1%} (95% CI {r['ci_low']:+.1%} to "
            f"{r['ci_high']:+.1%})")
    return _bars("pilot", title, [f"treated (n={r['treated']})", f"control (n={r['control']})"],
                 [r["treated_churn_rate"], r["control_churn_rate"]], colours=["#27ae60", "#999"],
                 x_label="realized churn rate", note=note)


def _consent(con) -> str:
    counts = _frame(con, "staging.consent_state",
                    "SELECT purpose || ' withdrawn' AS what, count(DISTINCT customer_pseudonym) AS n "
                    "FROM staging.consent_state WHERE is_latest AND state = 'withdrawn' GROUP BY ALL ORDER BY 1")
    return _bars("consent", "Customers excluded by consent (latest state withdrawn)",
                 counts["what"].to_list() if counts.height else [],
                 [float(v) for v in counts["n"]] if counts.height else [], x_label="customers")


SCRIPT = """
<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });
document.addEventListener('DOMContentLoaded', function () {
  var plots = document.querySelectorAll('svg.plot');
  var rendered = 0;
  plots.forEach(function (svg) {
    var box = svg.getBBox();
    if (svg.querySelector('.mark') && box.width > 0 && box.height > 0) { rendered += 1; }
  });
  document.body.setAttribute('data-plots', String(plots.length));
  document.body.setAttribute('data-plots-rendered', String(rendered));
  document.body.setAttribute('data-errors', String(window.__errors.length));
});
</script>
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } .grid { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; border: 1px solid #ddd; padding: 8px; } figcaption { font-size: 13px; margin-bottom: 4px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ddd; padding: 3px 8px; }
"""


def build_html(con: duckdb.DuckDBPyConnection, config: Config) -> str:
    from churnwh.stages import registry

    record = registry.current(con) if registry.exists(con) else None
    version = record.version if record else None
    plots = [_roc(con, config, version), _lift(con, version), _calibration(con, version), _score_distribution(con),
             _drivers(con), _drift(con), _churn_over_time(con), _pilot(con), _consent(con)]
    summary = _frame(con, "ml.churn_scores", "SELECT risk_tier, count(*) AS customers, "
                                             "round(sum(value_at_risk), 2) AS value_at_risk "
                                             "FROM ml.churn_scores GROUP BY ALL ORDER BY 1")
    rows = "".join(f"<tr><td>{html.escape(str(t))}</td><td>{c:,}</td><td>{v:,.2f}</td></tr>"
                   for t, c, v in summary.iter_rows()) if summary.height else ""
    header = (f"model {html.escape(version or 'none')}, as_of {html.escape(str(config.variables.get('as_of')))}, "
              f"written {dt.datetime.now():%Y-%m-%d %H:%M}")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>churnwh report</title>"
            f"<style>{STYLE}</style>{SCRIPT}</head><body><h1>churnwh report</h1><p>{header}</p>"
            "<table><tr><th>risk tier</th><th>customers</th><th>value at risk</th></tr>"
            f"{rows}</table><div class=\"grid\">{''.join(plots)}</div></body></html>")


def write_report(con: duckdb.DuckDBPyConnection, config: Config, output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(output.suffix + ".tmp")
    temporary.write_text(build_html(con, config), encoding="utf-8")
    temporary.replace(output)
    return output
