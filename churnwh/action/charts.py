"""The report's charts: small lists of rows in, one inline ``<svg>`` out.

Vega-Lite specifications built with altair and rendered offline by vl-convert (a bundled JavaScript
engine; no browser, no network), so the page needs no script to draw them and prints as it shows.
Every chart writes the values a reader needs next to its marks; counts are integers on integer ticks.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

import altair as alt
import vl_convert as vlc

TIERS = ("high", "medium", "low")
"""Risk tiers in severity order: every chart and table lists them so."""
TIER_COLOURS = ("#b2182b", "#f4a442", "#4d94c8")
RAISES, LOWERS = "#b2182b", "#2a8f5a"
FONT = "Liberation Sans, Arial, Helvetica, sans-serif"
WIDTH = 520  # plot area; with the axis labels each chart stays within an A4/Letter page width


def render(chart: alt.TopLevelMixin, name: str) -> str:
    """The chart as an ``<svg>`` element whose ids cannot collide with another chart's on the page."""
    spec = (chart.configure(font=FONT, padding=8)
            .configure_axis(labelFontSize=11, titleFontSize=12, titleFontWeight="normal", labelColor="#222",
                            titleColor="#222")
            .configure_legend(labelFontSize=11, titleFontSize=12, titleFontWeight="normal", orient="top")
            .configure_view(stroke=None)
            .to_dict())
    svg = vlc.vegalite_to_svg(spec)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{name}-{m.group(1)}"', svg)
    return re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{name}-{m.group(1)})", svg)


def wrap(label: str, width: int = 40, lines: int = 3) -> str:
    """A label broken into at most ``lines`` lines (shown by the axes' ``labelExpr``)."""
    return "\n".join(textwrap.wrap(label, width, max_lines=lines, placeholder=" …")) or label


def distinct(labels: list[str], names: Sequence[str]) -> list[str]:
    """Labels made unique (a chart axis merges equal ones): a repeated label gets its column name."""
    return [f"{label} [{name}]" if labels.count(label) > 1 else label for label, name in zip(labels, names)]


MULTILINE = "split(datum.label, '\\n')"


def _row_step(rows: Sequence[dict]) -> alt.Step:
    """Room for the tallest wrapped label of a horizontal bar chart."""
    lines = max([r["label"].count("\n") + 1 for r in rows] + [1])
    return alt.Step(max(28, 13 * lines + 8))


def _data(rows: Sequence[dict]) -> alt.Data:
    return alt.Data(values=[dict(r) for r in rows])


def _count_axis(title: str) -> alt.Axis:
    return alt.Axis(title=title, format=",d", tickMinStep=1)


