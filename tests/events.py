"""Builders for realistic player events, shared by unit and integration tests."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def sdk_batch(now_ms: int) -> list[dict[str, Any]]:
    """The batch SDK v1's HTML5 adapter sends (reference §1.5), moved to ``now_ms``.

    Offsets between events are kept; the last event lands at ``now_ms``.
    """
    events: list[dict[str, Any]] = json.loads((FIXTURES / "sdk_v1_html5_batch.json").read_text())[
        "events"
    ]
    shift = now_ms - max(e["event_time"] for e in events)
    for event in events:
        event["event_time"] += shift
        event["viewer_time"] += shift
    return events


def event(kind: str, now_ms: int, view_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A minimal valid event of type ``kind``; keyword arguments override fields."""
    base: dict[str, Any] = {
        "event_type": kind,
        "event_time": now_ms,
        "viewer_time": now_ms,
        "org_id": "org_test",
        "player_id": "web-main",
        "view_id": str(uuid.uuid4()) if view_id is None else view_id,
        "session_id": "f928baaf-cc18-438a-8f1b-c0093de86dbd",
        "viewer_id": "088f39b39ec200311130c46749fac488175485173dda37607038ac328290660c",
        "env": "prod",
        "data": {},
    }
    if kind == "error":
        base["data"] = {"error_family": "network", "error_code": "2", "error_message": "x"}
    if kind == "quartile":
        base["data"] = {"quartile": 25}
    base.update(copy.deepcopy(overrides))
    return base
