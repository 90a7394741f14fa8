"""The OpenAPI document, the validator and the SDK agree on the event contract."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ingest import errors
from ingest.validation import EVENT_TYPE_ALIASES, EVENT_TYPES

ROOT = Path(__file__).parents[2]
OPENAPI = yaml.safe_load((ROOT / "ingest" / "openapi.yaml").read_text())
SCHEMAS = OPENAPI["components"]["schemas"]


def test_documented_event_types_are_exactly_the_accepted_ones() -> None:
    documented = set(SCHEMAS["Event"]["properties"]["event_type"]["enum"])
    assert documented == EVENT_TYPES | set(EVENT_TYPE_ALIASES)
    assert "view_end" in documented


def test_every_request_error_code_is_documented_with_its_status() -> None:
    documented = set(SCHEMAS["Error"]["properties"]["error"]["enum"])
    responses = OPENAPI["paths"]["/v1/events"]["post"]["responses"]
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.RequestError):
            if cls is errors.RequestError:
                continue
            assert cls.code in documented, cls.code
            assert str(cls.http_status) in responses, cls.http_status


def test_the_sdk_sends_only_event_types_the_collector_accepts() -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "sdk" / "src").rglob("*.ts"))
    sent = set(re.findall(r"this\.emit\(\s*'([a-z_]+)'", sources))
    assert {"viewstart", "playing", "stall_start", "stall_end", "view_end", "heartbeat"} <= sent
    assert sent <= EVENT_TYPES, sent - EVENT_TYPES


def test_text_plain_and_the_query_key_are_documented() -> None:
    post = OPENAPI["paths"]["/v1/events"]["post"]
    assert "text/plain" in post["requestBody"]["content"]
    assert {"queryKey": []} in post["security"]
    assert OPENAPI["components"]["securitySchemes"]["queryKey"]["in"] == "query"
