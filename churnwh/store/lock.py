"""One writer at a time: an advisory lock beside the private warehouse.

``flock`` is released by the kernel when its holder dies, so a killed build can never leave a lock
that blocks the next one. The lock file holds the holder's pid for the "another build is running"
message and is removed on a clean release; a file found on acquisition therefore means the previous
holder was killed (a stale lock), which the caller may report. Acquisition checks that the file it
locked is still the one at the path, so a release that unlinks it cannot let two writers in.

The lock is re-entrant within a process: a command that holds it (build, forget, rotate-key) may
open the warehouse again (``warehouse.connect`` takes the lock for every writer) without blocking
on itself.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from churnwh.errors import ChurnwhError

logger = logging.getLogger(__name__)
_held: dict[str, int] = {}
"""Lock file -> nesting depth, for the locks this process holds."""


class BuildLocked(ChurnwhError):
    """Another churnwh process holds the project's write lock."""


@dataclass(frozen=True)
class LockState:
    path: Path
    pid: int | None
    """The pid written by the holder, or by a killed holder when the lock is stale."""
    held: bool
    """True while a live process holds the lock."""

    @property
    def stale(self) -> bool:
        return self.path.exists() and not self.held


def lock_path(private: Path) -> Path:
    return private.with_name(private.name + ".lock")


def _recorded_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _open_locked(path: Path) -> int | None:
    """Open and lock the file at ``path``; None if someone else holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            return fd
        os.close(fd)  # the holder released and unlinked it between our open and flock: try again


def inspect(private: Path) -> LockState:
    """The lock's state without taking it for longer than a check (for `churnwh doctor`)."""
    path = lock_path(private)
    if not path.exists():
        return LockState(path, None, held=False)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return LockState(path, None, held=False)
    try:
        pid = _recorded_pid(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return LockState(path, pid, held=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return LockState(path, pid, held=False)
    finally:
        os.close(fd)


def clear_stale(private: Path) -> bool:
    """Remove a lock file left by a killed process; True if there was one."""
    path = lock_path(private)
    if not path.exists():
        return False
    with write_lock(private, report_stale=False):
        pass
    return True


@contextmanager
def write_lock(private: Path, *, wait_seconds: float = 0.0, report_stale: bool = True) -> Iterator[int | None]:
    """Hold the project's write lock; yields the pid of a killed previous holder, if any.

    A stale lock is reported in one line on stderr (through logging: its pid, nothing else).
    Raises BuildLocked naming the holder's pid when the lock stays taken for ``wait_seconds``.
    """
    path = lock_path(private)
    key = os.path.abspath(path)
    if key in _held:
        _held[key] += 1
        try:
            yield None
        finally:
            _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while (fd := _open_locked(path)) is None:
        if time.monotonic() >= deadline:
            holder = inspect(private).pid
            who = f"pid {holder}" if holder else "pid unknown"
            raise BuildLocked(
                f"another build is running ({who}) on {private}: wait for it to finish "
                "(`churnwh build --wait SECONDS` queues behind it)"
            )
        time.sleep(0.2)
    try:
        stale_pid = _recorded_pid(fd)
        if stale_pid is not None and report_stale:
            logger.warning("churnwh: cleared a stale lock left by a killed churnwh process (pid %d)", stale_pid)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = 1
        yield stale_pid
    finally:
        _held.pop(key, None)
        path.unlink(missing_ok=True)
        os.close(fd)
