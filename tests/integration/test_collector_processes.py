"""INGEST_PROCESSES=2: several collector processes on one port, one set of metrics.

The collector runs as a real process tree against the real broker: every accepted event
lands once, /metrics sums all processes whichever one answers, a killed process is
replaced without its counts going missing, and SIGTERM stops the whole tree cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.common import descendants
from ingest.topics import TopicsConfig
from schemas import player_event_reader
from tests.events import event
from tests.integration.conftest import consume
from tests.integration.pipeline import free_port, wait_for

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]


def children(pid: int) -> set[int]:
    """Live collector processes started by ``pid`` (not multiprocessing's resource tracker)."""
    found = set()
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.add(child)
    return found


def still_running(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still exist."""
    return {pid for pid in pids if os.path.exists(f"/proc/{pid}")}


def scraped(url: str, name: str) -> float:
    """The sum of ``name`` in one scrape; a new connection each time, so the kernel may
    hand it to either process."""
    text = requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def accepted_total(url: str) -> float:
    return scraped(url, "openqoe_ingest_events_accepted_total")


def post_batches(url: str, tag: str, requests_n: int, per_request: int) -> int:
    now = int(time.time() * 1000)
    for r in range(requests_n):
        events = [
            event("heartbeat", now, view_id=f"{tag}-{r}", event_id=f"{tag}-{r}-{i}")
            for i in range(per_request)
        ]
        response = requests.post(
            f"{url}/v1/events",
            json={"events": events},
            headers={"Connection": "close"},  # spread over the processes
            timeout=30,
        )
        assert response.status_code == 202, response.text
    return requests_n * per_request


@pytest.fixture
def collector_tree(
    topics: TopicsConfig, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log_path = tmp_path / "collector.log"
    metrics_dir = tmp_path / "metrics"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest"],
            env={
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": topics.kafka_bootstrap_servers,
                "INGEST_RAW_TOPIC": topics.raw_topic,
                "INGEST_REJECTED_TOPIC": topics.rejected_topic,
                "INGEST_PORT": str(port),
                "INGEST_AUTH_DISABLED": "true",
                "INGEST_PROCESSES": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"collector exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            return requests.get(f"{url}/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for("collector processes ready", ready, 60)
        wait_for("two collector processes", lambda: len(children(process.pid)) == 2, 30)
        yield url, process, log_path
    finally:
        if process.poll() is None:
            process.kill()
            for child in children(process.pid):
                os.kill(child, signal.SIGKILL)
        process.wait(10)


async def test_processes_share_the_port_and_one_set_of_metrics(
    topics: TopicsConfig, collector_tree: tuple[str, subprocess.Popen[bytes], Path]
) -> None:
    url, parent, log_path = collector_tree
    # Only one process answered the /ready probes; kafka_ready is the lowest over the live
    # processes, so it reads 1 only once every process found Kafka on its own.
    wait_for(
        "kafka_ready 1 over both processes",
        lambda: scraped(url, "openqoe_ingest_kafka_ready") == 1,
        30,
    )
    sent = post_batches(url, "a", requests_n=30, per_request=5)

    # Every scrape sees the sum over both processes, not one process's share.
    for _ in range(6):
        assert accepted_total(url) == sent

    # kill -9 one process: it is replaced, and what it counted is still in the sum.
    first, *_ = sorted(children(parent.pid))
    os.kill(first, signal.SIGKILL)
    wait_for(
        "the killed process replaced",
        lambda: len(children(parent.pid)) == 2 and first not in children(parent.pid),
        30,
    )
    wait_for("ready again", lambda: requests.get(f"{url}/ready", timeout=2).status_code == 200, 30)
    sent += post_batches(url, "b", requests_n=20, per_request=5)
    for _ in range(6):
        assert accepted_total(url) == sent

    records = await consume(topics.kafka_bootstrap_servers, topics.raw_topic, expected=sent)
    reader = player_event_reader()
    ids = [reader.decode(r.value)["event_id"] for r in records]
    assert len(ids) == sent
    assert len(set(ids)) == sent

    # SIGTERM: every process shuts down gracefully and the parent reports success.
    tree = children(parent.pid)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(40) == 0, log_path.read_text()
    assert not tree & still_running(tree)
    assert "exited with -9" in log_path.read_text()  # the supervisor said what happened