def tiers(rows: Sequence[dict], currency: str = "") -> alt.HConcatChart:
    """Customers and value at risk per tier (rows: tier, customers, value_at_risk), both labelled."""
    data = _data(rows)
    y = alt.Y("tier:N", sort=list(TIERS), title="risk tier", axis=alt.Axis(labelFontWeight="bold"))
    colour = alt.Color("tier:N", scale=alt.Scale(domain=list(TIERS), range=list(TIER_COLOURS)), legend=None)
    customers = alt.Chart(data).encode(y=y, x=alt.X("customers:Q", axis=_count_axis("customers"),
                                                    scale=alt.Scale(nice=True)))
    money = alt.Chart(data).encode(y=alt.Y("tier:N", sort=list(TIERS), axis=None),
                                   x=alt.X("value_at_risk:Q", title=f"value at risk{currency}",
                                           axis=alt.Axis(format=",.0f")))
    left = (customers.mark_bar(color="#888").encode(color=colour)
            + customers.mark_text(align="left", dx=4, fontSize=12).encode(text=alt.Text("customers:Q", format=",d")))
    right = (money.mark_bar().encode(color=colour)
             + money.mark_text(align="left", dx=4, fontSize=12).encode(text=alt.Text("value_at_risk:Q",
                                                                                      format=",.0f")))
    size = {"width": WIDTH // 2 - 40, "height": 90}
    return alt.hconcat(left.properties(**size), right.properties(**size), spacing=70)


def score_histogram(rows: Sequence[dict], thresholds: Sequence[tuple[str, float]] = ()) -> alt.VConcatChart:
    """Customers per probability bin (rows: start, end, tier, customers), one panel per tier in severity
    order, each with its own count axis so that a few high-risk customers stay visible beside thousands
    of low-risk ones; the count above each bar, the tier thresholds (if by probability) as dashed rules."""
    scale = alt.Scale(domain=[0, 1], nice=False, padding=0)
    ticks = [i / 10 for i in range(11)]
    rules = _data([{"at": at} for _, at in thresholds])
    panels = []
    for tier, colour in zip(TIERS, TIER_COLOURS):
        mine = [r for r in rows if r["tier"] == tier]
        total = sum(r["customers"] for r in mine)
        bottom = tier == TIERS[-1]
        x = alt.X("start:Q", scale=scale, title="churn probability" if bottom else None,
                  axis=alt.Axis(format=".0%", values=ticks, labels=bottom))
        axis = alt.Axis(title="customers", format=",d", tickMinStep=1, tickCount=3, minExtent=44)
        y = alt.Y("customers:Q", axis=axis,
                  scale=alt.Scale(domain=[0, max([1] + [r["customers"] for r in mine])], nice=True))
        base = alt.Chart(_data(mine))
        layers = [base.mark_bar(color=colour, stroke="white", strokeWidth=0.5).encode(x=x, x2="end:Q", y=y,
                                                                                   y2=alt.datum(0)),
                  base.transform_calculate(middle="(datum.start + datum.end) / 2").mark_text(dy=-5, fontSize=10)
                  .encode(x=alt.X("middle:Q", scale=scale), y=alt.Y("customers:Q"),
                          text=alt.Text("customers:Q", format=",d"))]
        if thresholds:
            layers.append(alt.Chart(rules).mark_rule(strokeDash=[4, 3], color="#444").encode(
                x=alt.X("at:Q", scale=scale)))
        if total == 0:
            layers.append(alt.Chart(_data([{"text": "no customer in this tier"}])).mark_text(
                fontSize=12, color="#666").encode(x=alt.value(WIDTH / 2), y=alt.value(40), text="text:N"))
        title = alt.TitleParams(f"{tier} risk: {total:,} customers", anchor="start", fontSize=12, color=colour,
                                fontWeight="bold")
        panels.append(alt.layer(*layers).properties(width=WIDTH, height=80, title=title))
    return alt.vconcat(*panels, spacing=12)


def drivers(rows: Sequence[dict]) -> alt.LayerChart:
    """Global churn drivers (rows: label, mean_abs_contribution, effect), strongest first, labelled."""
    data = _data(rows)
    base = alt.Chart(data).encode(
        y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelExpr=MULTILINE, labelLimit=300)),
        x=alt.X("mean_abs_contribution:Q", title="average strength of the driver (mean |contribution| to the "
                                                 "log-odds of churn)", axis=alt.Axis(format=".2f", tickCount=5)))
    colour = alt.Color("effect:N", title="on average it", scale=alt.Scale(
        domain=["raises risk", "lowers risk"], range=[RAISES, LOWERS]))
    bars = base.mark_bar().encode(color=colour)
    labels = base.mark_text(align="left", dx=4, fontSize=11).encode(
        text=alt.Text("mean_abs_contribution:Q", format=".3f"))
    return (bars + labels).properties(width=WIDTH - 220, height=_row_step(rows))


