"""JAX's persistent compilation cache is used only in a folder of this user that no one else may write to."""

from __future__ import annotations

import os
import sys

from churnwh.ml import compile_cache


def test_cache_goes_to_a_private_folder_through_jax_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "")  # unset for enable(), restored after the test
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    monkeypatch.delitem(sys.modules, "jax", raising=False)  # as before JAX starts: its config stays untouched
    folder = compile_cache.enable()
    assert folder == tmp_path / "cache" / "churnwh" / "jax" and folder.is_dir()
    assert folder.stat().st_mode & 0o777 == 0o700
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(folder)


def test_cache_is_off_on_request_and_in_a_folder_others_may_write(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "")
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.enable() is None
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(compile_cache.ENV, str(shared))
    assert compile_cache.enable() is None
    assert not os.environ["JAX_COMPILATION_CACHE_DIR"]


def test_a_cache_folder_the_user_chose_for_jax_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache.enable(tmp_path / "other") == tmp_path / "mine"
    assert not (tmp_path / "other").exists()
