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

from churnwh.config import Config, load_config
from churnwh.errors import ChurnwhError
from churnwh.privacy import keys
from churnwh.store import warehouse

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
    source_paths: list[str] = []
    """--source NAME=PATH overrides of declared source paths (build, load)."""


def _config() -> Config:
    from churnwh.sources import declared as sources

    config = sources.override_paths(load_config(State.project), State.source_paths)
    sources.register_classification(config)
    return config


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
    source: Optional[list[str]] = typer.Option(
        None, "--source", help="NAME=PATH: read the declared source NAME from PATH instead (repeatable)."
    ),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb (default) or spark: run the models and scoring on Spark."),
    master: str = typer.Option(
        "local[2]", "--master", help="With --engine spark: local[N], spark://host:7077 or sc://host:15002 (Spark Connect)."
    ),
    wait: float = typer.Option(
        0, "--wait", min=0, help="Wait up to SECONDS for another running build to finish (default: exit 1 at once)."
    ),
) -> None:
    """Load sources, pseudonymize, build the SQL models in dependency order, train and score.

    One build at a time per project: a second one exits 1 naming the running build's pid, or
    queues behind it with --wait.

    Example: churnwh build --select features.customer_features+ --wait 600
    """
    State.source_paths = list(source or [])
    if engine not in ("duckdb", "spark"):
        raise ChurnwhError(f"--engine {engine!r} is not known: use duckdb or spark")
    from churnwh.sources.declared import consent_notice

    notice = consent_notice(_config())
    if notice:
        out.print(notice, highlight=False, markup=False, soft_wrap=True)
    if engine == "spark":
        from churnwh.spark import engine as spark_engine

        spark_engine.preflight(master)
        _run_stages(None, select=select, full_refresh=full_refresh, force_train=force_train, engine="spark",
                    master=master, wait_seconds=wait)
        return
    _run_stages(None, select=select, full_refresh=full_refresh, force_train=force_train, wait_seconds=wait)


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
    """Score the scoring-set model with the current model version into ml.churn_scores (and explain, monitor),
    then republish the published file so that BI tools see the new scores.

    Example: churnwh score
    """
    _run_stages(("score", "explain", "monitor", "publish"))


@app.command()
def evaluate() -> None:
    """Evaluate the current model on the latest observation dates, next to the baselines.

    Example: churnwh evaluate
    """
    from churnwh.stages.train import evaluate_current

    config = _config()
    with warehouse.open_private(config) as con:
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
    from churnwh.stages import registry

    config = _config()
    with warehouse.open_private(config, read_only=True) as con:
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
    from churnwh.stages import registry

    config = _config()
    with warehouse.open_private(config) as con:
        registry.ensure_tables(con)
        registry.rollback(con, config.warehouse.models, version)
    out.print(f"{version} is the current model; the scores (and the published file BI tools read) are still the "
              "previous model's until you run `churnwh score`", highlight=False)


def _run_stages(stages: tuple[str, ...] | None, **options) -> None:
    from churnwh.pipeline import BuildOptions
    from churnwh.pipeline import build as run_build

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
    with warehouse.open_private(config) as con:
        with err.status("simulating demo data"):
            detail = ensure_demo(config, con, force=force)
    out.print(detail)
    out.print(f"true churn probabilities (for benchmarks): {config.demo.truth}")


@app.command()
def dag() -> None:
    """Print the models in build order with the tables each one reads.

    Example: churnwh dag
    """
    from churnwh.sqlmodels.project import load_project

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
    from churnwh.sqlmodels import lineage as lineage_lib
    from churnwh.sqlmodels.project import load_project

    parts = column.split(".")
    if len(parts) != 3:
        raise ChurnwhError(f"{column!r} is not SCHEMA.TABLE.COLUMN: write e.g. features.customer_features.tenure_days")
    config = _config()
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


@app.command()
def forget(
    customer_ids: Optional[list[str]] = typer.Argument(None, help="Customer ids to erase."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="A file with one customer id per line."),
) -> None:
    """Erase customers from raw and derived tables and from the bytes of both files (GDPR Art. 17).

    Example: churnwh forget C00000042 --file erasure_requests.txt
    """
    from churnwh.privacy.erasure import forget as run_forget
    from churnwh.privacy.erasure import read_id_file

    ids = list(customer_ids or [])
    if file is not None:
        ids += read_id_file(file)
    config = _config()
    with err.status("erasing"):
        result = run_forget(config, ids)
    out.print(
        f"erasure request {result.request_id}: {result.found} of {result.requested} customers found and erased "
        f"({result.rows_deleted.get('raw', 0)} raw rows, {result.rows_deleted.get('derived', 0)} derived rows); "
        "private file rewritten, published file rebuilt; the next build retrains the model",
        highlight=False,
    )


