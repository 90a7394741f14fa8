"""Metric label dimensions: a fixed whitelist with hard cardinality caps.

Never ids, URLs or titles. Values outside the known sets, and values past a dimension's
cap, fold into ``other``. The cap is first come, first served per process: which values
get their own series may differ between processes, but every series stays monotonic
because a view's labels are fixed when the view starts and stored with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

OTHER: Final = "other"
UNKNOWN: Final = "unknown"

# Label name -> default cap on distinct values (per process).
LABELS: Final = (
    "org",
    "env",
    "app",
    "player",
    "device",
    "os",
    "browser",
    "stream_type",
    "country",
    "cdn",
)
DEFAULT_CAPS: Final[dict[str, int]] = {
    "org": 100,
    "env": 10,
    "app": 20,
    "player": 20,
    "device": 10,
    "os": 20,
    "browser": 20,
    "stream_type": 5,
    "country": 260,
    "cdn": 20,
}
_DEVICE_CATEGORIES: Final = {"desktop", "mobile", "tablet", "tv", "console", "other"}
_STREAM_TYPES: Final = {"vod", "live"}
_SAFE: Final = re.compile(r"[^a-z0-9_.\- ]")


def _clean(value: Any, max_len: int = 64) -> str:
    if not isinstance(value, str) or not value.strip():
        return UNKNOWN
    return _SAFE.sub("_", value.strip().lower())[:max_len]


class DimensionCaps:
    """Turns an event's context into bounded metric labels."""

    def __init__(self, caps: Mapping[str, int] | None = None) -> None:
        self._caps = {**DEFAULT_CAPS, **(caps or {})}
        self._seen: dict[str, set[str]] = {name: set() for name in LABELS}

    def _cap(self, name: str, value: str) -> str:
        seen = self._seen[name]
        if value in seen or value in (OTHER, UNKNOWN):
            return value
        if len(seen) >= self._caps[name]:
            return OTHER
        seen.add(value)
        return value

    def labels(self, event: Mapping[str, Any]) -> dict[str, str]:
        """Labels for the view that ``event`` (a decoded PlayerEvent) starts."""

        def nested(obj: str, field: str) -> Any:
            value = event.get(obj)
            return value.get(field) if isinstance(value, dict) else None

        device = _clean(nested("device", "category"))
        stream_type = _clean(nested("video", "stream_type"))
        country = _clean(nested("network", "country_code"), 2)
        raw = {
            "org": _clean(event.get("org_id")),
            "env": _clean(event.get("env")),
            "app": _clean(event.get("app_name")),
            "player": _clean(nested("player", "name")),
            "device": device if device in _DEVICE_CATEGORIES or device == UNKNOWN else OTHER,
            "os": _clean(nested("os", "family")),
            "browser": _clean(nested("browser", "family")),
            "stream_type": stream_type
            if stream_type in _STREAM_TYPES or stream_type == UNKNOWN
            else OTHER,
            "country": country if len(country) == 2 or country == UNKNOWN else OTHER,
            "cdn": _clean(nested("cdn", "provider")),
        }
        return {name: self._cap(name, raw[name]) for name in LABELS}
