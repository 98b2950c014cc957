"""Running `churnwh` as a user does: a real process over a real project folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]

# Small enough to train in seconds; the real defaults are exercised by the benchmarks.
TINY_NETWORK = """
[network]
epochs = 4
batch_size = 256
hidden = 32
k = 2
n_bins = 8
d_embed = 4
patience = 2
"""


def churnwh(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "churnwh", "--project", str(project), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def make_project(root: Path, customers: int = 400, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "sql", root / "sql")
    config = (REPO / "churnwh.toml").read_text().replace("customers = 5000", f"customers = {customers}")
    (root / "churnwh.toml").write_text(config + TINY_NETWORK + extra)
    return root


def private(project: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 and mode of every file under ``root``, by relative path: equal digests, unchanged tree."""
    digest = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            mode = oct(path.stat().st_mode & 0o777)
            digest[str(path.relative_to(root))] = f"{mode} {hashlib.sha256(path.read_bytes()).hexdigest()}"
    return digest


def copy_project(source: Path, target: Path) -> Path:
    """A copy of a shared project fixture that a test may change."""
    shutil.copytree(source, target)
    return target