@app.command("rotate-key")
def rotate_key() -> None:
    """Create a new pseudonym key, re-pseudonymize every customer and rebuild everything.

    The old key is destroyed (old and new pseudonyms share nothing); back it up first if you must.

    Example: churnwh rotate-key
    """
    from churnwh.privacy.rotation import rotate_key as run_rotation

    config = _config()
    with err.status("rotating the key") as status:
        old, new = run_rotation(config, on_stage=lambda name: status.update(f"[bold]{name}[/bold]"))
    out.print(f"key rotated: version {old} -> {new}; every pseudonym recomputed, both files rebuilt", highlight=False)


@app.command()
def contacts(
    tier: str = typer.Option("high", "--tier", help="Risk tier to export: high, medium or low."),
    output: Path = typer.Option(Path("contacts.csv"), "--output", "-o", help="CSV file to write (mode 0600)."),
) -> None:
    """Re-identify the customers of a risk tier who consented to marketing, as a CSV for the retention team.

    Every use is logged in the audit log with its row count.

    Example: churnwh contacts --tier high --output retention/high_risk.csv
    """
    from churnwh.privacy.access import contacts as run_contacts

    rows = run_contacts(_config(), tier, output)
    out.print(f"wrote {rows} contactable {tier}-risk customers to {output} (mode 0600); the export is logged",
              highlight=False)


@app.command("subject-report")
def subject_report(customer_id: str = typer.Argument(..., help="The customer id as in the source.")) -> None:
    """Print what churnwh holds about one person and the main reasons for their score (GDPR Art. 15).

    Example: churnwh subject-report C00000042
    """
    from churnwh.privacy.access import subject_report as run_report

    report = run_report(_config(), customer_id)
    if not report.found:
        out.print("churnwh holds no data about this customer id")
        return
    out.print(f"pseudonym: {report.pseudonym}", highlight=False)
    out.print("source rows: " + ", ".join(f"{name} {count}" for name, count in report.raw_rows.items()), highlight=False)
    out.print("derived rows: " + (", ".join(f"{name} {count}" for name, count in report.derived_rows.items()) or "none"),
              highlight=False)
    for row in report.consent:
        reason = f" ({row['withdrawal_reason']})" if row.get("withdrawal_reason") else ""
        out.print(f"consent {row['purpose']}: {row['state']}{reason} since {row['valid_from']}", highlight=False)
    if not any(row["purpose"] == "profiling" for row in report.consent):
        out.print("consent profiling: no decision recorded (profiled under legitimate interest)")
    if report.score:
        s = report.score
        out.print(
            f"score: churn probability {s['churn_probability']:.3f}, tier {s['risk_tier']}, action {s['action']}, "
            f"as of {s['as_of']}, model {s['model_version']}",
            highlight=False,
        )
    else:
        out.print("score: none (not scored: inactive, objected to profiling, or no model yet)")
    for reason in report.reasons:
        out.print("reason: " + ", ".join(f"{k} {v}" for k, v in reason.items()), highlight=False)


@app.command()
def load(
    source: Optional[list[str]] = typer.Option(
        None, "--source", help="NAME=PATH: read the declared source NAME from PATH instead (repeatable)."
    ),
    check: bool = typer.Option(False, "--check", help="Only compare the sources with their declarations."),
    force: bool = typer.Option(False, "--force", help="Reload even if no source file changed."),
) -> None:
    """Check every declared source against its declaration, then load them into the raw schema.

    Every mismatch (missing or undeclared column, wrong type, unparseable dates, unknown label values,
    duplicate ids) is reported at once, before anything is written.

    Example: churnwh load --source customers=exports/customers_2026-01.csv
    """
    from churnwh.sources import declared as sources

    State.source_paths = list(source or [])
    config = _config()
    if config.source == "demo":
        raise ChurnwhError("source.kind is 'demo': there are no declared sources to load (use `churnwh demo`)")
    if check:
        checked = sources.check_sources(config)
        out.print(", ".join(f"{c.name}: {c.rows:,} rows" for c in checked) + ": match their declarations",
                  highlight=False)
        return
    sources.fingerprint_or_raise(config)
    if not config.warehouse.private.exists():
        sources.check_sources(config)  # a failed first load leaves no warehouse file behind
    with warehouse.open_private(config) as con:
        detail = sources.load_sources(config, con, force=force)
    out.print(detail, highlight=False)


