from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

try:  # property-based tests (tests/test_fuzz.py): HYPOTHESIS_PROFILE=long for the long run
    import os

    from hypothesis import HealthCheck, settings

    settings.register_profile("quick", max_examples=20, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("long", max_examples=300, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))
except ImportError:  # hypothesis is in the `test` extra
    pass


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


@pytest.fixture(scope="session")
def built_project(tmp_path_factory):
    """A 400-customer demo project after one full `churnwh build` (shared: copy it before changing it)."""
    from tests.helpers import churnwh, make_project

    project = make_project(tmp_path_factory.mktemp("demo"))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    return project, result
