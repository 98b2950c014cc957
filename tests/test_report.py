"""`churnwh report` in a real headless browser (Chromium from the system packages), and `churnwh query`."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from churnwh.action.report import short_label
from tests.helpers import churnwh

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{name}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           *args], capture_output=True, text=True, timeout=120)


CANARY_NAME, CANARY_EMAIL = "Quintessa Canarywood", "quill.canary7731@example.org"
TIERS_BY_RANK = """
[tiers]
mode = "top_fraction"
high = 0.1
medium = 0.3
"""


@pytest.fixture(scope="module")
def report_project(built_project, tmp_path_factory):
    """A copy of the built demo with all three tiers filled (tiers by rank), a campaign, and canary
    identifiers on the raw row of the customer at the top of the 'act on first' list."""
    project = tmp_path_factory.mktemp("report") / "project"
    shutil.copytree(built_project[0], project)
    config = (project / "churnwh.toml").read_text()
    config, replaced = re.subn(r"^\[tiers\]\n(?:(?!\[).*\n)*", TIERS_BY_RANK.lstrip() + "\n", config, flags=re.MULTILINE)
    assert replaced == 1
    (project / "churnwh.toml").write_text(config)
    for command in (("score",), ("plan", "--campaign", "spring", "--budget", "400")):
        result = churnwh(project, *command)
        assert result.returncode == 0, result.stderr
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        con.execute("""UPDATE raw.customers SET full_name = ?, email = ? WHERE customer_id = (
                           SELECT k.customer_id FROM raw.customer_keys k JOIN ml.churn_scores s USING (customer_pseudonym)
                           ORDER BY s.risk_tier, s.priority_rank LIMIT 1)""", [CANARY_NAME, CANARY_EMAIL])
    return project


def _texts(fragment: str, role: str | None = None) -> list[str]:
    """The words of the SVG <text> elements (one per label, tspans joined) of ``role`` (e.g. axis-title)."""
    if role is not None:
        groups = re.findall(rf'<g class="mark-text role-{role}[^"]*"[^>]*>(.*?)</g>', fragment, flags=re.DOTALL)
        fragment = "".join(groups)
    found = re.findall(r"<text[^>]*>(.*?)</text>", fragment, flags=re.DOTALL)
    return [html.unescape(re.sub(r"<[^>]+>", " ", t)).strip().replace("  ", " ") for t in found]


def _figures(dom: str) -> dict[str, str]:
    return dict(re.findall(r'<figure data-plot="([\w-]+)"[^>]*>(.*?)</figure>', dom, flags=re.DOTALL))


def _visible_text(dom: str) -> str:
    body = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", dom, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


INTEGER = re.compile(r"^\d{1,3}(,\d{3})*$")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_report_draws_labelled_charts_and_the_customers_to_act_on(report_project, tmp_path):
    project = report_project
    output = tmp_path / "report.html"
    result = churnwh(project, "report", "--output", str(output), "--customers", "12")
    assert result.returncode == 0, result.stderr
    page = output.read_text()
    # Self-contained: no external resource of any kind, no script but the page's own.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "<script src" not in page

    # Loaded at an A4 page's width: no script error, every chart drawn, no label outside its chart.
    dom = _chromium(tmp_path, "dom", "--virtual-time-budget=5000", "--window-size=794,1123", "--dump-dom",
                    output.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom.stdout).group(1)))
    assert attributes["data-errors"] == "0"
    assert int(attributes["data-plots"]) == 11
    figures = _figures(dom.stdout)
    empty = {name for name, body in figures.items() if "<svg" not in body}
    assert empty == {"pilot", "qini"}  # no pilot evaluated, no uplift model in this project: a note says so
    assert int(attributes["data-plots-rendered"]) == 11 - len(empty)
    assert attributes["data-labels-outside"] == "0"
    assert attributes["data-overflow-x"] == "0"

    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        tiers = dict(con.sql("SELECT CAST(risk_tier AS VARCHAR), count(*) FROM ml.churn_scores GROUP BY ALL").fetchall())
        expected = con.sql("""SELECT customer_pseudonym, CAST(risk_tier AS VARCHAR), contactable, campaign_group
                              FROM ml.churn_scores WHERE risk_tier IN ('high', 'medium')
                              ORDER BY risk_tier, priority_rank LIMIT 12""").fetchall()
        pseudonyms = {p for (p,) in con.sql("SELECT customer_pseudonym FROM ml.churn_scores").fetchall()}
        features = [f for (f,) in con.sql("SELECT feature FROM ml.feature_importance ORDER BY rank LIMIT 15").fetchall()]
        comments = dict(con.sql("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'marts' "
                                "AND table_name = 'scoring_set'").fetchall())
        identifiers = {v for row in con.sql("SELECT customer_id, full_name, email, phone FROM raw.customers").fetchall()
                       for v in row if v}

    # Tiers in severity order, with their counts written on the bars.
    assert set(tiers) == {"high", "medium", "low"}
    labels = _texts(figures["tiers"], "axis-label")
    assert [t for t in labels if t in tiers] == ["high", "medium", "low"]
    assert {"customers", "value at risk (EUR)"} <= set(_texts(figures["tiers"], "axis-title"))
    assert [f"{tiers[t]:,}" for t in ("high", "medium", "low")] == _texts(figures["tiers"], "mark")[:3]
    assert all(INTEGER.match(t) for t in labels if t not in tiers)  # nice integer ticks: 0, 20, 40 ...
    # The score histogram: one panel per tier in severity order, integer counts on integer axes.
    histogram = figures["score_distribution"]
    assert _texts(histogram, "title-text") == [f"{t} risk: {tiers[t]:,} customers" for t in ("high", "medium", "low")]
    assert {"churn probability", "customers"} <= set(_texts(histogram, "axis-title"))
    ticks = _texts(histogram, "axis-label")
    assert "0%" in ticks and "100%" in ticks
    assert [t for t in ticks if not t.endswith("%")] and all(INTEGER.match(t) for t in ticks if not t.endswith("%"))
    assert sum(int(t.replace(",", "")) for t in _texts(histogram, "mark")) == sum(tiers.values())
    # Drivers and drift named in words from the column comments, never by column name.
    words = " ".join(_texts(figures["drivers"], "axis-label"))
    assert [f for f in features if short_label(comments[f]) not in words] == []
    visible = _visible_text(dom.stdout)
    assert "__score__" not in visible
    assert not [name for name in comments if "_" in name and re.search(rf"\b{name}\b", visible)]
    # Values where a reader needs them.
    assert all(t.endswith("×") for t in _texts(figures["lift"], "mark"))
    assert any(t.startswith("AUC 0.") for t in _texts(figures["roc"], "mark"))
    months = _texts(figures["churn_over_time"], "axis-label")
    assert months and all(re.match(r"^\d+(\.\d)?%$|^[A-Z][a-z]{2} \d{4}$", t) for t in months), months
    assert [t for t in _texts(figures["churn_over_time"], "mark") if t.endswith("%")]

    # The customers to act on first: high before medium, by value at risk, reasons in words.
    table = re.search(r'<table class="act" id="act-on-first">.*?</table>', dom.stdout, flags=re.DOTALL).group(0)
    rows = re.findall(r"<tr class=\"tier-(\w+)\">(.*?)</tr>", table, flags=re.DOTALL)
    assert len(rows) == len(expected) == 12
    for (tier, cells), (pseudonym, expected_tier, contactable, group) in zip(rows, expected):
        values = [html.unescape(re.sub(r"<[^>]+>", "|", c)).strip("|") for c in
                  re.findall(r"<td[^>]*>(.*?)</td>", cells, flags=re.DOTALL)]
        assert values[1] == pseudonym and tier == values[2] == expected_tier
        assert values[4].replace(",", "").isdigit()
        reasons = [r for r in values[5].split("|") if r]
        assert reasons and all(": " in r and "_" not in r for r in reasons), reasons
        assert values[6] == ("yes" if contactable else "no") and values[7] == group
    assert {group for *_, group in expected} >= {"treated"}

    # No identifier but pseudonyms: every hex token is a scored customer's pseudonym; no source id,
    # name, e-mail or phone of any customer (the canary sits on the first row's customer).
    assert CANARY_NAME not in page and CANARY_EMAIL not in page
    assert set(re.findall(r"\b[0-9a-f]{32}\b", page)) <= pseudonyms
    assert not {i for i in identifiers if i in page}

    # Printable: every chart fits the text width of an A4 page (186 mm = 703 px), a page at least per
    # section (each starts a page), and a picture of the page.
    widths = [float(w) for w in re.findall(r'<svg[^>]*?\swidth="([\d.]+)"', page)]
    assert len(widths) == 11 - len(empty) and max(widths) <= 703, widths
    pdf = tmp_path / "report.pdf"
    printed = _chromium(tmp_path, "pdf", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", output.as_uri())
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert max(int(n) for n in re.findall(rb"/Count (\d+)", pdf.read_bytes())) >= 6
    screenshot = tmp_path / "report.png"
    shot = _chromium(tmp_path, "shot", f"--screenshot={screenshot}", "--window-size=900,2600", output.as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 50_000


def test_report_before_the_first_build_says_what_to_run(tmp_path):
    from churnwh.action.report import build_html
    from churnwh.config import load_config
    from tests.helpers import make_project

    with duckdb.connect() as empty:
        page = build_html(empty, load_config(make_project(tmp_path / "project")))
    notes = re.findall(r'<p class="empty"[^>]*>(.*?)</p>', page)
    assert len(re.findall(r"<figure data-plot=", page)) == 11 and "<svg" not in page
    assert "No scores yet: run <code>churnwh build</code>." in notes and "no model yet" in notes


def test_query_formats_and_read_only(built_project):
    project, _ = built_project
    sql = "SELECT risk_tier, count(*) AS n FROM churn_scores GROUP BY ALL ORDER BY 1"
    as_csv = churnwh(project, "query", sql, "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    as_json = churnwh(project, "query", sql, "--format", "json")
    assert json.loads(as_json.stdout) == [{"risk_tier": r["risk_tier"], "n": int(r["n"])} for r in rows]
    as_table = churnwh(project, "query", sql)
    assert as_table.returncode == 0 and "risk_tier" in as_table.stdout
    for statement in ("DROP TABLE churn_scores", "COPY churn_scores TO '/tmp/x.csv'",
                      "SELECT * FROM read_csv('/etc/passwd')"):
        refused = churnwh(project, "query", statement)
        assert refused.returncode == 1, statement
        assert refused.stderr.startswith("error: query failed")
    bad_format = churnwh(project, "query", sql, "--format", "xml")
    assert bad_format.returncode == 1 and "table, csv, json" in bad_format.stderr


def test_example_queries_run_on_the_published_file(built_project):
    from tests.helpers import REPO

    project, _ = built_project
    for path in sorted((REPO / "examples" / "queries").glob("*.sql")):
        result = churnwh(project, "query", "--file", str(path), "--format", "json")
        assert result.returncode == 0, (path.name, result.stderr)
        assert isinstance(json.loads(result.stdout), list)
