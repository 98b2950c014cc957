"""The docs are tested: every `churnwh` command in a shell block of README.md and docs/*.md parses against
the real CLI, the blocks of the README, the guide and the operations page run in order against a real
small project, every local link and anchor resolves, every test, file and config key the docs name
exists, and docs/configuration.md is the generator's output (as sqlite-utils and datasette keep theirs).

A block is run unless the line above it says ``<!-- docs-test: slow ... -->`` (run by
``pytest -m slow tests/test_docs.py``) or ``<!-- docs-test: parse-only REASON -->`` (never run: the
reason names the test that covers it)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN = ["README.md", "docs/guide.md", "docs/operations.md"]
"""The pages whose shell blocks are run, each in order, in its own copy of the project."""
PENDING: set[str] = set()
"""Pages other branches of issue 19 add: a link to them may dangle until they are merged."""
SHELL = {"sh", "bash", "console", "shell"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
ANNOTATION = re.compile(r"<!--\s*docs-test:\s*(slow|parse-only)\b(.*?)-->")


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    program: str
    """churnwh, duckdb or another program (not run)."""
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    mode: str
    """run, slow or parse-only (from the block's annotation)."""

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.program} {shlex.join(self.args)}"


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def shell_blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """(first line number, mode, lines) of every shell block, indentation of a list item removed."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    index, previous = 0, ""
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if not opened:
            if lines[index].strip():
                previous = lines[index]
            index += 1
            continue
        indent, language = opened.groups()
        body, index = [], index + 1
        while index < len(lines) and not FENCE.match(lines[index]):
            body.append(lines[index][len(indent):] if lines[index].startswith(indent) else lines[index])
            index += 1
        if language in SHELL:
            annotation = ANNOTATION.search(previous)
            blocks.append((index - len(body), annotation.group(1) if annotation else "run", body))
        previous, index = "", index + 1
    return blocks


def commands(path: Path) -> list[Command]:
    """Every simple command of the page's shell blocks: continuations joined, comments, prompts, `time`
    and environment assignments taken off, `&&`, `;` and `|` chains split."""
    found = []
    for first, mode, body in shell_blocks(path):
        logical, start = "", first
        for offset, raw in enumerate(body + [""]):
            text = raw[2:] if raw.startswith("$ ") else raw
            if not logical:
                start = first + offset
            if text.rstrip().endswith("\\"):
                logical += text.rstrip()[:-1] + " "
                continue
            logical += text
            if logical.strip():
                found += _split(path, start + 1, mode, logical)
            logical = ""
    return found


def _split(path: Path, line: int, mode: str, text: str) -> list[Command]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    segments, current = [], []
    for token in lexer:
        if token in ("&&", "||", ";", "|", "&"):
            segments.append(current)
            current = []
        else:
            current.append(token)
    segments.append(current)
    result = []
    for tokens in segments:
        env = []
        while tokens and (tokens[0] == "time" or re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0])):
            if tokens[0] != "time":
                env.append(tuple(tokens[0].split("=", 1)))
            tokens = tokens[1:]
        if not tokens:
            continue
        program, args = Path(tokens[0]).name, tokens[1:]
        if program.startswith("python") and args[:2] == ["-m", "churnwh"]:
            program, args = "churnwh", args[2:]
        result.append(Command(_relative(path), line, program, tuple(args), tuple(env), mode))
    return result


ALL_COMMANDS = [command for page in DOCS for command in commands(page)]
CHURNWH_COMMANDS = [command for command in ALL_COMMANDS if command.program == "churnwh"]


def parse(args: tuple[str, ...]) -> None:
    """Resolve a churnwh command line through the CLI's own parser without running it: the subcommand
    and every option must exist and every value must convert (click raises a UsageError otherwise)."""
    import typer.main

    from churnwh import cli

    group = typer.main.get_command(cli.app)
    context = group.make_context("churnwh", list(args))
    rest = [*getattr(context, "_protected_args", getattr(context, "protected_args", [])), *context.args]
    name, command, command_args = group.resolve_command(context, rest)
    command.make_context(name, command_args, parent=context)


def test_the_docs_hold_the_commands_this_test_relies_on():
    pages = {command.page for command in CHURNWH_COMMANDS}
    assert {"README.md", "docs/guide.md"} <= pages
    assert len(CHURNWH_COMMANDS) >= 20, [str(c) for c in CHURNWH_COMMANDS]
    assert any(c.page == "README.md" and c.args == ("build",) for c in CHURNWH_COMMANDS)


@pytest.mark.parametrize("command", CHURNWH_COMMANDS, ids=lambda c: f"{c.page}:{c.line}")
def test_every_documented_command_parses(command):
    try:
        parse(command.args)
    except Exception as error:  # noqa: BLE001 - click's UsageError, shown with the doc line it came from
        message = error.format_message() if hasattr(error, "format_message") else repr(error)
        pytest.fail(f"{command}: {message}")


def test_a_renamed_option_or_command_fails_the_parse():
    parse(("--project", "p", "build", "--select", "features.customer_features+", "--wait", "5"))
    for wrong in (("build", "--selec", "x"), ("buidl",), ("export", "churn_scores", "--format"), ("build", "--wait", "x")):
        with pytest.raises(Exception) as raised:
            parse(wrong)
        assert type(raised.value).__name__ in ("NoSuchOption", "UsageError", "BadOptionUsage", "BadParameter")


# --- running the blocks --------------------------------------------------------------------------------

CONSENT_HEADER = ["event_id", "customer_id", "purpose", "action", "event_ts", "source", "regulation"]


def _world(built_project, tmp_path: Path) -> Path:
    """A copy of the built 400-customer demo project, with the files the docs' commands name."""
    from tests.test_byod_events import purchase_log
    from tests.test_byod_split import customer_file
    from tests.test_sources import customer_rows, write_csv

    project, _ = built_project
    work = tmp_path / "work"
    shutil.copytree(project, work, symlinks=True)
    config = work / "churnwh.toml"
    text = config.read_text()
    assert "\n[tiers]\nhigh = 0.5" in text
    # the tiny network scores everyone low: rank into tiers instead, so that `plan` finds high and medium
    config.write_text(text.replace("\n[tiers]\nhigh = 0.5", '\n[tiers]\nmode = "top_fraction"\nhigh = 0.1')
                      .replace("\nmedium = 0.2", "\nmedium = 0.3", 1))
    shutil.copytree(REPO / "examples" / "queries", work / "examples" / "queries")
    write_csv(work / "customers.csv", customer_rows(300))
    customer_file(work / "shop_train.csv", 0, 300)
    customer_file(work / "shop_test.csv", 300, 100)
    purchase_log(work / "purchases.csv")
    write_csv(work / "consent.csv", [["E1", "K00001", "profiling", "withdraw", "2025-06-01 10:00:00", "web", "GDPR"],
                                     ["E2", "K00002", "marketing", "grant", "2025-06-02 10:00:00", "web", "GDPR"]],
              header=CONSENT_HEADER)
    return work


