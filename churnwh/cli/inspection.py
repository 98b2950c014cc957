"""Inspection commands: dag, lineage, lint, query, export, doctor."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from churnwh.cli.common import answer, command, out, project_config, require_project, say
from churnwh.errors import ChurnwhError
from churnwh.store import warehouse

PANEL = "Inspect"


@command(panel=PANEL)
def dag() -> None:
    """Print the models in build order with the tables each one reads.

    Example: churnwh dag
    """
    from churnwh.sqlmodels.project import load_project

    project = load_project(project_config().sql)
    for name in project.order:
        reads = ", ".join(sorted(project.models[name].references)) or "-"
        answer(f"{name}  <- {reads}")


@command(panel=PANEL)
def lineage(
    column: str = typer.Argument(..., metavar="SCHEMA.TABLE.COLUMN", help="The model column to trace."),
) -> None:
    """Print the source columns a model column is computed from (sqlglot column lineage).

    Example: churnwh lineage features.customer_features.tenure_days
    """
    from churnwh.sqlmodels import lineage as lineage_lib
    from churnwh.sqlmodels.project import load_project

    parts = column.split(".")
    if len(parts) != 3:
        raise ChurnwhError(f"{column!r} is not SCHEMA.TABLE.COLUMN: write e.g. features.customer_features.tenure_days")
    config = project_config()
    project = load_project(config.sql)
    with warehouse.open_private(config, read_only=True) as con:
        schema = lineage_lib.catalog_schema({name: warehouse.columns(con, name) for name in warehouse.relations(con)})
    model = project.resolve(f"{parts[0]}.{parts[1]}")
    known = schema.get(parts[0], {}).get(parts[1])
    if known is None:
        raise ChurnwhError(f"model {model} is not built yet: run `churnwh build` first")
    if parts[2] not in known:
        raise ChurnwhError(f"model {model} has no column {parts[2]!r}: it has {', '.join(known)}")
    tree = lineage_lib.column_lineage(project, schema, model, parts[2])
    for line in lineage_lib.render_tree(tree):
        answer(line)
    answer("sources: " + ", ".join(sorted(str(source) for source in lineage_lib.source_columns(tree))))


@command(panel=PANEL)
def lint(
    engine: str = typer.Option("spark", "--engine", metavar="ENGINE", help="The engine to check the models against: spark."),
) -> None:
    """Refuse, with file, line and construct, every SQL that would not give identical results on ENGINE.

    Example: churnwh lint --engine spark
    """
    if engine != "spark":
        raise ChurnwhError(f"--engine {engine!r}: lint checks models for spark only (DuckDB is their own dialect)")
    from churnwh.spark import lint as spark_lint

    config = project_config()
    findings, checked = spark_lint.lint(config)
    for line in findings:
        answer(line)
    if findings:
        raise ChurnwhError(f"{len(findings)} construct{'s' if len(findings) != 1 else ''} in {checked} models "
                           "would not give identical results on Spark: rewrite them as the lines above say")
    answer(f"{checked} models carry to Spark with identical results")


@command(panel=PANEL)
def query(
    sql: Optional[str] = typer.Argument(None, metavar="SQL", help="A SQL query (read-only)."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", metavar="FILE", help="Read the query from this file instead."),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help="table, csv or json."),
) -> None:
    """Run read-only SQL against the published file and print a table, CSV or JSON.

    Values are never cut: a table wider than the terminal is printed wide (its lines wrap).

    Example: churnwh query "SELECT risk_tier, count(*) FROM churn_scores GROUP BY ALL" --format csv
    """
    from churnwh.action import actions

    if (sql is None) == (file is None):
        raise ChurnwhError("give either a SQL query or --file PATH (not both): "
                           "churnwh query \"SELECT ...\" or churnwh query --file examples/queries/churn_trend.sql")
    if file is not None:
        try:
            sql = file.read_text(encoding="utf-8")
        except OSError as error:
            raise ChurnwhError(f"cannot read {file}: {error.strerror}; check the path") from None
    names, rows = actions.query(project_config(), sql, format)
    if format == "table":
        print_whole_table(result_table(names, rows))
    else:
        sys.stdout.write(actions.format_rows(names, rows, format))


def result_table(names: list[str], rows: list[tuple]) -> Table:
    table = Table(show_edge=False)
    for name in names:
        table.add_column(name, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*[Text("" if v is None else str(v)) for v in row])  # values are data, never markup
    return table


def print_whole_table(table: Table) -> None:
    """Print ``table`` at its natural width, even past the terminal's: a cut pseudonym is useless."""
    natural = Measurement.get(out, out.options.update_width(1_000_000), table).maximum
    if natural <= out.width:
        out.print(table)
        return
    Console(file=out.file, width=natural, force_terminal=out.is_terminal).print(table)


@command(panel=PANEL)
def export(
    table: str = typer.Argument(..., metavar="TABLE", help="A table of the published file, e.g. churn_scores."),
    format: str = typer.Option("parquet", "--format", "-f", metavar="FORMAT", help="parquet or csv."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE",
                                          help="File to write (default: TABLE.FORMAT)."),
) -> None:
    """Write a table of the published (sanitized) file as Parquet or CSV for tools that do not read DuckDB.

    Reads only the published file, so it carries the same privacy guarantees.

    Example: churnwh export churn_scores --format csv --output scores.csv
    """
    from churnwh.store import exporting

    config = project_config()
    target = output or Path(f"{table}.{format}")
    rows = exporting.export_table(config, table, format, target)
    say(f"wrote {rows:,} rows of {table} to {target}")


@command(panel=PANEL)
def doctor(
    fix: bool = typer.Option(False, "--fix", help="Apply the safe repairs: clear a stale lock, remove leftover "
                             "temporary files, chmod 600 the key file."),
) -> None:
    """Check the project (config, key, warehouse files, published file, fingerprints, lock, leftovers) and say
    what to do about each problem. Exit 0 when healthy, 1 when a problem remains.

    Example: churnwh doctor --fix
    """
    from churnwh import doctor as doctor_lib

    diagnosis, done = doctor_lib.run(require_project(), fix=fix)
    for line in done:
        answer(f"fixed    {line}")
    for finding in diagnosis.findings:
        answer(finding.line())
    problems = len(diagnosis.problems)
    if problems:
        raise ChurnwhError(f"{problems} problem{'s' if problems != 1 else ''} found: do what the lines above say"
                           + ("" if fix else " (`churnwh doctor --fix` applies the safe repairs)"))
