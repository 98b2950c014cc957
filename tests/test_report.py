"""`churnwh report` in a real headless browser (Chromium from the system packages), and `churnwh query`."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import churnwh

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{name}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_report_renders_every_plot_in_a_browser(built_project, tmp_path):
    project, _ = built_project
    output = tmp_path / "report.html"
    result = churnwh(project, "report", "--output", str(output))
    assert result.returncode == 0, result.stderr
    page = output.read_text()
    # Self-contained: no external resource of any kind.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page
    dom = _chromium(tmp_path, "dom", "--virtual-time-budget=5000", "--dump-dom", output.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body))
    assert attributes["data-errors"] == "0"
    assert int(attributes["data-plots"]) == 9
    assert attributes["data-plots-rendered"] == attributes["data-plots"]
    screenshot = tmp_path / "report.png"
    shot = _chromium(tmp_path, "shot", f"--screenshot={screenshot}", "--window-size=1240,2400", output.as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
