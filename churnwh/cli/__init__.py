"""The `churnwh` command: a thin Typer layer that parses arguments, calls the library and prints.

The commands live in modules by concern (build, project, privacy, action, inspection); this module
holds the global options and ``main``, the entry point. Exit codes: 0 success, 1 a user error (one
line on stderr), 2 an internal error.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import typer

from churnwh.cli.common import (
    State,
    app,
    errors,
    quiet_option,
    reflow,
    set_verbosity,
    verbose_option,
)
from churnwh.errors import ChurnwhError
from churnwh.ml import compile_cache
from churnwh.store import warehouse

__all__ = ["State", "app", "main"]


@app.callback(help=reflow("""Privacy-aware churn scoring for a DuckDB warehouse.

    Every command but init, keygen --path and --help runs in a project: a folder with churnwh.toml (the
    current one, or --project DIR).

    Example: churnwh --project my_churn build"""))
def main_options(
    project: Path = typer.Option(Path("."), "--project", "-p", metavar="DIR",
                                 help="Project folder holding churnwh.toml and sql/."),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> None:
    State.project = project
    State.verbosity = 0
    set_verbosity(quiet, verbose)


# Importing the command modules registers their commands, in this order in `churnwh --help`.
COMMAND_MODULES = ("build", "project", "privacy", "action", "inspection")
for _module in COMMAND_MODULES:
    importlib.import_module(f"churnwh.cli.{_module}")

USAGE_ERROR = 2  # what Typer exits with for a bad flag or argument; churnwh's contract says 1


def _one_line(text: str) -> None:
    errors.print(text, highlight=False, soft_wrap=True, markup=False)


def main() -> None:
    compile_cache.enable()  # JAX's compiled programs kept across builds (no JAX import here)
    try:
        code = app(prog_name="churnwh", standalone_mode=False)  # usage errors come back as exceptions, printed on one line below
    except SystemExit as done:
        sys.exit(1 if done.code == USAGE_ERROR else done.code)
    except typer.Abort:
        sys.exit(130)
    except typer.BadParameter.__mro__[1] as error:  # typer's UsageError (typer has no click to import it from)
        if type(error).__name__ != "NoArgsIsHelpError":  # `churnwh` alone has printed the help already
            command = error.ctx.command_path if error.ctx else "churnwh"
            _one_line(f"error: {' '.join(error.format_message().splitlines()).rstrip('.')}: see `{command} --help`")
        sys.exit(1)
    except ChurnwhError as error:
        # one line whatever the message holds: no markup (a "[section]" stays), no line breaks
        _one_line("error: " + " ".join(str(error).splitlines()))
        sys.exit(1)
    except OSError as error:  # the file system refused: a file where a folder should be, permissions, disk full
        where = f" {error.filename}" if error.filename else ""
        _one_line(f"error: cannot use{where}: {error.strerror or type(error).__name__}: check the path in churnwh.toml "
                  "and its permissions")
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - the last line of defence prints no data values
        if os.environ.get("CHURNWH_DEBUG"):
            raise
        _one_line(f"internal error ({type(error).__name__}): {warehouse.first_line(error)}; "
                  "rerun with CHURNWH_DEBUG=1 for the traceback and report it")
        sys.exit(2)
    sys.exit(code or 0)
