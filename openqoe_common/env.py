"""Reading typed settings from an environment mapping, with errors that name the variable.

Shared by every component's ``from_env`` (collector, topics tool, processor), so the
messages and boolean spellings are the same everywhere. Secret values are never echoed
by callers: they read them as plain strings and wrap them themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(value)


class EnvReader:
    """``get(name, cast, default)``: the default when unset or empty, else ``cast(value)``."""

    def __init__(self, environ: Mapping[str, str], error: type[Exception]) -> None:
        self._environ = environ
        self._error = error

    def get(self, name: str, cast: Callable[[str], T], default: T) -> T:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return cast(raw)
        except ValueError:
            kind = "bool" if cast is parse_bool else getattr(cast, "__name__", "value")
            raise self._error(f"Config '{name}' has value '{raw}'. Not a valid {kind}.") from None
