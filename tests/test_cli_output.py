"""What `churnwh` prints (issue 13, items 2, 3 and 6): refusals outside a project, progress a person
and a log can follow, --quiet and --verbose, and help and tables that read cleanly at 80 columns."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from churnwh.cli import app
from churnwh.cli.action import demo_campaign_summary
from churnwh.cli.progress import LiveBars, PlainLines
from churnwh.ml.train import EpochReport
from churnwh.progress import Count
from tests.helpers import churnwh, private
from tests.test_fuzz import run_cli

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def assert_one_line_refusal(code: int, stderr: str, stdout: str) -> None:
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "not a churnwh project" in lines[0] and "churnwh init DIR" in lines[0]
    assert stdout == ""


# --- item 2: nothing is written where no project is --------------------------------------------------


@pytest.mark.parametrize("args", [("build",), ("doctor",), ("demo",)])
def test_outside_a_project_a_real_process_refuses_before_writing_anything(tmp_path, args):
    (tmp_path / "notes.txt").write_text("a folder that is not a project")
    before = listing(tmp_path)
    result = churnwh(tmp_path, *args)
    assert_one_line_refusal(result.returncode, result.stderr, result.stdout)
    assert "is valid" not in result.stdout + result.stderr
    assert listing(tmp_path) == before


COMMANDS_OUTSIDE = [
    ("train",), ("score",), ("evaluate",), ("models",), ("rollback", "v0001"), ("load",), ("dag",),
    ("lineage", "a.b.c"), ("lint",), ("keygen",), ("forget", "C1"), ("rotate-key",), ("contacts",),
    ("subject-report", "C1"), ("plan", "--campaign", "c1"), ("pilot-report", "c1"), ("demo-campaign", "c1"),
    ("backtest",), ("report",), ("query", "SELECT 1"), ("export", "churn_scores"),
]


def test_outside_a_project_every_command_refuses_in_one_line(tmp_path):
    before = listing(tmp_path)
    for args in COMMANDS_OUTSIDE:
        outcome = run_cli(tmp_path, *args)
        assert_one_line_refusal(outcome.code, outcome.stderr, outcome.stdout)
    assert listing(tmp_path) == before


def test_outside_a_project_init_keygen_path_and_help_still_work(tmp_path):
    assert run_cli(tmp_path, "build", "--help").code == 0
    key = run_cli(tmp_path, "keygen", "--path", str(tmp_path / "k.key"))
    assert key.code == 0 and (tmp_path / "k.key").exists()
    created = run_cli(tmp_path, "init", str(tmp_path / "shop"))
    assert created.code == 0 and (tmp_path / "shop" / "churnwh.toml").exists()


def test_doctor_library_names_a_missing_config_instead_of_validating_defaults(tmp_path):
    from churnwh import doctor

    diagnosis = doctor.diagnose(tmp_path)
    assert [(f.check, f.status) for f in diagnosis.findings] == [("config", "problem")]
    assert "has no churnwh.toml" in diagnosis.findings[0].message


# --- item 3: progress --------------------------------------------------------------------------------


def identifiers(project: Path) -> set[str]:
    with private(project) as con:
        rows = con.execute("SELECT customer_id, email, full_name, phone FROM raw.customers").fetchall()
    return {value for row in rows for value in row if value}


def test_build_without_a_terminal_writes_timestamped_progress_lines(built_project):
    project, result = built_project
    lines = result.stdout.splitlines()
    assert any(re.fullmatch(rf"{STAMP} load +started", line) for line in lines)
    # the demo is written block by block of customers; a file source reports its rows
    loaded = r"(rows \(100%\), raw\.\w+|customers \(100%\), raw tables) done"
    assert any(re.fullmatch(rf"{STAMP} load +[\d,]+ of [\d,]+ {loaded}", line) for line in lines)
    epochs = [line for line in lines if re.match(rf"{STAMP} train +epoch \d+/4: validation loss \d\.\d{{4}} "
                                                 r"\(best \d\.\d{4} at epoch \d\)", line)]
    assert epochs and "epoch 1/4" in epochs[0] and "stopped" in epochs[-1]
    assert any(re.fullmatch(rf"{STAMP} score +(\d+) of \1 customers \(100%\)", line) for line in lines)
    assert any(re.fullmatch(rf"{STAMP} explain +(\d+) of \1 customers \(100%\)", line) for line in lines)
    assert not any(re.match(STAMP, line) for line in result.stderr.splitlines())  # stderr: warnings and errors
    leaked = [value for value in identifiers(project) if value in result.stdout + result.stderr]
    assert leaked == []


@pytest.fixture
def project_copy(built_project, tmp_path) -> Path:
    project, _ = built_project
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    return copy


def test_quiet_build_prints_nothing_on_success(project_copy):
    result = churnwh(project_copy, "build", "--quiet", "--full-refresh")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert churnwh(project_copy, "--quiet", "score").stdout == ""


def test_verbose_training_prints_every_epoch_and_no_identifier(project_copy):
    result = churnwh(project_copy, "--verbose", "train", "--force")
    assert result.returncode == 0, result.stderr
    epochs = [int(n) for n in re.findall(rf"^{STAMP} train +epoch (\d+)/4", result.stdout, re.M)]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 3  # patience 2: at least 3 epochs
    assert re.search(rf"^{STAMP} trained {len(epochs)} epochs in", result.stdout, re.M)  # churnwh's log line
    leaked = [value for value in identifiers(project_copy) if value in result.stdout + result.stderr]
    assert leaked == []


def epoch(n: int, stopped: bool = False) -> EpochReport:
    return EpochReport(epoch=n, max_epochs=10, train_loss=0.6, valid_loss=0.5, best_loss=0.5, best_epoch=n,
                       epochs_without_gain=0, patience=4, epoch_rows=1000, epoch_seconds=0.5,
                       steady_epoch_seconds=0.5, stopped=stopped)


def test_plain_lines_show_first_and_last_step_between_intervals():
    stream = io.StringIO()
    lines = PlainLines(Console(file=stream, width=200), interval=float("inf"))
    for n in range(1, 6):
        lines.report(epoch(n, stopped=n == 5))
    for done in range(0, 1001, 100):
        lines.report(Count("score", done, 1000, "customers"))
    text = stream.getvalue()
    assert re.findall(r"epoch (\d+)/10", text) == ["1", "5"]
    assert "2,000 rows/s" in text and "stopped: no gain for 4 epochs" in text
    assert re.findall(r"([\d,]+) of 1,000 customers", text) == ["0", "1,000"]


def test_live_bars_on_a_terminal_show_counts_and_losses():
    stream = io.StringIO()
    with LiveBars(Console(file=stream, width=100, force_terminal=True)) as bars:
        bars.stage("train")
        bars.report(epoch(1))
        bars.report(epoch(2))
        bars.stage("score")
        bars.report(Count("score", 400, 400, "customers"))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert "2/10" in text and "val loss 0.5000" in text and "rows/s" in text
    assert "400/400" in text and "customers" in text


# --- item 6: help, tables and words that read cleanly ----------------------------------------------


def all_commands() -> list[str]:
    return [command.name or command.callback.__name__.replace("_", "-") for command in app.registered_commands]


@pytest.mark.parametrize("command", [None, *all_commands()])
def test_help_shows_metavars_not_python_types(tmp_path, command):
    outcome = run_cli(tmp_path, *([command] if command else []), "--help", env={"COLUMNS": "80"})
    assert outcome.code == 0, outcome.stderr
    for noise in ("<bool>", "<str>", "<path>", "<int>", "<float", "list[", " range", "{"):
        assert noise not in outcome.stdout, (command, noise)
    assert "Example: churnwh" in outcome.stdout


def test_help_paragraphs_are_reflowed_not_broken_mid_sentence(tmp_path):
    outcome = run_cli(tmp_path, "build", "--help", env={"COLUMNS": "80"})
    assert "running build's pid, or queues behind it" in " ".join(outcome.stdout.split())
    assert re.search(r"Usage: churnwh rollback \[OPTIONS\] VERSION",
                     run_cli(tmp_path, "rollback", "--help", env={"COLUMNS": "80"}).stdout)


def test_query_table_never_cuts_a_pseudonym_at_80_columns(built_project):
    project, _ = built_project
    sql = ("SELECT customer_pseudonym, as_of, churn_probability, risk_tier, action, value_at_risk "
           "FROM churn_scores ORDER BY priority_rank LIMIT 3")
    result = churnwh(project, "query", sql, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True) as con:
        pseudonyms = [row[0] for row in con.execute(sql).fetchall()]
    assert len(pseudonyms) == 3 and all(len(p) == 32 for p in pseudonyms)
    assert all(pseudonym in result.stdout for pseudonym in pseudonyms) and "…" not in result.stdout


def test_models_prints_each_decision_on_one_line_at_80_columns(built_project):
    project, _ = built_project
    result = churnwh(project, "models", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    with private(project) as con:
        decisions = con.execute("SELECT version, decision FROM ml.model_runs").fetchall()
    for version, decision in decisions:
        assert f"{version}: {decision}" in result.stdout.splitlines()


def test_demo_campaign_says_what_the_planted_effect_is():
    played = {"campaign_id": "c1", "members": 200, "treated": 180, "planted_effect": 0.11,
              "effect_from": "2026-01-01", "window_end": "2026-04-01", "data_end": "2026-03-31", "as_of": "2026-04-01",
              "rows": {"product_usage": 10}, "uplift_truth": "warehouse/uplift_truth.parquet"}
    text = demo_campaign_summary({**played, "effect_model": "uniform"}, 0.3)
    assert ("churn hazard cut by 30% (--effect 0.3, the same for everyone: --effect-model uniform) from 2026-01-01 "
            "until 2026-04-01") in text
    # pilot-report's effect is control's churn rate - treated's: positive when the campaign helps
    assert "expected 11.0 percentage points below control's" in text and "near +11.0%" in text
    assert "as_of = 2026-04-01" in text
    text = demo_campaign_summary({**played, "effect_model": "heterogeneous"}, 0.3)
    assert "per-customer effect of strength 30% (--effect 0.3, --effect-model heterogeneous: none for" in text
    assert "expected 11.0 percentage points below control's" in text
    assert "the true effect per member: warehouse/uplift_truth.parquet" in text
