from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def write_models(tmp_path: Path):
    """Write ``{"schema/name.sql": sql}`` under tmp_path/sql and return that folder."""

    def write(models: dict[str, str]) -> Path:
        root = tmp_path / "sql"
        for relative, sql in models.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(sql).lstrip(), encoding="utf-8")
        return root

    return write
