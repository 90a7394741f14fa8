"""Helpers to run the real pieces: Debian's Prometheus and processor worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from bench.common import processor_env as base_processor_env
from bench.common import stop_process
from ingest.topics import TopicsConfig

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str, check: Callable[[], T | None], timeout_s: float = 60, every_s: float = 0.25
) -> T:
    """Poll ``check`` until it returns something truthy, or fail with ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def serving(process: subprocess.Popen[bytes], what: str, url: str, tail: Callable[[], str]) -> bool:
    """Whether ``url`` answers 200; fails the test at once if the process has exited."""
    if process.poll() is not None:
        pytest.fail(f"{what} exited with {process.returncode}:\n{tail()}")
    try:
        return requests.get(url, timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False  # not answering yet, or too busy right now: the caller's deadline decides


def instant_query(
    url: str, promql: str, headers: dict[str, str] | None = None, **params: str
) -> list[dict[str, Any]]:
    """The result of a Prometheus-API instant query at ``url`` (``.../api/v1/query``)."""
    response = requests.get(
        url, params={"query": promql, **params}, headers=headers or {}, timeout=10
    )
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def single_value(result: list[dict[str, Any]]) -> float | None:
    """The one value of an instant vector, or None when it is empty."""
    if not result:
        return None
    assert len(result) == 1, result
    return float(result[0]["value"][1])


class Collector:
    """One ``python -m ingest`` process."""

    def __init__(
        self, topics: TopicsConfig, log_path: Path, keys: dict[str, str], **env: str
    ) -> None:
        """``keys``: org -> ingest key (INGEST_API_KEYS); ``env``: more INGEST_* settings."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ingest"],
            env={
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": topics.kafka_bootstrap_servers,
                "INGEST_HOST": "127.0.0.1",
                "INGEST_PORT": str(self.port),
                "INGEST_API_KEYS": ",".join(f"{org}:{key}" for org, key in keys.items()),
                "INGEST_RAW_TOPIC": topics.raw_topic,
                "INGEST_REJECTED_TOPIC": topics.rejected_topic,
                "LOG_LEVEL": "WARNING",
                **env,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def answers(self) -> bool:
        return serving(self.process, "collector", f"{self.url}/health", self.tail)

    def ready(self) -> bool:
        return self.answers() and requests.get(f"{self.url}/ready", timeout=5).status_code == 200

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        stop_process(self.process, 30)
        self.log.close()


class PrometheusServer:
    """Debian's prometheus binary with the remote-write receiver, standing in for Mimir."""

    def __init__(self, workdir: Path, config: str | None = None) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed (apt-get install prometheus; .ci/run does it)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(config or "global:\n  scrape_interval: 15s\n")
        self.start()

    def reload(self, config: str) -> None:
        """Replace the configuration (prometheus.yml) of the running server."""
        (self.workdir / "prometheus.yml").write_text(config)
        requests.post(f"{self.url}/-/reload", timeout=10).raise_for_status()

    def start(self) -> None:
        """Start (or restart, on the same port and data) the server."""
        self.log = (self.workdir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
                "--web.enable-lifecycle",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for("Prometheus ready", self._ready, 30)

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        return instant_query(f"{self.url}/api/v1/query", promql)

    def value(self, promql: str) -> float | None:
        """The single value of an instant vector query, or None when it is empty."""
        return single_value(self.query(promql))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
        self.log.close()


class ProcessorWorker:
    """One ``python -m processors`` worker process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "PROCESSOR_WEB_PORT": str(self.port)}
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "processors"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        return serving(self.process, "processor", f"{self.url}/health", self.tail)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric of the worker's own /metrics matching ``labels``."""
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.log.close()

    def stop(self, timeout_s: float = 60) -> int:
        returncode = stop_process(self.process, timeout_s)
        self.log.close()
        return returncode


def processor_env(
    topics: TopicsConfig,
    *,
    app_id: str,
    data_dir: Path,
    remote_write_url: str,
    loki_url: str | None = None,
    **extra: str,
) -> dict[str, str]:
    env = {
        **base_processor_env(
            topics, app_id=app_id, data_dir=data_dir, remote_write_url=remote_write_url
        ),
        # Short timers, so views end and values arrive within a test's patience.
        "PROCESSOR_FLUSH_INTERVAL_S": "1",
        "PROCESSOR_VIEW_TIMEOUT_S": "4",
        "PROCESSOR_CLOSED_VIEW_RETENTION_S": "600",
        "PROCESSOR_EXPIRY_SCAN_INTERVAL_S": "0.5",
        "LOG_LEVEL": os.environ.get("TEST_PROCESSOR_LOG_LEVEL", "WARNING"),
    }
    if loki_url:
        env["PROCESSOR_LOKI_URL"] = loki_url
    env.update(extra)
    return env


def start_worker(
    topics: TopicsConfig,
    workdir: Path,
    org: str,
    remote_write_url: str,
    loki_url: str | None = None,
    **extra: str,
) -> ProcessorWorker:
    """A healthy worker for one test's ``org``, with its own app id and data dir."""
    env = processor_env(
        topics,
        app_id=f"test-{org}",
        data_dir=workdir / f"worker-{org}",
        remote_write_url=remote_write_url,
        loki_url=loki_url,
        **extra,
    )
    worker = ProcessorWorker(env, workdir / f"worker-{org}.log")
    wait_for("processor healthy", worker.healthy, 60)
    return worker
