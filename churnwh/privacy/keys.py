"""The pseudonym key and keyed pseudonyms (HMAC-SHA256).

The key lives outside every warehouse file: in an environment variable or a key file with mode
0600. It is hex text of at least 32 bytes. No function here ever puts the key, or a part of it, in
an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from churnwh.config import KeyConfig, audit_key_beside
from churnwh.errors import KeyMaterialError

MIN_KEY_BYTES = 32
PSEUDONYM_HEX_CHARS = 32


def generate_key_file(path: Path) -> Path:
    """Write a fresh random key to ``path`` with mode 0600; refuse to overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyMaterialError(
            f"key file {path} already exists: keep it (pseudonyms depend on it) or move it away first"
        ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
        handle.flush()
        os.fsync(handle.fileno())  # an empty key file after a power loss would orphan every pseudonym
    return path


def load_key(config: KeyConfig) -> bytes:
    """The key from ``config.env`` if set, else from ``config.file``."""
    from_env = os.environ.get(config.env)
    if from_env is not None:
        return _decode(from_env, f"environment variable {config.env}")
    path = config.file
    if not path.exists():
        raise KeyMaterialError(
            f"no pseudonym key: set {config.env} or create {path} with `churnwh keygen`"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyMaterialError(f"key file {path} is readable by other users: run `chmod 600 {path}`")
    return _decode(path.read_text(encoding="ascii", errors="replace"), f"key file {path}")


AUDIT_ENV_SUFFIX = "_AUDIT"


def audit_key_file(config: KeyConfig) -> Path:
    """Where the audit-chain key lives: beside the pseudonym key file, kept the same way (0600;
    ``.churnwh.key`` -> ``.churnwh.audit.key``, which a ``*.key`` ignore rule keeps out of git)."""
    return config.audit_file or audit_key_beside(config.file)


def load_audit_key(config: KeyConfig, *, create: bool) -> tuple[bytes | None, bool]:
    """(the key that seals the audit log's hash chain, whether it was created now).

    From environment variable ``<key.env>_AUDIT`` if set, else the file ``keys.audit_key_file``; with
    ``create`` a missing file is created (0600). A separate key from the pseudonym key, so a key
    rotation does not make the old entries unverifiable. (None, False) when absent and not created.
    """
    from_env = os.environ.get(config.env + AUDIT_ENV_SUFFIX)
    if from_env is not None:
        return _decode(from_env, f"environment variable {config.env + AUDIT_ENV_SUFFIX}"), False
    path = audit_key_file(config)
    created = False
    if not path.exists():
        if not create:
            return None, False
        generate_key_file(path)
        created = True
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyMaterialError(f"audit key file {path} is readable by other users: run `chmod 600 {path}`")
    return _decode(path.read_text(encoding="ascii", errors="replace"), f"audit key file {path}"), created


def key_id(key: bytes) -> str:
    """A public fingerprint of the key, to notice a key change (reveals nothing of the key). 32 hex characters:
    a shorter one can be all digits and pass the publish scan's card-number (Luhn) check."""
    return hmac.digest(key, b"churnwh key id", "sha256").hex()[:32]


def is_key_version(key: bytes, version: str | None) -> bool:
    """Whether ``version`` fingerprints ``key``: the current form or the 16-character one of earlier releases."""
    current = key_id(key)
    return version in (current, current[:16])


def pseudonymize(ids: list[str], key: bytes) -> list[str]:
    """Keyed pseudonyms of ``ids``: the first 128 bits of HMAC-SHA256, as lowercase hex."""
    digest = hmac.digest
    return [digest(key, value.encode("utf-8"), "sha256").hex()[:PSEUDONYM_HEX_CHARS] for value in ids]


def plain_hash(value: str) -> str:
    """The unkeyed hash a pseudonym must never equal (used by tests and checks)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:PSEUDONYM_HEX_CHARS]


def _decode(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyMaterialError(
            f"{where} is not hex text: create a key with `churnwh keygen`"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise KeyMaterialError(
            f"{where} holds {len(key)} bytes, fewer than {MIN_KEY_BYTES}: create a new key with `churnwh keygen`"
        )
    return key
