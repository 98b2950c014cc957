"""The pseudonym key as a canary: none of its bytes may reach the published file.

With the key, every published pseudonym can be recomputed from a guessed customer id, so the key
leaking is worse than any one identifier. The models stage cannot read the key file (DuckDB's
external access is off) and the lineage proof refuses file-reading functions; this check is the
last line, on what was actually written. It looks, in every column of every published table (cast
to text) and in the bytes of the file, for any 16-character window of the key's hex text (case
folded; 64 bits, so a random match is out of reach) and for the base64 forms of the key and of its
hex text. Fragments shorter than 16 hex characters spread over rows are not recognised: that is
what the sandbox and the lineage proof are for. Messages name the table and column, never a value.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import duckdb

from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.privacy import keys

WINDOW = 16


def project_key(config: Config) -> bytes | None:
    """The key in force, read without the mode check (a leak check must not fail on a loose file)."""
    text = os.environ.get(config.key.env)
    try:
        if text is None:
            text = config.key.file.read_text(encoding="ascii", errors="replace")
        return keys._decode(text, "key")
    except (OSError, ChurnwhError):
        return None


def _windows(text: str) -> set[str]:
    return {text[i:i + WINDOW] for i in range(0, max(len(text) - WINDOW, 0) + 1)} if text else set()


def _encoded_windows(key: bytes) -> set[str]:
    hex_text = key.hex()
    found: set[str] = set()
    for raw in (key, hex_text.encode(), hex_text.upper().encode()):
        for form in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
            found |= _windows(form.rstrip("="))
    return found


def fragments(key: bytes) -> tuple[str, str]:
    """Two RE2 patterns: (case-insensitive hex windows, case-sensitive base64 windows)."""
    return ("|".join(sorted(_windows(key.hex()))),
            "|".join(re.escape(w) for w in sorted(_encoded_windows(key))))


def table_problems(con: duckdb.DuckDBPyConnection, catalog: str, tables: dict[str, dict[str, str]],
                   key: bytes | None) -> list[str]:
    """``table.column`` of every published column holding a fragment of the key."""
    if key is None:
        return []
    folded, exact = fragments(key)
    problems = []
    for table, columns in tables.items():
        if not columns:
            continue
        target = f'{catalog}.main."{table.replace(chr(34), chr(34) * 2)}"'
        counts = []
        for column in columns:  # one scan of the table counts the hits of every column
            value = f'CAST("{column.replace(chr(34), chr(34) * 2)}" AS VARCHAR)'
            counts.append(f"count(*) FILTER (WHERE regexp_matches(lower({value}), $folded) "
                          f"OR regexp_matches({value}, $exact))")
        found = con.execute(f"SELECT {', '.join(counts)} FROM {target}", {"folded": folded, "exact": exact}).fetchone()
        for column, hits in zip(columns, found):
            if hits:
                problems.append(f"{table}.{column} holds the pseudonym key (or a part of it) in {hits} "
                                f"row{'s' if hits != 1 else ''}: a model reads key material")
    return problems


_HEX_RUN = re.compile(rb"[0-9a-f]{%d,}" % WINDOW)
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{%d,}" % WINDOW)


def file_holds_key(path: Path, key: bytes | None) -> bool:
    """Whether the bytes of ``path`` hold a fragment of the key (names, comments, metadata included).

    Runs of hex (or base64) characters are found with one character class, then their windows are
    looked up in the key's: linear in the file, however long the key.
    """
    if key is None:
        return False
    data = path.read_bytes()
    for run_pattern, data_form, wanted in ((_HEX_RUN, data.lower(), _windows(key.hex())),
                                           (_BASE64_RUN, data, _encoded_windows(key))):
        for run in run_pattern.finditer(data_form):
            text = run.group().decode("ascii")
            if not _windows(text).isdisjoint(wanted):
                return True
    return False
