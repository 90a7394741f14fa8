"""Session fixtures of the browser tests: topics, collector, processor, Prometheus, media
server; and the accuracy table (SDK value minus on-screen truth) printed at the end."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ingest.topics import TopicsConfig, ensure_topics
from tests.browser.harness import (
    REPO,
    ViewsReader,
    check_tools,
    start_collector,
    start_media_server,
)
from tests.integration.conftest import _delete_topics, _list_topics, kafka_bootstrap, prometheus
from tests.integration.pipeline import (
    ProcessorWorker,
    PrometheusServer,
    free_port,
    processor_env,
    wait_for,
)

__all__ = ["kafka_bootstrap", "prometheus"]  # fixtures used here, shared with the integration tests

RESULTS = REPO / ".local" / "browser-accuracy.json"
# Not "test.": on the shared broker, every other test session deletes the test.* topics
# created while it ran (tests/integration/conftest.py), which took this session's away.
PREFIX = "sdkbrowser"
# Above the SDK's 10 s heartbeat interval plus its 1 s flush interval (demo pages' defaults).
VIEW_TIMEOUT_S = 15
_accuracy: list[dict[str, Any]] = []


@dataclass(frozen=True)
class Pipeline:
    org: str
    key: str
    collector_url: str
    media_url: str
    views: ViewsReader
    prometheus: PrometheusServer


@pytest.fixture(scope="session")
def pipeline(
    kafka_bootstrap: str, prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    check_tools()
    workdir = tmp_path_factory.mktemp("browser")
    suffix = uuid.uuid4().hex[:10]
    topics = TopicsConfig(
        kafka_bootstrap_servers=kafka_bootstrap,
        raw_topic=f"{PREFIX}.raw.{suffix}",
        raw_partitions=1,
        rejected_topic=f"{PREFIX}.rejected.{suffix}",
        rejected_partitions=1,
        views_topic=f"{PREFIX}.views.{suffix}",
        control_topic=f"{PREFIX}.control.{suffix}",
    )
    asyncio.run(ensure_topics(topics))
    org = f"sdk{uuid.uuid4().hex[:8]}"
    key = f"key-{uuid.uuid4().hex}"
    media_port = free_port()
    media_url = f"http://127.0.0.1:{media_port}"
    collector, collector_url = start_collector(topics, key, org, media_url, workdir)
    app_id = f"{PREFIX}-{suffix}"
    env = processor_env(
        topics,
        app_id=app_id,
        data_dir=workdir / "worker",
        remote_write_url=prometheus.write_url,
        # A playing view is quiet between its events for up to the SDK's heartbeat interval
        # (10 s; at 2x the first quartile comes ~3 s after the first frame, plus a 1 s
        # flush): the integration tests' 4 s timeout closed such views with what had arrived.
        PROCESSOR_VIEW_TIMEOUT_S=str(VIEW_TIMEOUT_S),
    )
    worker = ProcessorWorker(env, workdir / "worker.log")
    wait_for("processor healthy", worker.healthy, 60)
    media = start_media_server(media_port, collector_url, key, org, workdir)
    try:
        yield Pipeline(
            org=org,
            key=key,
            collector_url=collector_url,
            media_url=media_url,
            views=ViewsReader(kafka_bootstrap, topics.views_topic),
            prometheus=prometheus,
        )
    finally:
        media.stop()
        exit_code = worker.stop()
        collector.stop()
        mine = [t for t in asyncio.run(_list_topics(kafka_bootstrap)) if suffix in t]
        asyncio.run(_delete_topics(kafka_bootstrap, mine))
        assert exit_code == 0, worker.tail()


def record_accuracy(player: str, measure: str, sdk_ms: float, truth_ms: float) -> None:
    _accuracy.append({"player": player, "measure": measure, "sdk_ms": sdk_ms, "truth_ms": truth_ms})


def accuracy_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per player and measure, the SDK's error against the on-screen truth."""
    groups: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        groups.setdefault((row["player"], row["measure"]), []).append(
            row["sdk_ms"] - row["truth_ms"]
        )
    lines = [
        "| player | measure | runs | mean error (ms) | worst error (ms) |",
        "|---|---|---|---|---|",
    ]
    for (player, measure), errors in sorted(groups.items()):
        worst = max(errors, key=abs)
        mean = sum(errors) / len(errors)
        lines.append(f"| {player} | {measure} | {len(errors)} | {mean:+.0f} | {worst:+.0f} |")
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _accuracy:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(_accuracy, indent=1) + "\n")
    table = accuracy_table(_accuracy)
    RESULTS.with_suffix(".md").write_text(table)
    terminalreporter.write_sep("-", "SDK accuracy: reported minus on-screen truth")
    for line in table.splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(rows in {RESULTS.relative_to(REPO)})")
