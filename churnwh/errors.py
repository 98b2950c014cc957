"""Errors a user can fix. The CLI prints them as one line and exits 1.

A message says what is wrong, where (file, line, table, column) and how to fix it. It never
contains a customer identifier, a pseudonym of a named person, or key material.
"""

from __future__ import annotations


class ChurnwhError(Exception):
    """A problem with the user's input, configuration or data (exit code 1)."""


class ConfigError(ChurnwhError):
    """churnwh.toml is missing, malformed, or holds a value that is not allowed."""


class ModelError(ChurnwhError):
    """A SQL model cannot be parsed, resolved, built or checked."""


class KeyMaterialError(ChurnwhError):
    """The pseudonym key is missing, too short, or too widely readable."""


class DataError(ChurnwhError):
    """Input data cannot be used as it is (one class only, bad label, wrong types, ...)."""
