"""JAX's persistent compilation cache in the user's cache folder, so compiled programs outlive a process.

A build compiles the training epoch, prediction and Integrated Gradients programs; the same network
shape on the same machine compiles to the same program, so a rebuild that trains or scores again, and
the first build of another project with the same feature layout, read them from disk instead.

The cache is code JAX runs: the folder must be the user's own and writable by nobody else (it is
created so, and one that is not is not used). ``CHURNWH_JAX_CACHE`` names another folder, or ``off``;
a ``JAX_COMPILATION_CACHE_DIR`` the user set is left as it is.

Nothing here imports JAX: before JAX starts the settings go through its environment variables (read at
import), so a build that reuses its model and scores never pays for importing it.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ENV = "CHURNWH_JAX_CACHE"
MIN_COMPILE_SECONDS = 0.0
"""Every compiled program is kept, not only those over JAX's default 1 s: the prediction and
attribution programs compile in well under a second on an idle machine and are read on every build."""


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/churnwh/jax``, else ``~/.cache/churnwh/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "churnwh" / "jax"


def chosen_directory() -> Path | None:
    """The folder ``CHURNWH_JAX_CACHE`` names (``off``: None), else ``default_directory()``."""
    chosen = os.environ.get(ENV, "").strip()
    if chosen.lower() in ("off", "0", "false", "no"):
        return None
    return Path(chosen).expanduser() if chosen else default_directory()


def private_folder(directory: Path) -> bool:
    """Create ``directory`` (mode 0700) if needed; whether it is a folder of this user that no one else
    may write to (else another user could plant programs that JAX would run)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as err:
        logger.info("JAX compilation cache not used: %s", err.strerror or err)
        return False
    if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        logger.warning("JAX compilation cache not used: %s is not a folder of this user", directory)
        return False
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        logger.warning("JAX compilation cache not used: others may write to %s (chmod 700 it)", directory)
        return False
    return True


def enable(directory: Path | None = None) -> Path | None:
    """Turn the persistent compilation cache on in ``directory`` (default: ``chosen_directory()``) for
    this process and its children, unless the user configured JAX's own; returns the folder in use, or
    None when it is off or the folder is unsafe. Call before the first compilation."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    directory = chosen_directory() if directory is None else directory
    if directory is None or not private_folder(directory):
        return None
    jax = sys.modules.get("jax")
    if jax is not None and jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(directory)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", str(MIN_COMPILE_SECONDS))
    if jax is not None:  # already started: its config has read the environment
        jax.config.update("jax_compilation_cache_dir", str(directory))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return directory