def roc(rows: Sequence[dict], auc: float, test_rows: int) -> alt.LayerChart:
    """ROC curve (rows: fpr, tpr) with the diagonal of a random ranking and the AUC written on it."""
    axis = alt.Axis(format=".0%", values=[i / 5 for i in range(6)])
    curve = alt.Chart(_data(rows)).mark_line(color="#1f5f99", strokeWidth=2).encode(
        x=alt.X("fpr:Q", title="false positive rate (retained customers flagged)", axis=axis),
        y=alt.Y("tpr:Q", title="true positive rate (churners caught)", axis=axis), order="order:Q")
    diagonal = alt.Chart(_data([{"fpr": 0, "tpr": 0}, {"fpr": 1, "tpr": 1}])).mark_line(
        color="#999", strokeDash=[4, 3]).encode(x="fpr:Q", y="tpr:Q")
    note = alt.Chart(_data([{"x": 0.55, "y": 0.12, "text": f"AUC {auc:.3f} on {test_rows:,} rows"},
                            {"x": 0.55, "y": 0.04, "text": "dashed: random ranking (AUC 0.5)"}])).mark_text(
        align="left", fontSize=12).encode(x="x:Q", y="y:Q", text="text:N")
    return alt.layer(diagonal, curve, note).properties(width=320, height=320)


def lift(rows: Sequence[dict]) -> alt.LayerChart:
    """Lift per score decile (rows: decile, lift): bars labelled ``3.2×`` and the 1× line of no model."""
    base = alt.Chart(_data(rows)).encode(
        x=alt.X("decile:O", title="score decile (1 = the 10% of customers with the highest scores)",
                axis=alt.Axis(labelAngle=0)),
        y=alt.Y("lift:Q", title="lift (churn rate ÷ overall churn rate)", axis=alt.Axis(format="~g")))
    bars = base.mark_bar(color="#1f5f99")
    labels = base.transform_calculate(text="format(datum.lift, '.1f') + '×'").mark_text(
        dy=-6, fontSize=11).encode(text="text:N")
    rule = alt.Chart(_data([{"lift": 1}])).mark_rule(color="#444", strokeDash=[4, 3]).encode(y="lift:Q")
    return alt.layer(bars, labels, rule).properties(width=WIDTH, height=220)


def calibration(rows: Sequence[dict]) -> alt.LayerChart:
    """Observed against predicted churn per bin (rows: mean_predicted, observed_rate): points on a line."""
    top = max([0.05] + [max(r["mean_predicted"], r["observed_rate"]) for r in rows]) * 1.1
    top = min(1.0, top)
    scale = alt.Scale(domain=[0, top], nice=True)
    base = alt.Chart(_data(rows)).encode(
        x=alt.X("mean_predicted:Q", title="predicted churn probability (bin average)", scale=scale,
                axis=alt.Axis(format=".0%")),
        y=alt.Y("observed_rate:Q", title="observed churn rate", scale=scale, axis=alt.Axis(format=".0%")))
    diagonal = alt.Chart(_data([{"mean_predicted": 0, "observed_rate": 0},
                                {"mean_predicted": top, "observed_rate": top}])).mark_line(
        color="#999", strokeDash=[4, 3]).encode(x=alt.X("mean_predicted:Q", scale=scale),
                                               y=alt.Y("observed_rate:Q", scale=scale))
    line = base.mark_line(color="#1f5f99", point=alt.OverlayMarkDef(size=40, filled=True))
    return alt.layer(diagonal, line).properties(width=320, height=320)


def drift(rows: Sequence[dict], threshold: float) -> alt.LayerChart:
    """Population stability index per feature (rows: label, psi, status), the warning threshold as a rule."""
    base = alt.Chart(_data(rows)).encode(
        y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelExpr=MULTILINE, labelLimit=300)),
        x=alt.X("psi:Q", title="population stability index (training data → current scoring set)",
                axis=alt.Axis(format="~g", tickCount=5)))
    colour = alt.Color("status:N", title="status", scale=alt.Scale(domain=["warning", "ok"],
                                                                   range=[RAISES, "#7aa6c8"]))
    bars = base.mark_bar().encode(color=colour)
    labels = base.mark_text(align="left", dx=4, fontSize=11).encode(text=alt.Text("psi:Q", format=".2f"))
    line = alt.Chart(_data([{"psi": threshold}])).mark_rule(color="#444", strokeDash=[4, 3]).encode(x="psi:Q")
    return alt.layer(bars, labels, line).properties(width=WIDTH - 220, height=_row_step(rows))