def _duckdb_shell() -> str | None:
    beside = Path(sys.executable).parent / "duckdb"
    return str(beside) if beside.exists() else shutil.which("duckdb")


def _run(command: Command, work: Path) -> None:
    if command.program == "churnwh":
        argv = [sys.executable, "-m", "churnwh", *command.args]
    elif command.program == "duckdb" and _duckdb_shell():
        argv = [_duckdb_shell(), *command.args]
    else:
        return  # installers, the test runner itself, benchmarks: not the docs' subject here
    result = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=600,
                            env={**os.environ, **dict(command.env)})
    assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    if command.program == "churnwh" and command.args[:1] == ("init",):
        from tests.test_init import tiny

        tiny(work / command.args[1])  # a smaller network than init's default: seconds, not a minute


def _run_page(page: str, work: Path, modes: set[str]) -> int:
    ran = 0
    for command in commands(REPO / page):
        if command.mode in modes:
            _run(command, work)
            ran += command.program in ("churnwh", "duckdb")
    return ran


@pytest.mark.parametrize("page", RUN)
def test_documented_commands_run(page, built_project, tmp_path):
    ran = _run_page(page, _world(built_project, tmp_path), {"run"})
    assert ran >= 2


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN)
def test_documented_commands_run_including_the_slow_ones(page, built_project, tmp_path):
    _run_page(page, _world(built_project, tmp_path), {"run", "slow"})


