"""Shared by the `--from` and `--consent` readers: privacy classes guessed from column names, and the
helpers that write names into TOML, SQL and error messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

DIRECT_WORDS = {"name", "names", "surname", "firstname", "lastname", "fullname", "forename", "username",
                "email", "mail", "phone", "mobile", "telephone", "tel", "fax", "address", "street",
                "ssn", "passport", "iban"}
QUASI_WORDS = {"birth", "birthday", "birthdate", "dob", "age", "zip", "zipcode", "postcode", "postal",
               "gender", "sex", "region", "country", "geography", "city", "nationality", "senior"}
SENSITIVE_WORDS = {"salary", "income", "credit", "health", "religion", "ethnicity"}


def words(name: str) -> list[str]:
    """``MonthlyCharges`` -> ["monthly", "charges"]; ``customerID`` -> ["customer", "id"]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", spaced)
    return [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]


def snake(name: str) -> str:
    joined = "_".join(words(name)) or "column"
    return f"c_{joined}" if joined[0].isdigit() else joined


def guess_class(name: str) -> tuple[str, str | None]:
    """A privacy class guessed from a column name, and the word that decided it (None: plain)."""
    found = words(name)
    joined = "".join(found)
    for privacy, vocabulary, fragments in (
        ("direct_identifier", DIRECT_WORDS, ("surname", "firstname", "lastname", "fullname", "email", "phone")),
        ("quasi_identifier", QUASI_WORDS, ("birth", "zipcode", "postcode")),
        ("sensitive", SENSITIVE_WORDS, ()),
    ):
        for word in found:
            if word in vocabulary:
                return privacy, word
        for fragment in fragments:
            if fragment in joined:
                return privacy, fragment
    return "plain", None


REASONS = {
    "direct_identifier": "a direct identifier, never leaves raw",
    "quasi_identifier": "identifies a person in combination",
    "sensitive": "personal and sensitive",
}


def _ident(name: str) -> str:
    """``name`` as an SQL identifier (quoted only when it has to be)."""
    from sqlglot.dialects.duckdb import DuckDB

    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.upper() not in DuckDB.Tokenizer.KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _showable(columns: list[str]) -> list[str]:
    """Column names that may appear in a message: none that looks like a data value."""
    return [c for c in columns if len(c) <= 64 and not any(ch in c for ch in "@,;|\t\r\n")
            and not "".join(c.split()).isdigit()]


def _listed(columns: list[str]) -> str:
    """The file's column names for an error message, without any that look like data (never shown)."""
    shown = _showable(columns)
    hidden = len(columns) - len(shown)
    return ", ".join(shown[:40]) + (f" and {len(columns) - len(shown[:40])} more" if hidden or len(shown) > 40 else "")


def _relative_or_absolute(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
