"""Running `churnwh` as a user does: a real process over a real project folder."""

from __future__ import annotations

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
