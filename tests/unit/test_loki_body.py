"""Loki push bodies: JSON shape Loki requires (reference/protocols.md §3.1)."""

from __future__ import annotations

import gzip
import json

from processors.sinks import LOKI_HEADERS, LogLine, loki_requests


def test_body_groups_streams_with_string_nanosecond_timestamps_and_metadata() -> None:
    lines = [
        LogLine(
            {"org": "a", "env": "prod", "kind": "view"},
            1_700_000_000_123_000_000,
            '{"x":1}',
            {"view_id": "v1"},
        ),
        LogLine(
            {"org": "a", "env": "prod", "kind": "view"}, 1_700_000_000_124_000_000, '{"x":2}', {}
        ),
        LogLine(
            {"org": "b", "env": "prod", "kind": "error"},
            1_700_000_000_125_000_000,
            '{"e":1}',
            {"view_id": "v2"},
        ),
    ]
    (request,) = loki_requests(lines, None)
    assert request.items == 3
    assert request.tenant is None
    body = json.loads(gzip.decompress(request.body))
    streams = {tuple(sorted(s["stream"].items())): s["values"] for s in body["streams"]}
    assert streams[(("env", "prod"), ("kind", "view"), ("org", "a"))] == [
        ["1700000000123000000", '{"x":1}', {"view_id": "v1"}],
        ["1700000000124000000", '{"x":2}'],
    ]
    assert LOKI_HEADERS["Content-Type"] == "application/json"
    assert LOKI_HEADERS["Content-Encoding"] == "gzip"


def test_one_request_per_tenant() -> None:
    lines = [
        LogLine({"org": org, "env": "prod", "kind": "view"}, 1, "l", {}) for org in ("a", "b", "a")
    ]
    requests = loki_requests(lines, "org")
    assert sorted((r.tenant, r.items) for r in requests) == [("a", 2), ("b", 1)]
