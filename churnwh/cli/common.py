"""What every `churnwh` command shares: the Typer app, the consoles, the global options, and the one
way to reach the project's configuration (which refuses a folder that is not a project)."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from churnwh.config import CONFIG_FILE, Config, load_config
from churnwh.errors import ChurnwhError


def reflow(text: str | None) -> str | None:
    """Docstring -> help text: paragraphs joined into single lines, so the terminal wraps them."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in paragraph.splitlines()) for paragraph in paragraphs)


class _Argument(TyperArgument):
    """Shown as its metavar (VERSION, [SQL]) in the usage line and without a type column."""

    def display_type_rich(self, ctx) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.metavar or self.name.upper()
        return name if self.required else f"[{name}]"


class _Option(TyperOption):
    """Shown with its metavar (SECONDS, NAME=PATH) or, for a flag, with nothing; ranges are said in the help."""

    def display_type_rich(self, ctx) -> str | None:
        return None if self.is_flag else (self.metavar or self.name.upper())

    def _get_number_range_help_str(self) -> str | None:
        return None


def _plain_parameters(params: list) -> list:
    # Typer builds its TyperArgument/TyperOption objects itself and offers no hook for their class;
    # the subclasses above change only how the parameters are displayed in --help.
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option
    return params


class Command(TyperCommand):
    """A command whose --help reads cleanly: reflowed paragraphs, metavars instead of Python types."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)

    def get_params(self, ctx):
        return _plain_parameters(super().get_params(ctx))


class Group(TyperGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)

    def get_params(self, ctx):
        return _plain_parameters(super().get_params(ctx))


app = typer.Typer(
    cls=Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Privacy-aware churn scoring for a DuckDB warehouse.",
)


def command(name: str | None = None, *, panel: str):
    """``@app.command`` with the clean help of ``Command``, listed under ``panel`` in `churnwh --help`."""
    return app.command(name, cls=Command, rich_help_panel=panel)


out = Console()
"""What a command answers (tables, query results, findings): printed even with --quiet."""
note = Console()
"""Progress and what a command says it did ("wrote ..."), on stdout: silenced by --quiet. stderr is
kept for warnings and the one-line error, so a failed command's stderr is that line."""
err = Console(stderr=True)
"""Warnings on stderr: silenced by --quiet."""
errors = Console(stderr=True)
"""The one-line error of a failed command: always printed."""


def answer(text: str) -> None:
    """A line of a command's answer, as it is (no markup, no highlighting, never broken by us)."""
    out.print(text, highlight=False, markup=False, soft_wrap=True)


def say(text: str) -> None:
    """A message of what was done, on one line however long (the terminal wraps it), silenced by --quiet."""
    note.print(text, highlight=False, markup=False, soft_wrap=True)


class State:
    project: Path = Path(".")
    source_paths: list[str] = []
    """--source NAME=PATH overrides of declared source paths (build, load)."""
    verbosity: int = 0
    """-1 --quiet, 0 normal, 1 --verbose."""


def set_verbosity(quiet: bool, verbose: bool) -> None:
    """Apply --quiet / --verbose (given globally or to a command; the last one given wins)."""
    if quiet and verbose:
        raise ChurnwhError("--quiet and --verbose exclude each other: pick one")
    if quiet:
        State.verbosity = -1
    elif verbose:
        State.verbosity = 1
    note.quiet = err.quiet = State.verbosity < 0
    _configure_logging()


class _ConsoleHandler(logging.Handler):
    """churnwh's log records as single lines: warnings on stderr as they are (like Python's default),
    info lines (--verbose) on stdout with a timestamp, beside the progress lines."""

    def emit(self, record: logging.LogRecord) -> None:
        from churnwh.cli.progress import timestamp

        try:
            message = " ".join(self.format(record).splitlines())
            if record.levelno >= logging.WARNING:
                err.print(message, highlight=False, markup=False, soft_wrap=True)
            else:
                note.print(f"{timestamp()} {message}", highlight=False, markup=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never break a command
            self.handleError(record)


_HANDLER = _ConsoleHandler()


def _configure_logging() -> None:
    logger = logging.getLogger("churnwh")
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)  # the root logger has no handler in a CLI process: nothing prints twice
    logger.setLevel(logging.ERROR if State.verbosity < 0 else logging.INFO if State.verbosity > 0 else logging.WARNING)


QUIET_HELP = "Print errors only: no progress, no messages (answers such as query results still print)."
VERBOSE_HELP = "Print every training epoch and scoring step, and churnwh's log lines."


def quiet_option() -> bool:
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP)


def verbose_option() -> bool:
    return typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP)


NOT_A_PROJECT = ("{root} has no {file}, so it is not a churnwh project: start one with `churnwh init DIR` "
                 "(or run the demo from the churnwh source folder, whose {file} simulates demo data), or point "
                 "--project at a project folder")


def require_project() -> Path:
    """The project folder, or a one-line ChurnwhError before anything is written when it is none."""
    root = State.project.resolve()
    if not root.is_dir():
        raise ChurnwhError(f"project folder {root} does not exist: pass an existing folder to --project")
    if not (root / CONFIG_FILE).is_file():
        raise ChurnwhError(NOT_A_PROJECT.format(root=root, file=CONFIG_FILE))
    return root


def project_config() -> Config:
    """The validated configuration of the project, with --source overrides and its classification
    registered; refuses a folder without churnwh.toml."""
    from churnwh.sources import declared as sources

    config = sources.override_paths(load_config(require_project()), State.source_paths)
    sources.register_classification(config)
    return config
