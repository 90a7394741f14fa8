"""The public surface: each package's ``__all__``, and the collector's API document."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from ingest.app import create_app
from ingest.config import IngestConfig
from ingest.validation import EVENT_TYPES
from tests.events import FIXTURES, event, sdk_batch


@pytest.mark.parametrize("package", ["ingest", "processors", "schemas"])
def test_all_names_exist(package: str) -> None:
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), name


def test_openapi_document_is_valid_and_lists_exactly_the_app_routes() -> None:
    document = yaml.safe_load((FIXTURES.parents[1] / "ingest" / "openapi.yaml").read_text())
    validate(document)
    app = create_app(IngestConfig(auth_disabled=True))
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routes == documented


def test_what_the_real_sdk_sends_matches_the_api_document() -> None:
    """The document's schemas are as strict as the collector, but not stricter than the
    SDK: the recorded SDK v1 batch and one event of every type we build are valid."""
    document = yaml.safe_load((FIXTURES.parents[1] / "ingest" / "openapi.yaml").read_text())
    registry: Registry[Any] = Registry().with_resource("", DRAFT202012.create_resource(document))
    batch = {"$ref": "#/components/schemas/EventBatch", "components": document["components"]}
    validator = OAS31Validator(batch, registry=registry)
    now_ms = 1_796_000_000_000
    events = sdk_batch(now_ms) + [event(kind, now_ms) for kind in sorted(EVENT_TYPES)]
    for item in events:
        validator.validate({"events": [item]})
    missing_family = event("error", now_ms, data={"error_message": "boom"})
    assert not validator.is_valid({"events": [missing_family]})
    assert not validator.is_valid({"events": [event("quartile", now_ms, data={})]})
