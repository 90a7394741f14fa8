"""schemathesis holds the running collector (``python -m ingest``, real Kafka) to its API
document, ingest/openapi.yaml: every check schemathesis has, positive data acceptance
included (whatever the document calls valid must be accepted), over its examples, coverage
and fuzzing phases, with a fixed seed and a bounded number of examples.

The document states two rules no schema can (see its description): event_time within a
window around the collector's clock, and org_id equal to the ingest key's organisation.
Positive cases are brought under those two rules before they are sent (``under_the_rules``
below), and nothing else; every other rule must be in the schemas.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import fresh_topics
from tests.integration.pipeline import REPO, Collector, wait_for

pytestmark = pytest.mark.kafka

OPENAPI = REPO / "ingest" / "openapi.yaml"
ORG, KEY = "fuzz", "key-fuzz-0123456789"
SEED = 20261202
MAX_EXAMPLES = 60
CONFIG = {
    "seed": SEED,
    # No state carried between runs (crash replays): the seed alone decides what is sent.
    "cache": {"enabled": False},
    "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
    },
    "checks": {
        "enabled": True,
        # Too many events is 413 (documented), not one of schemathesis' default 4xx.
        "negative_data_rejection": {
            "expected-statuses": [
                *("400", "401", "403", "404", "405", "406", "409", "413", "415", "422"),
                *("428", "429", "5xx"),
            ]
        },
    },
    "output": {"truncation": {"enabled": True, "max-payload-size": 2000}},
}


@pytest.fixture(scope="module")
def collector(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Collector]:
    topics = asyncio.run(fresh_topics(kafka_bootstrap))
    log = tmp_path_factory.mktemp("fuzz") / "collector.log"
    # A body limit above what a 1000-event batch of long strings can reach, so that a
    # schema-valid batch is never refused for size (413 is documented, but not "valid").
    process = Collector(
        topics,
        log,
        {ORG: KEY},
        INGEST_MAX_BODY_BYTES=str(64 << 20),
        INGEST_MAX_DECOMPRESSED_BYTES=str(64 << 20),
    )
    wait_for("collector ready", process.ready, 60)
    yield process
    process.stop()


# Loaded at import (schemathesis' lazy from_fixture() does not work with pytest 9); the
# collector's URL is given per call.
schema = schemathesis.openapi.from_path(OPENAPI, config=schemathesis.Config.from_dict(CONFIG))


@schemathesis.serializer("application/cmcd", "text/cmcd")
def _cmcd_text(ctx: Any, value: Any) -> bytes:
    """CMCD bodies are plain text: sent as generated (negative cases are mostly strings)."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


def cmcd_record() -> str:
    return f'cid="movie",e=ps,sid="fuzz-session",sta=p,ts={int(time.time() * 1000)},v=2'


def under_the_rules(case: Any) -> None:
    """Apply the document's request-dependent rules to a positive case: the two for
    events, and for /v1/cmcd that the data are CMCD records (RFC 8941 syntax with the
    required keys, which JSON Schema cannot state)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if case.path.startswith("/v1/cmcd"):
        if case.path_parameters and "key" in case.path_parameters:
            case.path_parameters["key"] = KEY
        if isinstance(case.body, str):
            case.body = cmcd_record()
        else:
            case.query = {**(case.query or {}), "CMCD": cmcd_record()}
        if case.query and "CMCD" in case.query:
            case.query["CMCD"] = cmcd_record()
        return
    body = case.body
    if case.path != "/v1/events" or not isinstance(body, dict):
        return
    now_ms = int(time.time() * 1000)
    for event in body.get("events", []):
        event["event_time"] = now_ms - 60_000
        event["org_id"] = ORG


@schema.parametrize()
def test_the_collector_does_what_its_api_document_says(case: Any, collector: Collector) -> None:
    under_the_rules(case)
    case.call_and_validate(base_url=collector.url, headers={"X-API-Key": KEY}, timeout=30)


def test_the_fuzzing_reached_the_collector_and_valid_events_were_accepted(
    collector: Collector,
) -> None:
    """Runs after the schemathesis test (same module, same collector): the requests
    really arrived, schema-valid events were accepted, and nothing answered 5xx."""
    text = requests.get(f"{collector.url}/metrics", timeout=10).text
    requests_by_code: dict[str, float] = {}
    accepted = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "openqoe_ingest_http_requests_total":
                code = sample.labels["code"]
                requests_by_code[code] = requests_by_code.get(code, 0) + sample.value
            elif sample.name == "openqoe_ingest_events_accepted_total":
                accepted += sample.value
    print("requests by status:", requests_by_code, "events accepted:", accepted)  # noqa: T201
    assert sum(requests_by_code.values()) >= MAX_EXAMPLES, requests_by_code
    assert requests_by_code.get("202", 0) > 0, requests_by_code
    assert accepted > 0
    assert not [code for code in requests_by_code if code.startswith("5")], requests_by_code
