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


def _iso_date(value: str, option: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ChurnwhError(f"{option} {value!r}: give a date as YYYY-MM-DD") from None


@command(panel=PANEL)
def init(
    directory: Path = typer.Argument(..., metavar="DIR", help="The folder to create (must not exist or be empty)."),
    flat: bool = typer.Option(False, "--flat", help="One row per customer with a churn flag (no history)."),
    events: bool = typer.Option(False, "--events", help="Activity events only: churn = inactivity."),
    from_files: Optional[list[str]] = typer.Option(
        None, "--from", metavar="FILE", help="With --flat: your customer CSV or Parquet file (or a quoted glob such "
        "as 'exports/*.csv'); its columns, types and a guessed classification are declared and the feature SQL "
        "selects them. Repeat --from (or PART=FILE) for data that comes split: --from train.csv --from test.csv; "
        "the test part is held out for the test metrics. With --events: your purchase or activity log (one row "
        "per event): non-contractual churn, every event column a feature."),
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
    split_column: Optional[str] = typer.Option(
        None, "--split-column", metavar="COLUMN", help="With --flat --from: the file's own split column (train/test "
        "values; found by name when it is called split, part, set...): training honours it."),
    split_date: Optional[str] = typer.Option(
        None, "--split-date", metavar="YYYY-MM-DD", help="With --split-column naming a date column: rows on or "
        "after this date are the test part."),
    time_column: Optional[str] = typer.Option(
        None, "--time-column", metavar="COLUMN", help="With --events --from: the column with each event's time."),
    holdout_days: Optional[int] = typer.Option(
        None, "--holdout-days", metavar="DAYS", help="With --events --from: churned = no purchase within this many "
        "days after the observation date (the label window; default 90)."),
    calibration_days: Optional[int] = typer.Option(
        None, "--calibration-days", metavar="DAYS", help="With --events --from: features from this many days before "
        "the observation date; no purchase there: not observed (default 365)."),
    min_history_days: Optional[int] = typer.Option(
        None, "--min-history-days", metavar="DAYS", help="With --events --from: days from a customer's first "
        "purchase to their first observation date (default 28)."),
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

    With --events --from FILE a purchase log becomes a non-contractual churn project: features from a
    calibration window, churned = no purchase in the following holdout window, on a monthly grid of
    observation dates fitted to the file's history.

    Example: churnwh init my_churn --flat --from customers.csv --consent consent.csv --label churned --positive Yes
    """
    from churnwh.sources import scaffold
    from churnwh.sources.scaffold import parts as split_parts

    items = split_parts.parse_from(list(from_files or []))
    from_file = items[0][1] if items else None
    if len(items) > 1 and not flat:
        raise ChurnwhError("several --from files are the parts of a flat customer table (train, test): add --flat")
    if split_column is not None and (not flat or from_file is None):
        raise ChurnwhError("--split-column names a column of the file given with --flat --from")
    if split_date is not None and split_column is None:
        raise ChurnwhError("--split-date goes with --split-column DATE_COLUMN: name the date column it splits")
    split_day = _iso_date(split_date, "--split-date") if split_date is not None else None

    if flat and events:
        raise ChurnwhError("--flat and --events exclude each other: pick the shape of your data")
    given = [name for name, value in (("--id-column", id_column), ("--label", label), ("--positive", positive),
                                      ("--negative", negative), ("--exclude", exclude)) if value]
    if given and from_file is None:
        raise ChurnwhError(f"{given[0]} describes the file given with --from: add --from YOUR_FILE.csv")
    windows = [name for name, value in (("--time-column", time_column), ("--holdout-days", holdout_days),
                                        ("--calibration-days", calibration_days),
                                        ("--min-history-days", min_history_days)) if value is not None]
    if windows and (from_file is None or not events):
        raise ChurnwhError(f"{windows[0]} describes an event log: use it with --events --from YOUR_EVENTS.csv")
    if from_file is not None and not flat and not events:
        raise ChurnwhError("--from reads a flat customer table (one row per customer, add --flat) or an event "
                           "log (one row per purchase or activity, add --events)")
    if from_file is not None and events:
        if label or positive or negative:
            raise ChurnwhError("--label/--positive/--negative describe a flat table: an event log's label is "
                               "computed (no purchase in the holdout window); leave them out")
        log = scaffold.sniff_events(from_file, id_column=id_column, time_column=time_column,
                                    holdout_days=holdout_days, calibration_days=calibration_days,
                                    min_history_days=min_history_days)
        consented = scaffold.sniff_consent(consent, id_column=log.id_column) if consent else None
        created = scaffold.init_project(directory, "inactivity", consent=consented, event_log=log)
        features = sum(2 if c.feature == "sum" else 1 for c in log.columns if c.feature)
        say(f"created {directory} ({len(created)} files) for {log.path.name} ({log.rows:,} events, "
            f"{log.customers:,} customers): churned = no purchase in {log.holdout_days} days (holdout_days), "
            f"features from {log.calibration_days} days before each of {len(log.training_dates())} observation dates "
            f"(calibration_days), {features} from the event columns; purge gap {log.holdout_days} days = "
            f"holdout_days; next: review {directory / 'churnwh.toml'}, then `churnwh --project {directory} build`")
        return
    sniffed = None
    if from_file is not None:
        options = {"id_column": id_column, "label": label, "positive": positive, "negative": negative,
                   "exclude": exclude}
        if len(items) > 1 or items[0][0] is not None:
            sniffed = split_parts.sniff_parts(items, **options)
        else:
            sniffed = split_parts.find_split_column(scaffold.sniff_flat(from_file, **options), split_column,
                                                     split_day)
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
    if sniffed is not None and (sniffed.parts or sniffed.split_alias):
        split = (" and ".join(f"{path.name} as {part}" for part, path in sniffed.parts) if sniffed.parts
                 else f"the split column of {sniffed.path.name}")
        say(f"the data's own split: {split}; [training] split_column = "
            f"{sniffed.part_column if sniffed.parts else sniffed.split_alias!r}: test metrics on the test part only")
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
