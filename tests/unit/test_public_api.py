"""Each package's ``__all__`` is its public surface: every name exists and is exported."""

from __future__ import annotations

import importlib

import pytest
import yaml
from openapi_spec_validator import validate

from ingest.app import create_app
from ingest.config import IngestConfig
from tests.events import FIXTURES


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
