"""Shared by the `--from` and `--consent` readers: privacy classes guessed from column names, and the
helpers that write names into TOML, SQL and error messages."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from churnwh.errors import ChurnwhError

DIRECT_WORDS = {"name", "names", "surname", "firstname", "lastname", "fullname", "forename", "username",
                "email", "mail", "phone", "mobile", "telephone", "tel", "fax", "address", "street",
                "ssn", "passport", "iban"}
QUASI_WORDS = {"birth", "birthday", "birthdate", "dob", "age", "zip", "zipcode", "postcode", "postal",
               "gender", "sex", "region", "country", "geography", "city", "nationality", "senior",
               # where someone lives, however coarse: a region-like column narrows a person down in combination
               "state", "county", "province", "district", "territory", "municipality", "areacode"}
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
        ("quasi_identifier", QUASI_WORDS, ("birth", "zipcode", "postcode", "areacode")),
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


# --- user-supplied names into generated text, safe by construction --------------------------------
#
# A column name comes from the user's file: it may hold a line break (ending an SQL or TOML comment, so
# the rest of the name becomes code), a quote, a `*/`, or bidirectional controls that make the text
# read differently from what runs. Names with a character no generated file can show faithfully are
# refused; every other name goes into SQL as a quoted identifier built by sqlglot, into TOML as an
# escaped string, and into a comment only through a function that cannot end it.

_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _unshowable(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs") or char in _BIDI


def check_names(names: list[str], where: str) -> None:
    """Refuse column names with a line break or another control character (one line, no name shown:
    such a "name" may be data or an attack); churnwh writes names into SQL, TOML and comments."""
    bad = [number for number, name in enumerate(names, start=1) if not name or any(_unshowable(c) for c in name)]
    if bad:
        listed = ", ".join(str(n) for n in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ChurnwhError(
            f"{where}: {len(bad)} column name{'s' if len(bad) != 1 else ''} (column number {listed}) "
            f"{'are' if len(bad) != 1 else 'is'} empty or hold{'' if len(bad) != 1 else 's'} a line break or another "
            "control character: rename the column in the file (churnwh writes column names into SQL and TOML and "
            "cannot do so safely); nothing was written")


def _ident(name: str) -> str:
    """``name`` as a DuckDB identifier built by sqlglot (quoted unless it is a plain, non-keyword name)."""
    from sqlglot import exp
    from sqlglot.dialects.duckdb import DuckDB

    plain = bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)) and name.upper() not in DuckDB.Tokenizer.KEYWORDS
    return exp.to_identifier(name, quoted=not plain).sql(dialect="duckdb")


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F or _unshowable(char):
            out.append(f"\\u{ord(char):04X}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_string(name)


def comment_text(text: str) -> str:
    """``text`` made safe inside a line comment (SQL ``--`` or TOML ``#``) or an SQL block comment:
    no line break or control character can end the line, no ``*/`` can end the block."""
    shown = "".join("?" if _unshowable(char) else char for char in text)
    return shown.replace("*/", "* /")


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
