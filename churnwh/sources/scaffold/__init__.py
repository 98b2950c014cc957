"""`churnwh init DIR`: a new project folder a user fills with their own data.

Three shapes:

- ``events`` (default): the canonical raw schema of the demo (customers, subscriptions, purchases,
  usage, tickets, web, e-mail, consent; one CSV each), the repository's staging/feature/mart models;
- ``flat`` (``--flat``): one row per customer with a churn flag, no history; stratified random split;
- ``inactivity`` (``--events``): activity events only, no subscriptions; churn = no activity within
  ``inactivity_days`` after the observation date, on a monthly grid, features strictly before it;
  consent events with the canonical consent models, applied in the spine as in the demo's.

Every project gets churnwh.toml with every option commented, sql/, a .gitignore that keeps warehouse
files, exports and keys out of git, a README, and a fresh pseudonym key (mode 0600).

``--flat --from FILE`` reads the user's own CSV or Parquet file (DuckDB's sniffer, then the loader's
own conversions) and writes the source declaration with its real columns and types, a classification
guessed from the column names (marked for review), and feature SQL over those columns, so that
``churnwh build`` runs at once. Nothing of the file's values is written except the label's values.

``--consent FILE`` declares a consent file in the canonical consent_events schema as
``[sources.consent_events]`` (``allow_empty``: a header-only file means nobody has objected). A flat
project then gets the canonical consent models and ``staging.customers`` leaves out every customer
whose profiling consent is withdrawn as of the build; without it a flat project declares no consent
source, and `init` and `build` say that every customer is profiled under legitimate interest.

The canonical SQL models are the repository's ``sql/``; a wheel ships the same files as the package
data ``churnwh/sql_templates`` (pyproject.toml maps that package to ``sql/``: one copy, no drift).

``--events --from FILE`` reads a purchase (activity) log: non-contractual churn with a calibration
window for the features and a holdout window for the label, every event column a feature, the grid of
observation dates fitted to the file's history (``event_log``).

Modules: ``project`` writes the folder; ``templates`` holds what every shape shares, ``shapes`` the three
sample projects; ``from_file`` reads ``--flat --from FILE``, ``consent`` reads ``--consent FILE``; ``naming`` the
column-name guesses and TOML/SQL quoting both readers share.
"""

from churnwh.sources.scaffold.consent import (
    CONSENT_COLUMNS,
    CONSENT_FILTER,
    CONSENT_RULES,
    NO_CONSENT,
    TIMESTAMP_FORMATS,
    ConsentSource,
    consent_config,
    flat_consent_sql,
    sniff_consent,
)
from churnwh.sources.scaffold.event_log import EventColumn, EventLog, event_config, event_sql, sniff_events
from churnwh.sources.scaffold.from_file import (
    ID_NAMES,
    LABEL_NAMES,
    MAX_LABEL_VALUES,
    POSITIVE_GUESSES,
    RESERVED_ALIASES,
    VALUE_WORDS,
    FlatSource,
    SniffedColumn,
    flat_config,
    flat_sql,
    sniff_flat,
)
from churnwh.sources.scaffold.naming import (
    DIRECT_WORDS,
    QUASI_WORDS,
    REASONS,
    SENSITIVE_WORDS,
    guess_class,
    snake,
    words,
)
from churnwh.sources.scaffold.project import init_project
from churnwh.sources.scaffold.shapes import EVENTS_CONFIG, FLAT_CONFIG, FLAT_SQL, INACTIVITY_CONFIG, INACTIVITY_SQL
from churnwh.sources.scaffold.templates import (
    COMMON,
    CONSENT_MODELS,
    GITIGNORE,
    PACKAGE_SQL,
    README,
    REPO_SQL,
    SOURCE_HELP,
    template_sql,
)
from churnwh.sources.scaffold.user_file import TYPE_MAP, source_type

__all__ = [
    "COMMON", "CONSENT_COLUMNS", "CONSENT_FILTER", "CONSENT_MODELS", "CONSENT_RULES", "DIRECT_WORDS",
    "EVENTS_CONFIG", "FLAT_CONFIG", "FLAT_SQL", "GITIGNORE", "ID_NAMES", "INACTIVITY_CONFIG", "INACTIVITY_SQL",
    "LABEL_NAMES", "MAX_LABEL_VALUES", "NO_CONSENT", "PACKAGE_SQL", "POSITIVE_GUESSES", "QUASI_WORDS", "README",
    "REASONS", "REPO_SQL", "RESERVED_ALIASES", "SENSITIVE_WORDS", "SOURCE_HELP", "TIMESTAMP_FORMATS", "TYPE_MAP",
    "VALUE_WORDS", "ConsentSource", "FlatSource", "SniffedColumn", "consent_config", "flat_config",
    "flat_consent_sql", "flat_sql", "guess_class", "init_project", "snake", "sniff_consent", "sniff_flat",
    "source_type", "template_sql", "words", "EventColumn", "EventLog", "event_config", "event_sql", "sniff_events",
]
