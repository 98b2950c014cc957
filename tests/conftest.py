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


@pytest.fixture(autouse=True)
def source_classes_restored():
    """An in-process build of a declared-source project registers its column classes in
    churnwh.privacy.classification.SOURCE_COLUMNS, which is process-wide: restore it after every test, so
    that a later test sees the demo's classes (and the lineage cache its usual fingerprint)."""
    import copy

    from churnwh.privacy import classification

    saved = copy.deepcopy(classification.SOURCE_COLUMNS)
    yield
    classification.SOURCE_COLUMNS.clear()
    classification.SOURCE_COLUMNS.update(saved)


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
    """A 400-customer demo project after one full `churnwh build` (shared: copy it before changing it,
    e.g. with tests.helpers.copy_project; a test that changes it fails, see below)."""
    from tests.helpers import churnwh, make_project

    project = make_project(tmp_path_factory.mktemp("demo"))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    return project, result


# Project folders that fixtures build once and share between tests, by fixture name, with the way to
# find the folder in the fixture's value. A test that changes one would make later tests depend on
# the order the tests run in; the guard below fails that test instead.
SHARED_PROJECTS = {
    "built_project": lambda value: value[0],  # this file
    "built": lambda value: value,  # tests/test_privacy.py, tests/test_fuzz.py
    "forgotten": lambda value: value[0],  # tests/test_privacy.py
    "healthy": lambda value: value,  # tests/test_doctor.py
    "flat_project": lambda value: value,  # tests/test_sources.py
    "template": lambda value: value,  # tests/test_fuzz.py
    "modelled": lambda value: value,  # tests/test_fuzz.py
}


@pytest.fixture(autouse=True)
def shared_projects_stay_unchanged(request):
    """Every shared project folder a test uses has the same files, byte for byte, after the test."""
    from tests.helpers import tree_digest

    folders = []
    for name, folder_of in SHARED_PROJECTS.items():
        if name in request.fixturenames:
            folder = folder_of(request.getfixturevalue(name))
            if isinstance(folder, Path):
                folders.append((name, folder, tree_digest(folder)))
    yield
    for name, folder, before in folders:
        after = tree_digest(folder)
        changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
        assert not changed, (f"the test changed the shared fixture {name!r} ({', '.join(changed)}): "
                             "copy it first (tests.helpers.copy_project)")