@app.command()
def init(
    directory: Path = typer.Argument(..., help="The folder to create (must not exist or be empty)."),
    flat: bool = typer.Option(False, "--flat", help="One row per customer with a churn flag (no history)."),
    events: bool = typer.Option(False, "--events", help="Activity events only: churn = inactivity."),
    from_file: Optional[Path] = typer.Option(
        None, "--from", help="With --flat: your customer CSV or Parquet file; its columns, types and a guessed "
        "classification are declared and the feature SQL selects them."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="With --from: the customer id column."),
    label: Optional[str] = typer.Option(None, "--label", help="With --from: the churn flag column."),
    positive: Optional[list[str]] = typer.Option(None, "--positive", help="With --from: a label value meaning churned (repeatable)."),
    negative: Optional[list[str]] = typer.Option(None, "--negative", help="With --from: a label value meaning stayed (repeatable; default: the other values)."),
    consent: Optional[Path] = typer.Option(
        None, "--consent", help="Your consent file (event_id, customer_id, purpose, action, event_ts, source, "
        "regulation; a header only = nobody objected): customers who withdrew profiling consent are never scored."),
) -> None:
    """Create a new churnwh project: churnwh.toml (every option commented), sql/, .gitignore, README, key.

    With --flat --from FILE the declaration and the SQL models are written for your own file (review
    the guessed privacy classes in churnwh.toml), so `churnwh build` runs at once. With --consent FILE
    objectors and opt-outs in that file are excluded before any feature (a flat project without it
    profiles every customer under legitimate interest).

    Example: churnwh init my_churn --flat --from customers.csv --consent consent.csv --label churned --positive Yes
    """
    from churnwh.sources import scaffold

    if flat and events:
        raise ChurnwhError("--flat and --events exclude each other: pick the shape of your data")
    given = [name for name, value in (("--id-column", id_column), ("--label", label), ("--positive", positive),
                                      ("--negative", negative)) if value]
    if given and from_file is None:
        raise ChurnwhError(f"{given[0]} describes the file given with --from: add --from YOUR_FILE.csv")
    if from_file is not None and not flat:
        raise ChurnwhError("--from reads a flat customer table (one row per customer): add --flat")
    sniffed = None
    if from_file is not None:
        sniffed = scaffold.sniff_flat(from_file, id_column=id_column, label=label, positive=positive,
                                      negative=negative)
    consented = scaffold.sniff_consent(consent, id_column=sniffed.id_column if sniffed else None) if consent else None
    created = scaffold.init_project(directory, "flat" if flat else "inactivity" if events else "events", sniffed,
                                    consented)
    if consented is not None:
        out.print(f"consent: {consented.path.name} ({consented.rows:,} decisions) declared as "
                  "[sources.consent_events]; objectors and opt-outs are excluded before any feature",
                  highlight=False, markup=False, soft_wrap=True)
    elif flat:
        from churnwh.sources.declared import NO_CONSENT_NOTICE

        out.print(NO_CONSENT_NOTICE, highlight=False, markup=False, soft_wrap=True)
    if sniffed is not None:
        out.print(f"created {directory} ({len(created)} files) for {sniffed.path.name} ({len(sniffed.columns)} "
                  f"columns); next: review the guessed privacy classes in {directory / 'churnwh.toml'}, then "
                  f"`churnwh --project {directory} build`", highlight=False, markup=False, soft_wrap=True)
        return
    out.print(f"created {directory} ({len(created)} files); next: edit {directory / 'churnwh.toml'} "
              f"[sources], then `churnwh --project {directory} load --check`", highlight=False, markup=False, soft_wrap=True)


@app.command()
def export(
    table: str = typer.Argument(..., help="A table of the published file, e.g. churn_scores."),
    format: str = typer.Option("parquet", "--format", "-f", help="parquet or csv."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: TABLE.FORMAT)."),
) -> None:
    """Write a table of the published (sanitized) file as Parquet or CSV for tools that do not read DuckDB.

    Reads only the published file, so it carries the same privacy guarantees.

    Example: churnwh export churn_scores --format csv --output scores.csv
    """
    from churnwh.store import exporting

    config = _config()
    target = output or Path(f"{table}.{format}")
    rows = exporting.export_table(config, table, format, target)
    out.print(f"wrote {rows:,} rows of {table} to {target}", highlight=False)


