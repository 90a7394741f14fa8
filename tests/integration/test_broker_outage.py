"""The collector as a real process, against its own broker that we stop and restart.

Uses a second single-node broker (own ports and data dir, same cached jars) so that
stopping it cannot disturb other tests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ingest.topics import TopicsConfig, ensure_topics
from schemas import player_event_reader
from tests.events import event
from tests.integration.conftest import consume

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO / "deploy" / "kafka-local.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "OPENQOE_KAFKA_HOME": str(home),
            "KAFKA_LIBS_DIR": os.environ.get(
                "KAFKA_LIBS_DIR", str(REPO / ".local" / "kafka" / "libs")
            ),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_HEAP": "-Xms128m -Xmx512m",
        }
        self.bootstrap = f"127.0.0.1:{self.port}"

    def run(self, command: str) -> None:
        subprocess.run(["bash", str(KAFKA_SCRIPT), command], env=self.env, check=True, timeout=180)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("kafka-outage"))
    broker.run("start")
    try:
        yield broker
    finally:
        broker.run("stop")


@pytest.fixture
def collector(broker: Broker, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    topics = TopicsConfig(
        kafka_bootstrap_servers=broker.bootstrap,
        raw_topic="outage.raw",
        raw_partitions=2,
        rejected_topic="outage.rejected",
        rejected_partitions=1,
        views_topic="outage.views",
        control_topic="outage.control",
    )
    asyncio.run(ensure_topics(topics))
    port = free_port()
    log = (tmp_path / "collector.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest"],
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "INGEST_RAW_TOPIC": topics.raw_topic,
            "INGEST_REJECTED_TOPIC": topics.rejected_topic,
            "INGEST_PORT": str(port),
            "INGEST_AUTH_DISABLED": "true",
            "INGEST_PRODUCE_TIMEOUT_S": "3",
            "INGEST_RETRY_AFTER_S": "2",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("collector did not become ready:\n" + (tmp_path / "collector.log").read_text())
    try:
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        log.close()


def post(url: str, events: list[dict[str, Any]]) -> requests.Response:
    return requests.post(f"{url}/v1/events", json={"events": events}, timeout=30)


def batch(tag: str, n: int = 5) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [event("heartbeat", now, view_id=f"view-{tag}", event_id=f"{tag}-{i}") for i in range(n)]


def test_broker_outage_503_then_recovery_and_nothing_false_reported(
    broker: Broker, collector: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, process = collector
    reported: set[str] = set()

    first = post(url, batch("before"))
    assert first.status_code == 202
    reported |= {f"before-{i}" for i in range(5)}

    broker.run("stop")
    try:
        started = time.monotonic()
        down = post(url, batch("during"))
        assert down.status_code == 503
        assert down.json()["error"] == "kafka_unavailable"
        assert int(down.headers["Retry-After"]) == 2
        assert time.monotonic() - started < 10  # bounded by the produce timeout
        assert requests.get(f"{url}/ready", timeout=10).status_code == 503
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        assert process.poll() is None
    finally:
        broker.run("start")

    # Recovers by itself once the broker is back: poll with a deadline.
    deadline = time.monotonic() + 90
    attempt = 0
    while True:
        tag = f"after{attempt}"
        response = post(url, batch(tag))
        if response.status_code == 202:
            reported |= {f"{tag}-{i}" for i in range(5)}
            break
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, "collector did not recover after the broker returned"
        attempt += 1
        time.sleep(1)

    records = asyncio.run(
        consume(broker.bootstrap, "outage.raw", expected=len(reported), timeout_s=30)
    )
    in_kafka = {player_event_reader().decode(r.value)["event_id"] for r in records}
    # Everything reported accepted is durable; "during" events may or may not have landed
    # (they were reported as not accepted, so the client retries; event_id dedupes).
    assert reported <= in_kafka
    assert in_kafka - reported <= {f"during-{i}" for i in range(5)} | {
        f"after{a}-{i}" for a in range(attempt) for i in range(5)
    }

    # Graceful shutdown: SIGTERM drains and exits cleanly.
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
