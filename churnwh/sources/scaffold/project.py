"""Writing the project folder: the shape's templates, the consent declaration, the key."""

from __future__ import annotations

from pathlib import Path

from churnwh.errors import ChurnwhError
from churnwh.privacy import keys
from churnwh.sources.scaffold.consent import CONSENT_COLUMNS, ConsentSource, consent_config, flat_consent_sql
from churnwh.sources.scaffold.event_log import EventLog, event_config, event_sql, sample_dropped_sql
from churnwh.sources.scaffold.from_file import FlatSource, flat_config, flat_sql
from churnwh.sources.scaffold.parts import parts_config, parts_sql
from churnwh.sources.scaffold.shapes import EVENTS_CONFIG, FLAT_CONFIG, FLAT_SQL, INACTIVITY_CONFIG, INACTIVITY_SQL
from churnwh.sources.scaffold.templates import CONSENT_MODELS, GITIGNORE, README, template_sql


def init_project(directory: Path, shape: str, flat_source: FlatSource | None = None,
                 consent: ConsentSource | None = None, event_log: EventLog | None = None) -> list[Path]:
    """Create the project folder for ``shape`` (events | flat | inactivity); return the files written.

    ``event_log`` (``--events --from FILE``): a purchase log's declaration, windows and models
    (churnwh.sources.scaffold.event_log). ``flat_source`` (``--flat --from FILE``): the declaration and the feature SQL are written for that
    file's real columns instead of the sample ones. ``consent`` (``--consent FILE``): the consent source
    reads that file; a flat project gets the canonical consent models and excludes objectors in
    ``staging.customers`` (without it a flat project declares no consent source).
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ChurnwhError(f"{directory} already exists and is not empty: pick a new folder name")
    if event_log is not None and shape != "inactivity":
        raise ChurnwhError("--from with an event log (one row per purchase or activity): use it with --events")
    if flat_source is not None and shape != "flat":
        raise ChurnwhError("--from reads a flat customer table (one row per customer): use it with --flat")
    config = {"flat": FLAT_CONFIG, "events": EVENTS_CONFIG, "inactivity": INACTIVITY_CONFIG}[shape]
    described = {"flat": "flat customer table", "events": "event tables with subscriptions",
                 "inactivity": "activity events, churn by inactivity"}[shape]
    sql: dict[str, str] = {"flat": FLAT_SQL, "inactivity": INACTIVITY_SQL, "events": {}}[shape]
    if shape == "events":
        canonical = template_sql()
        sql = {str(path.relative_to(canonical)): path.read_text(encoding="utf-8")
               for path in sorted(canonical.rglob("*.sql"))}
    elif shape == "inactivity":
        canonical = template_sql()
        sql = {**{name: (canonical / name).read_text(encoding="utf-8") for name in CONSENT_MODELS}, **sql}
        sql["features/dropped_customers.sql"] = sample_dropped_sql()
    if event_log is not None:
        config, sql = event_config(event_log, directory.resolve()), {**sql, **event_sql(event_log)}
        for name in INACTIVITY_SQL:
            if name not in event_sql(event_log):
                sql.pop(name, None)  # the sample's daily activity model is replaced by staging.events
    if flat_source is not None:
        config, sql = flat_config(flat_source, directory.resolve()), flat_sql(flat_source)
        config, sql = parts_config(config, flat_source, directory.resolve()), parts_sql(sql, flat_source)
    config = config.replace("@@CONSENT@@\n", consent_config(shape, consent, directory.resolve()), 1)
    if shape == "flat" and consent is not None:
        sql = flat_consent_sql(sql)
    files: dict[str, str] = {
        "churnwh.toml": config,
        ".gitignore": GITIGNORE,
        "README.md": README.format(name=directory.name, shape=described),
        "data/.keep": "",
    }
    files.update({f"sql/{path}": text for path, text in sql.items()})
    if shape != "flat" and consent is None:
        # the declared consent source (allow_empty), header only: nobody has objected yet, and the first
        # build runs; replace it with your consent records
        files["data/consent_events.csv"] = ",".join(CONSENT_COLUMNS) + "\n"
    written = []
    directory.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    (directory / "warehouse").mkdir(exist_ok=True)
    keys.generate_key_file(directory / ".churnwh.key")
    written.append(directory / ".churnwh.key")
    return written