@app.command()
def doctor(
    fix: bool = typer.Option(False, "--fix", help="Apply the safe repairs: clear a stale lock, remove leftover "
                             "temporary files, chmod 600 the key file."),
) -> None:
    """Check the project (config, key, warehouse files, published file, fingerprints, lock, leftovers) and say
    what to do about each problem. Exit 0 when healthy, 1 when a problem remains.

    Example: churnwh doctor --fix
    """
    from churnwh import doctor as doctor_lib

    diagnosis, done = doctor_lib.run(State.project, fix=fix)
    for line in done:
        out.print(f"fixed    {line}", highlight=False, markup=False, soft_wrap=True)
    for finding in diagnosis.findings:
        out.print(finding.line(), highlight=False, markup=False, soft_wrap=True)
    problems = len(diagnosis.problems)
    if problems:
        raise ChurnwhError(f"{problems} problem{'s' if problems != 1 else ''} found: do what the lines above say"
                           + ("" if fix else " (`churnwh doctor --fix` applies the safe repairs)"))


USAGE_ERROR = 2  # what Typer exits with for a bad flag or argument; churnwh's contract says 1


# --- from scores to action (churnwh.action.actions) ------------------------------------------------------


@app.command()
def plan(
    campaign: str = typer.Option(..., "--campaign", help="A new campaign id (letters, digits, - and _)."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Total budget (default retention.budget)."),
    cost: Optional[list[str]] = typer.Option(None, "--cost", help="TIER=AMOUNT cost per action (repeatable)."),
    success_rate: Optional[list[str]] = typer.Option(
        None, "--success-rate", help="TIER=SHARE assumed success rate (repeatable)."),
    control_fraction: Optional[float] = typer.Option(
        None, "--control-fraction", help="Share held out as control (default retention.control_fraction)."),
) -> None:
    """Select customers to contact within a budget (maximum expected saved value), with a control group.

    Example: churnwh plan --campaign spring-2026 --budget 5000 --cost high=40 --cost medium=8
    """
    from churnwh.action import actions

    result = actions.plan(_config(), campaign, budget, cost, success_rate, control_fraction)
    out.print(
        f"campaign {result['campaign_id']}: {result['selected']} customers selected ({result['treated']} to contact, "
        f"{result['control']} control), cost {result['treated_cost']:,.2f} of {result['budget']:,.2f}, expected "
        f"saved value {result['expected_saved_value']:,.2f}; see ml.retention_plan (ml.churn_scores.campaign_group "
        "is updated; the published file shows it after the next `churnwh score` or `churnwh build`)",
        highlight=False,
    )


@app.command("pilot-report")
def pilot_report(campaign: str = typer.Argument(..., help="The campaign id given to `churnwh plan`.")) -> None:
    """Compare realized churn of treated and control customers of a campaign since it started.

    Example: churnwh pilot-report spring-2026
    """
    from churnwh.action import actions

    r = actions.pilot_report(_config(), campaign)
    per_cost = r["retained_per_1000_cost"]
    out.print(
        f"campaign {campaign} ({r['campaign_as_of']} to {r['outcome_through']}): churn {r['treated_churn_rate']:.1%} "
        f"treated (n={r['treated']}) vs {r['control_churn_rate']:.1%} control (n={r['control']}); effect "
        f"{r['effect']:+.1%} (95% CI {r['ci_low']:+.1%} to {r['ci_high']:+.1%}); "
        f"{r['retained_customers']:.1f} customers retained"
        + (f", {per_cost:.2f} per 1,000 spent" if per_cost is not None else ""),
        highlight=False,
    )


@app.command("demo-campaign")
def demo_campaign(
    campaign: str = typer.Argument(..., help="A planned campaign id."),
    days: int = typer.Option(90, "--days", help="Days of outcome to simulate after the campaign date."),
    effect: float = typer.Option(0.3, "--effect", help="Planted relative churn reduction for treated customers."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the simulated outcomes."),
) -> None:
    """Demo only: simulate the campaign's outcome in the raw data, with a planted treatment effect.

    Then set vars.as_of to the printed date, run `churnwh build` and `churnwh pilot-report`.

    Example: churnwh demo-campaign spring-2026 --days 90 --effect 0.3
    """
    from churnwh.action import actions

    r = actions.demo_campaign(_config(), campaign, days, effect, seed)
    out.print(
        f"simulated {r['members']} members, {r['churned']} churned; planted effect {r['planted_effect']:.3f}; "
        f"set as_of = {r['window_end']} under [vars] in churnwh.toml and run `churnwh build`",
        highlight=False, markup=False,
    )


@app.command()
def backtest() -> None:
    """Compare past score snapshots with realized churn (by snapshot, tier and decile).

    Example: churnwh backtest
    """
    from churnwh.action import actions

    summary = actions.backtest(_config())
    table = Table(title="backtest (also in ml.backtest, ml.backtest_by_tier, ml.backtest_by_decile)", show_edge=False)
    for column in summary.columns:
        table.add_column(column)
    for row in summary.iter_rows():
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    out.print(table)


@app.command()
def query(
    sql: Optional[str] = typer.Argument(None, help="A SQL query (read-only)."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Read the query from this file instead."),
    format: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """Run read-only SQL against the published file and print a table, CSV or JSON.

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
    names, rows = actions.query(_config(), sql, format)
    if format == "table":
        table = Table(show_edge=False)
        for name in names:
            table.add_column(name)
        for row in rows:
            table.add_row(*["" if v is None else str(v) for v in row])
        out.print(table)
    else:
        sys.stdout.write(actions.format_rows(names, rows, format))


@app.command()
def report(
    output: Path = typer.Option(Path("warehouse/report.html"), "--output", "-o", help="HTML file to write."),
) -> None:
    """Write one self-contained HTML report (plots inline, no network needed).

    Example: churnwh report --output warehouse/report.html
    """
    from churnwh.action import actions

    config = _config()
    target = output if output.is_absolute() else config.root / output
    out.print(f"wrote {actions.report(config, target)}", highlight=False)


@app.command()
def lint(
    engine: str = typer.Option("spark", "--engine", help="The engine to check the models against: spark."),
) -> None:
    """Refuse, with file, line and construct, every SQL that would not give identical results on ENGINE.

    Example: churnwh lint --engine spark
    """
    if engine != "spark":
        raise ChurnwhError(f"--engine {engine!r}: lint checks models for spark only (DuckDB is their own dialect)")
    from churnwh.spark import lint as spark_lint

    config = _config()
    findings, checked = spark_lint.lint(config)
    for line in findings:
        out.print(line, highlight=False, soft_wrap=True, markup=False)
    if findings:
        raise ChurnwhError(f"{len(findings)} construct{'s' if len(findings) != 1 else ''} in {checked} models "
                           "would not give identical results on Spark: rewrite them as the lines above say")
    out.print(f"{checked} models carry to Spark with identical results", highlight=False)


def main() -> None:
    try:
        code = app(prog_name="churnwh", standalone_mode=False)  # usage errors come back as exceptions, printed on one line below
    except SystemExit as done:
        sys.exit(1 if done.code == USAGE_ERROR else done.code)
    except typer.Abort:
        sys.exit(130)
    except typer.BadParameter.__mro__[1] as error:  # typer's UsageError (typer has no click to import it from)
        if type(error).__name__ != "NoArgsIsHelpError":  # `churnwh` alone has printed the help already
            command = error.ctx.command_path if error.ctx else "churnwh"
            err.print(f"error: {' '.join(error.format_message().splitlines()).rstrip('.')}: see `{command} --help`",
                      highlight=False, soft_wrap=True, markup=False)
        sys.exit(1)
    except ChurnwhError as error:
        # one line whatever the message holds: no markup (a "[section]" stays), no line breaks
        err.print("error: " + " ".join(str(error).splitlines()), highlight=False, soft_wrap=True, markup=False)
        sys.exit(1)
    except OSError as error:  # the file system refused: a file where a folder should be, permissions, disk full
        where = f" {error.filename}" if error.filename else ""
        err.print(f"error: cannot use{where}: {error.strerror or type(error).__name__}: check the path in churnwh.toml "
                  "and its permissions", highlight=False, soft_wrap=True, markup=False)
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - the last line of defence prints no data values
        if os.environ.get("CHURNWH_DEBUG"):
            raise
        err.print(
            f"internal error ({type(error).__name__}): {warehouse.first_line(error)}; "
            "rerun with CHURNWH_DEBUG=1 for the traceback and report it",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        sys.exit(2)
    sys.exit(code or 0)
