"""Build and model commands: build, train, score, evaluate, models, rollback."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from churnwh.cli.common import (
    State,
    answer,
    command,
    note,
    out,
    project_config,
    quiet_option,
    say,
    set_verbosity,
    verbose_option,
)
from churnwh.cli.progress import display
from churnwh.errors import ChurnwhError
from churnwh.store import warehouse

PANEL = "Build and models"


@command(panel=PANEL)
def build(
    select: Optional[str] = typer.Option(
        None, "--select", "-s", metavar="NAME",
        help="Build only NAME; NAME+ adds everything downstream, +NAME everything upstream."),
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Rebuild every model even if unchanged."),
    force_train: bool = typer.Option(False, "--force-train", help="Retrain and replace the current model."),
    source: Optional[list[str]] = typer.Option(
        None, "--source", metavar="NAME=PATH",
        help="Read the declared source NAME from PATH instead (repeatable)."),
    engine: str = typer.Option("duckdb", "--engine", metavar="ENGINE",
                               help="duckdb (default) or spark: run the models and scoring on Spark."),
    master: Optional[str] = typer.Option(
        None, "--master", metavar="URL",
        help="With --engine spark: local[N], spark://host:7077, yarn, k8s://https://host:443 or sc://host:15002 "
             "(Spark Connect). Default: [spark] master, else local[2]."),
    wait: float = typer.Option(
        0, "--wait", metavar="SECONDS",
        help="Wait up to SECONDS (0 or more) for another running build to finish (default: exit 1 at once)."),
    allow_stale: bool = typer.Option(
        False, "--allow-stale",
        help="Score even if a source ends before the window the features read (recorded in the audit log and "
             "the published about table)."),
    allow_drift: bool = typer.Option(
        False, "--allow-drift",
        help="Score and publish even when drift is severe ([monitoring] psi_severe); recorded in the audit log."),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> None:
    """Load sources, pseudonymize, build the SQL models in dependency order, train and score.

    A source whose data end more than its max_lag_days before the day before as_of stops the build
    (nothing is scored or published) unless --allow-stale.

    One build at a time per project: a second one exits 1 naming the running build's pid, or
    queues behind it with --wait. On a terminal progress shows as bars; without one (cron, CI) as
    timestamped lines.

    Example: churnwh build --select features.customer_features+ --wait 600
    """
    if quiet or verbose:
        set_verbosity(quiet, verbose)
    State.source_paths = list(source or [])
    if engine not in ("duckdb", "spark"):
        raise ChurnwhError(f"--engine {engine!r} is not known: use duckdb or spark")
    if wait < 0:
        raise ChurnwhError(f"--wait {wait:g} is not allowed: give 0 or more seconds")
    from churnwh.sources.declared import consent_notice

    config = project_config()
    notice = consent_notice(config)
    if notice:
        say(notice)
    if engine == "spark":
        from churnwh.spark import engine as spark_engine

        master = master or config.spark.master
        spark_engine.preflight(master, config)
        run_stages(None, select=select, full_refresh=full_refresh, force_train=force_train, engine="spark",
                   master=master, wait_seconds=wait, allow_stale=allow_stale,
                   allow_drift="--allow-drift" if allow_drift else None)
        return
    run_stages(None, select=select, full_refresh=full_refresh, force_train=force_train, wait_seconds=wait,
               allow_stale=allow_stale, allow_drift="--allow-drift" if allow_drift else None)


@command(panel=PANEL)
def train(
    force: bool = typer.Option(False, "--force", help="Retrain even if unchanged, and replace the current model."),
) -> None:
    """Train the churn network on the training-set model and register it as a new version.

    Example: churnwh train --force
    """
    run_stages(("train",), force_train=force)


@command(panel=PANEL)
def score() -> None:
    """Score the scoring-set model with the current model version into ml.churn_scores (after the drift check;
    severe drift stops it, see `churnwh build --allow-drift`; then explain, monitor, uplift),
    then republish the published file so that BI tools see the new scores.

    Example: churnwh score
    """
    run_stages(("drift", "score", "explain", "monitor", "uplift", "publish"))


def run_stages(stages: tuple[str, ...] | None, **options) -> None:
    from churnwh.pipeline import BuildOptions
    from churnwh.pipeline import build as run_build

    config = project_config()
    with display(note, State.verbosity) as progress:
        report = run_build(
            config,
            BuildOptions(**options),
            only=stages,
            on_stage=progress.stage,
            on_model=progress.model,
            on_progress=progress.report,
        )
    summary = Table(title="churnwh", show_edge=False)
    for column in ("stage", "seconds", "result"):
        summary.add_column(column)
    for stage in report.stages:
        summary.add_row(stage.name, f"{stage.seconds:.2f}", Text(stage.detail))
    note.print(summary)


@command(panel=PANEL)
def evaluate() -> None:
    """Evaluate the current model on the latest observation dates, next to the baselines.

    Example: churnwh evaluate
    """
    from churnwh.stages.train import evaluate_current

    config = project_config()
    with warehouse.open_private(config) as con:
        version, results = evaluate_current(con, config)
    table = Table(title=f"model {version}: test rows {results['rows']['test']:,}", show_edge=False)
    table.add_column("metric")
    for model in ("network", "logistic_regression", "base_rate"):
        table.add_column(model)
    for metric in results["network"]:
        table.add_row(metric, *(f"{results[model][metric]:.4f}" for model in ("network", "logistic_regression", "base_rate")))
    out.print(table)


@command(panel=PANEL)
def models() -> None:
    """List the trained model versions with their test metrics and why each was kept or promoted.

    Example: churnwh models
    """
    from churnwh.stages import registry

    config = project_config()
    with warehouse.open_private(config, read_only=True) as con:
        if not registry.exists(con):
            raise ChurnwhError("no trained model yet: run `churnwh train` or `churnwh build` first")
        frame = registry.runs(con)
    # The decision is a sentence: in a table column it would wrap over many lines, so it follows
    # the table, one line per version.
    table = Table(show_edge=False)
    for column, justify in (("version", "left"), ("status", "left"), ("ROC-AUC", "right"),
                            ("logistic", "right"), ("ECE", "right"), ("train rows", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    for row in frame.iter_rows(named=True):
        table.add_row(row["version"], row["status"], f"{row['test_roc_auc']:.4f}", f"{row['baseline_roc_auc']:.4f}",
                      f"{row['test_ece']:.4f}", f"{row['train_rows']:,}")
    out.print(table)
    answer("metrics on the test dates; logistic = the logistic-regression baseline's ROC-AUC")
    for row in frame.iter_rows(named=True):
        answer(f"{row['version']}: {row['decision']}")


@command(panel=PANEL)
def rollback(version: str = typer.Argument(..., metavar="VERSION", help="The version to make current, e.g. v0002.")) -> None:
    """Make an earlier model version current again (then `churnwh score` to rescore).

    Example: churnwh rollback v0002
    """
    from churnwh.stages import registry

    config = project_config()
    with warehouse.open_private(config) as con:
        registry.ensure_tables(con)
        registry.rollback(con, config.warehouse.models, version)
    say(f"{version} is the current model; the scores (and the published file BI tools read) are still the "
        "previous model's until you run `churnwh score`")