def monthly_churn(rows: Sequence[dict]) -> alt.LayerChart:
    """Churn rate per month (rows: month as ISO date, churn_rate, mark: 'highest', 'latest' or ''): the
    marked months labelled."""
    base = alt.Chart(_data(rows)).encode(
        x=alt.X("month:T", title=None, axis=alt.Axis(format="%b %Y", labelOverlap="greedy", labelFlush=True,
                                                      tickCount={"interval": "month", "step": 6})),
        y=alt.Y("churn_rate:Q", title="customers who churned that month", axis=alt.Axis(format=".1%")))
    line = base.mark_line(color="#1f5f99", point=alt.OverlayMarkDef(size=20, filled=True))
    text = alt.Text("churn_rate:Q", format=".1%")
    highest = base.transform_filter("datum.mark == 'highest'").mark_text(dy=-12, fontSize=11, fontWeight="bold")
    latest = base.transform_filter("datum.mark == 'latest'").mark_text(align="left", dx=6, fontSize=11,
                                                                       fontWeight="bold")
    return alt.layer(line, highest.encode(text=text), latest.encode(text=text)).properties(width=WIDTH, height=220)


def labelled_bars(rows: Sequence[dict], *, value_title: str, count: bool = False, percent: bool = False,
                  colours: Sequence[str] = ("#1f5f99",)) -> alt.LayerChart:
    """Horizontal bars (rows: label, value) with the value written at each bar's end."""
    fmt = ",d" if count else ".1%" if percent else ".3g"
    axis = _count_axis(value_title) if count else alt.Axis(title=value_title, format=".0%" if percent else "~g")
    labels = [r["label"] for r in rows]
    base = alt.Chart(_data(rows)).encode(
        y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=300)),
        x=alt.X("value:Q", axis=axis))
    bars = base.mark_bar().encode(color=alt.Color("label:N", legend=None, scale=alt.Scale(
        domain=labels, range=list(colours)[: len(labels)] or ["#1f5f99"])))
    text = base.mark_text(align="left", dx=4, fontSize=12).encode(text=alt.Text("value:Q", format=fmt))
    return alt.layer(bars, text).properties(width=WIDTH - 160, height=alt.Step(34))


RULE_COLOURS = {"uplift model": "#2a8f5a", "two-model baseline": "#7b5ea7", "churn risk": "#b2182b"}


def qini(rows: Sequence[dict], random_end: float) -> alt.LayerChart:
    """Qini curve per targeting rule (rows: rule, share_targeted, qini) and the dashed line of random
    targeting from 0 to ``random_end`` (every rule's last point: the pilot's overall effect)."""
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    colours = [RULE_COLOURS.get(rule, "#1f5f99") for rule in rules]
    x = alt.X("share_targeted:Q", title="share of held-out pilot members contacted, best first by the rule",
              scale=alt.Scale(domain=[0, 1], nice=False), axis=alt.Axis(format=".0%", values=[i / 5 for i in range(6)]))
    y = alt.Y("qini:Q", title="churners prevented per member (cumulative)", axis=alt.Axis(format=".1%"))
    curves = alt.Chart(_data(rows)).mark_line(strokeWidth=2).encode(
        x=x, y=y, order="share_targeted:Q",
        color=alt.Color("rule:N", title="targeting rule", sort=rules, scale=alt.Scale(domain=rules, range=colours)))
    random = alt.Chart(_data([{"share_targeted": 0.0, "qini": 0.0}, {"share_targeted": 1.0, "qini": random_end}])
                       ).mark_line(color="#999", strokeDash=[4, 3]).encode(x="share_targeted:Q", y="qini:Q")
    return alt.layer(random, curves).properties(width=WIDTH - 80, height=260)
