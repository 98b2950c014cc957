"""The `churnwh` command: a thin Typer layer that parses arguments, calls the library and prints.

Exit codes: 0 success, 1 a user error (one line on stderr), 2 an internal error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import click
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
) -> None:
    """Load sources, pseudonymize, and build every SQL model in dependency order.

    Example: churnwh build --select features.customer_features+
    """
    from churnwh.pipeline import BuildOptions, build as run_build

    config = _config()
    with err.status("building") as status:
        report = run_build(
            config,
            BuildOptions(select=select, full_refresh=full_refresh),
            on_stage=lambda name: status.update(f"[bold]{name}[/bold]"),
            on_model=lambda result: err.print(
                f"  {result.status:<8} {result.name:<40} {result.rows:>10,} rows  {result.seconds:6.2f} s"
            ),
        )
    summary = Table(title="churnwh build", show_edge=False)
    for column in ("stage", "seconds", "result"):
        summary.add_column(column)
    for stage in report.stages:
        summary.add_row(stage.name, f"{stage.seconds:.2f}", stage.detail)
    out.print(summary)
    out.print(f"private warehouse: {config.warehouse.private}")


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


def main() -> None:
    try:
        app(standalone_mode=False)
    except ChurnwhError as error:
        err.print(f"error: {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(1)
    except click.ClickException as error:
        error.show()
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
