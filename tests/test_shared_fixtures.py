"""The guard that keeps shared project fixtures unchanged (tests/conftest.py) sees every kind of change."""

from __future__ import annotations

import os

from tests.helpers import copy_project, tree_digest


def test_tree_digest_sees_a_changed_byte_a_new_file_a_removed_file_and_a_mode(tmp_path):
    project = tmp_path / "p"
    (project / "warehouse").mkdir(parents=True)
    (project / "warehouse" / "private.duckdb").write_bytes(b"\x00" * 4096)
    (project / ".churnwh.key").write_text("ab" * 32)
    os.chmod(project / ".churnwh.key", 0o600)
    before = tree_digest(project)
    assert set(before) == {"warehouse/private.duckdb", ".churnwh.key"}
    copy = copy_project(project, tmp_path / "copy")
    assert tree_digest(copy) == before  # a copy is the same tree
    with (copy / "warehouse" / "private.duckdb").open("r+b") as file:
        file.seek(2048)
        file.write(b"\x01")
    assert tree_digest(copy) != before and tree_digest(project) == before
    for change in (lambda p: (p / "warehouse" / "private.duckdb.wal").write_bytes(b""),
                   lambda p: (p / ".churnwh.key").unlink(),
                   lambda p: os.chmod(p / ".churnwh.key", 0o644)):
        other = copy_project(project, tmp_path / f"other{len(list(tmp_path.iterdir()))}")
        change(other)
        assert tree_digest(other) != before
