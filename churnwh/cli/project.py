"""Project and source commands: init, load, demo."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from churnwh.cli.common import State, command, note, project_config, say
from churnwh.cli.progress import display
from churnwh.errors import ChurnwhError
from churnwh.store import warehouse

PANEL = "Project and sources"
logger = logging.getLogger("churnwh")


def _shell_word(name: str) -> str:
    import shlex

    return shlex.quote(name)


@command(panel=PANEL)
def init(
    directory: Path = typer.Argument(..., metavar="DIR", help="The folder to create (must not exist or be empty)."),
    flat: bool = typer.Option(False, "--flat", help="One row per customer with a churn flag (no history)."),
    events: bool = typer.Option(False, "--events", help="Activity events only: churn = inactivity."),
    from_file: Optional[Path] = typer.Option(
        None, "--from", metavar="FILE", help="With --flat: your customer CSV or Parquet file (or a quoted glob such "
        "as 'exports/*.csv'); its columns, types and "
        "a guessed classification are declared and the feature SQL selects them."),
    id_column: Optional[str] = typer.Option(
        None, "--id-column", metavar="COLUMN",
        help="With --from: the customer id column; @row if the file has none (each row's number in the file)."),
    label: Optional[str] = typer.Option(None, "--label", metavar="COLUMN", help="With --from: the churn flag column."),
    positive: Optional[list[str]] = typer.Option(
        None, "--positive", metavar="VALUE", help="With --from: a label value meaning churned (repeatable)."),
    negative: Optional[list[str]] = typer.Option(
        None, "--negative", metavar="VALUE",
        help="With --from: a label value meaning stayed (repeatable; default: the other values)."),
    exclude: Optional[list[str]] = typer.Option(
        None, "--exclude", metavar="COLUMN", help="With --from: a column that must not be a feature, e.g. one that "
        "leaks the label (repeatable; it stays declared so that the file loads, and is in no SQL model)."),
    consent: Optional[Path] = typer.Option(
        None, "--consent", metavar="FILE", help="Your consent file (event_id, customer_id, purpose, action, event_ts, "
        "source, regulation; a header only = nobody objected): customers who withdrew profiling consent are never "
        "scored."),
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
                                      ("--negative", negative), ("--exclude", exclude)) if value]
    if given and from_file is None:
        raise ChurnwhError(f"{given[0]} describes the file given with --from: add --from YOUR_FILE.csv")
    if from_file is not None and not flat:
        raise ChurnwhError("--from reads a flat customer table (one row per customer): add --flat")
    sniffed = None
    if from_file is not None:
        sniffed = scaffold.sniff_flat(from_file, id_column=id_column, label=label, positive=positive,
                                      negative=negative, exclude=exclude)
    if consent is not None and sniffed is not None and sniffed.id_column == "@row":
        raise ChurnwhError("--consent with --id-column @row: consent records name customers by their id, and the "
                           "file has none: give the file an id column")
    consented = scaffold.sniff_consent(consent, id_column=sniffed.id_column if sniffed else None) if consent else None
    created = scaffold.init_project(directory, "flat" if flat else "inactivity" if events else "events", sniffed,
                                    consented)
    if consented is not None:
        say(f"consent: {consented.path.name} ({consented.rows:,} decisions) declared as "
                   "[sources.consent_events]; objectors and opt-outs are excluded before any feature")
    elif flat:
        from churnwh.sources.declared import NO_CONSENT_NOTICE

        say(NO_CONSENT_NOTICE)
    if sniffed is not None and sniffed.leaks:
        from churnwh.ml.leakage import described

        flags = " ".join(f"--exclude {_shell_word(s.column)}" for s in sniffed.leaks)
        logger.warning(f"WARNING: likely label leakage in {sniffed.path.name}: {described(sniffed.leaks)}; "
                       f"`churnwh build` will refuse to train on them: leave them out with `churnwh init ... {flags}` "
                       "(or list their feature names in [training] exclude in churnwh.toml)")
    if sniffed is not None:
        say(f"created {directory} ({len(created)} files) for {sniffed.path.name} ({len(sniffed.columns)} "
                   f"columns); next: review the guessed privacy classes in {directory / 'churnwh.toml'}, then "
                   f"`churnwh --project {directory} build`")
        return
    say(f"created {directory} ({len(created)} files); next: edit {directory / 'churnwh.toml'} "
               f"[sources], then `churnwh --project {directory} load --check`")


@command(panel=PANEL)
def load(
    source: Optional[list[str]] = typer.Option(
        None, "--source", metavar="NAME=PATH", help="Read the declared source NAME from PATH instead (repeatable)."),
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
    config = project_config()
    if config.source == "demo":
        raise ChurnwhError("source.kind is 'demo': there are no declared sources to load (use `churnwh demo`)")
    if check:
        checked = sources.check_sources(config)
        say(", ".join(f"{c.name}: {c.rows:,} rows" for c in checked) + ": match their declarations")
        return
    sources.fingerprint_or_raise(config)
    if not config.warehouse.private.exists():
        sources.check_sources(config)  # a failed first load leaves no warehouse file behind
    with warehouse.open_private(config) as con, display(note, State.verbosity) as progress:
        progress.stage("load")
        detail = sources.load_sources(config, con, force=force, on_progress=progress.report)
    say(detail)


@command(panel=PANEL)
def demo(
    force: bool = typer.Option(False, "--force", help="Simulate again even if the raw tables already hold the demo."),
) -> None:
    """Write the simulated demo warehouse (raw tables) into the private warehouse file.

    Example: churnwh demo --force
    """
    from churnwh.pipeline import ensure_demo

    config = project_config()
    with warehouse.open_private(config) as con, display(note, State.verbosity) as progress:
        progress.stage("load")
        detail = ensure_demo(config, con, force=force, on_progress=progress.report)
    say(detail)
    say(f"true churn probabilities (for benchmarks): {config.demo.truth}")