def test_every_parse_only_block_says_why():
    for page in DOCS:
        for line in page.read_text(encoding="utf-8").splitlines():
            found = ANNOTATION.search(line)
            if found and found.group(1) == "parse-only":
                assert re.search(r"tests/test_\w+\.py", found.group(2)), f"{_relative(page)}: {line}"


def test_the_readme_runs_what_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    pytest_command = re.search(r"\.venv/bin/python -m pytest[^\n&|;]*", ci).group(0).strip()
    assert "bash .ci/run" in readme and f"`{pytest_command}`" in readme
    assert "python3 -m venv .venv" in ci
    assert "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/churnwh build" in readme


def test_the_readme_stays_a_first_ten_minutes_page():
    size = len((REPO / "README.md").read_text(encoding="utf-8"))
    assert size < 12_000, f"README.md is {size:,} characters: move the detail into docs/ (issue 19)"


# --- links, names and the configuration reference ------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_\[\]()]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", text, flags=re.M)}


def test_every_local_link_and_anchor_resolves():
    broken = []
    for page in DOCS:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (page.parent / file_part).resolve() if file_part else page
            if not resolved.exists():
                if resolved.is_relative_to(REPO) and _relative(resolved) in PENDING:
                    continue
                broken.append(f"{_relative(page)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{_relative(page)}: {target} (no heading #{anchor})")
    assert not broken, "\n".join(broken)


def _defined_tests() -> set[str]:
    names = set()
    for path in (REPO / "tests").glob("test_*.py"):
        names |= set(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), flags=re.M))
    return names


def test_every_named_test_and_file_exists():
    defined, missing = _defined_tests(), []
    for page in DOCS:
        for code in re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8")):
            if re.fullmatch(r"test_\w+", code) and code not in defined:
                missing.append(f"{_relative(page)}: test {code}")
            if "error:" in code:
                continue  # an example of an error message names made-up files
            for path in re.findall(r"(?:^|\s)((?:churnwh|tests|benchmarks|examples|sql|docs|\.ci)/[\w./-]+)", code):
                if not any(ch in path for ch in "*<") and "NNNN" not in path and not (REPO / path).exists():
                    missing.append(f"{_relative(page)}: file {path}")
    assert not missing, "\n".join(missing)


def test_configuration_reference_is_the_generated_text():
    from churnwh.config_reference import generate

    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == generate(), "docs/configuration.md is stale: run `python -m churnwh.config_reference > " \
                                    "docs/configuration.md`"


def test_every_documented_key_is_what_the_parser_accepts(tmp_path):
    from churnwh.config import SECTION_KEYS, parse_config
    from churnwh.config_reference import _value
    from churnwh.errors import ConfigError

    defaults = parse_config({}, tmp_path)
    for section, keys in SECTION_KEYS.items():
        for key in keys:
            value = _value(defaults, section, key)
            if value is None:
                continue
            if isinstance(value, Path):
                value = value.relative_to(tmp_path).as_posix()
            if isinstance(value, tuple):
                value = list(value)  # TOML arrays arrive as lists
            parse_config({section: {key: value}}, tmp_path)  # the documented key and default are accepted
        with pytest.raises(ConfigError, match=f"unknown key '{section}.{keys[0]}x'"):
            parse_config({section: {f"{keys[0]}x": 1}}, tmp_path)
