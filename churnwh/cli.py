"""The `churnwh` command: a thin Typer layer that parses arguments, calls the library and prints.

Exit codes: 0 success, 1 a user error (one line on stderr), 2 an internal error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from churnwh import keys, warehouse
from churnwh.config import Config, load_config
from churnwh.errors import ChurnwhError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Privacy-aware churn scoring for a DuckDB warehouse.",
)
out = Console()
err = Console(stderr=True)


class State:
    project: Path = Path(".")


def _config() -> Config:
    return load_config(State.project)


@app.callback()
def main_options(
    project: Path = typer.Option(Path("."), "--project", "-p", help="Project folder holding churnwh.toml and sql/."),
) -> None:
    """Privacy-aware churn scoring for a DuckDB warehouse.

    Example: churnwh --project examples/demo build
    """
    State.project = project


@app.command()
def build(
    select: Optional[str] = typer.Option(
        None, "--select", "-s", help="Build only NAME; NAME+ adds everything downstream, +NAME everything upstream."
    ),
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Rebuild every model even if unchanged."),
    force_train: bool = typer.Option(False, "--force-train", help="Retrain and replace the current model."),
) -> None:
    """Load sources, pseudonymize, build the SQL models in dependency order, train and score.

    Example: churnwh build --select features.customer_features+
    """
    _run_stages(None, select=select, full_refresh=full_refresh, force_train=force_train)


@app.command()
def train(
    force: bool = typer.Option(False, "--force", help="Retrain even if unchanged, and replace the current model."),
) -> None:
    """Train the churn network on the training-set model and register it as a new version.

    Example: churnwh train --force
    """
    _run_stages(("train",), force_train=force)


@app.command()
def score() -> None:
    """Score the scoring-set model with the current model version into ml.churn_scores.

    Example: churnwh score
    """
    _run_stages(("score",))


@app.command()
def evaluate() -> None:
    """Evaluate the current model on the latest observation dates, next to the baselines.

    Example: churnwh evaluate
    """
    from churnwh.training import evaluate_current

    config = _config()
    with warehouse.connect(config.warehouse.private, memory_limit=config.warehouse.memory_limit) as con:
        version, results = evaluate_current(con, config)
    table = Table(title=f"model {version}: test rows {results['rows']['test']:,}", show_edge=False)
    table.add_column("metric")
    for model in ("network", "logistic_regression", "base_rate"):
        table.add_column(model)
    for metric in results["network"]:
        table.add_row(metric, *(f"{results[model][metric]:.4f}" for model in ("network", "logistic_regression", "base_rate")))
    out.print(table)


@app.command()
def models() -> None:
    """List the trained model versions; the current one is marked.

    Example: churnwh models
    """
    from churnwh import registry

    config = _config()
    with warehouse.connect(config.warehouse.private, read_only=True) as con:
        if not registry.exists(con):
            raise ChurnwhError("no trained model yet: run `churnwh train` or `churnwh build` first")
        frame = registry.runs(con)
    table = Table(show_edge=False)
    for column in ("version", "status", "test ROC-AUC", "logistic ROC-AUC", "ECE", "train rows", "decision"):
        table.add_column(column)
    for row in frame.iter_rows(named=True):
        table.add_row(
            row["version"], row["status"], f"{row['test_roc_auc']:.4f}", f"{row['baseline_roc_auc']:.4f}",
            f"{row['test_ece']:.4f}", f"{row['train_rows']:,}", row["decision"],
        )
    out.print(table)


@app.command()
def rollback(version: str = typer.Argument(..., help="The version to make current, e.g. v0002.")) -> None:
    """Make an earlier model version current again (then `churnwh score` to rescore).

    Example: churnwh rollback v0002
    """
    from churnwh import registry

    config = _config()
    with warehouse.connect(config.warehouse.private) as con:
        registry.ensure_tables(con)
        registry.rollback(con, config.warehouse.models, version)
    out.print(f"{version} is the current model; run `churnwh score` to rescore with it")


def _run_stages(stages: tuple[str, ...] | None, **options) -> None:
    from churnwh.pipeline import BuildOptions, build as run_build

    config = _config()
    with err.status("building") as status:
        report = run_build(
            config,
            BuildOptions(**options),
            only=stages,
            on_stage=lambda name: status.update(f"[bold]{name}[/bold]"),
            on_model=lambda result: err.print(
                f"  {result.status:<8} {result.name:<40} {result.rows:>10,} rows  {result.seconds:6.2f} s"
            ),
        )
    summary = Table(title="churnwh", show_edge=False)
    for column in ("stage", "seconds", "result"):
        summary.add_column(column)
    for stage in report.stages:
        summary.add_row(stage.name, f"{stage.seconds:.2f}", stage.detail)
    out.print(summary)


@app.command()
def demo(
    force: bool = typer.Option(False, "--force", help="Simulate again even if the raw tables already hold the demo."),
) -> None:
    """Write the simulated demo warehouse (raw tables) into the private warehouse file.

    Example: churnwh demo --force
    """
    from churnwh.pipeline import ensure_demo

    config = _config()
    with warehouse.connect(config.warehouse.private, memory_limit=config.warehouse.memory_limit) as con:
        with err.status("simulating demo data"):
            detail = ensure_demo(config, con, force=force)
    out.print(detail)
    out.print(f"true churn probabilities (for benchmarks): {config.demo.truth}")


@app.command()
def dag() -> None:
    """Print the models in build order with the tables each one reads.

    Example: churnwh dag
    """
    from churnwh.project import load_project

    project = load_project(_config().sql)
    for name in project.order:
        reads = ", ".join(sorted(project.models[name].references)) or "-"
        out.print(f"{name}  <- {reads}", highlight=False)


@app.command()
def lineage(
    column: str = typer.Argument(..., help="The column as SCHEMA.TABLE.COLUMN."),
) -> None:
    """Print the source columns a model column is computed from (sqlglot column lineage).

    Example: churnwh lineage features.customer_features.tenure_days
    """
    from churnwh import lineage as lineage_lib
    from churnwh.project import load_project

    parts = column.split(".")
    if len(parts) != 3:
        raise ChurnwhError(f"{column!r} is not SCHEMA.TABLE.COLUMN: write e.g. features.customer_features.tenure_days")
    config = _config()
    project = load_project(config.sql)
    with warehouse.connect(config.warehouse.private, read_only=True) as con:
        schema = lineage_lib.catalog_schema({name: warehouse.columns(con, name) for name in warehouse.relations(con)})
    model = project.resolve(f"{parts[0]}.{parts[1]}")
    known = schema.get(parts[0], {}).get(parts[1])
    if known is None:
        raise ChurnwhError(f"model {model} is not built yet: run `churnwh build` first")
    if parts[2] not in known:
        raise ChurnwhError(f"model {model} has no column {parts[2]!r}: it has {', '.join(known)}")
    tree = lineage_lib.column_lineage(project, schema, model, parts[2])
    for line in lineage_lib.render_tree(tree):
        out.print(line, highlight=False)
    out.print("sources: " + ", ".join(sorted(str(source) for source in lineage_lib.source_columns(tree))), highlight=False)


@app.command()
def keygen(
    path: Optional[Path] = typer.Option(None, "--path", help="Where to write the key (default: key.file from config)."),
) -> None:
    """Create a new random pseudonym key file with mode 0600 (never overwrites an existing key).

    Example: churnwh keygen --path ~/.config/churnwh/prod.key
    """
    target = path or _config().key.file
    keys.generate_key_file(target)
    out.print(f"wrote a new key to {target} (mode 0600); keep it out of git and backups of the warehouse")


USAGE_ERROR = 2  # what Typer exits with for a bad flag or argument; churnwh's contract says 1


def main() -> None:
    try:
        app()
    except SystemExit as done:
        sys.exit(1 if done.code == USAGE_ERROR else done.code)
    except ChurnwhError as error:
        err.print(f"error: {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - the last line of defence prints no data values
        if os.environ.get("CHURNWH_DEBUG"):
            raise
        err.print(
            f"internal error ({type(error).__name__}): {warehouse.first_line(error)}; "
            "rerun with CHURNWH_DEBUG=1 for the traceback and report it",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
