"""The running parts of a browser test: the collector and media server processes, the
scenario driver (sdk/e2e/run-scenario.mjs) and a reader of qoe.views."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from aiokafka import AIOKafkaConsumer

from schemas import SingleObjectCodec, load_schema
from tests.integration.pipeline import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "sdk"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
STALL_MIN_MS = 500
# A frozen stretch this long counts when the element fired `waiting` in it (it ran out of
# data): the SDK reports waits from 250 ms. `waiting` may come a little after the last frame.
WAITED_STALL_MIN_MS = 250
WAITING_SLACK_MS = 100


def check_tools() -> None:
    """Fail (never skip) with what to install when a real part is missing."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if shutil.which("ffmpeg") is None:
        missing.append("ffmpeg (apt-get install ffmpeg)")
    if shutil.which("node") is None:
        missing.append("node (Node 20)")
    if not (SDK / "node_modules" / "playwright-core").is_dir():
        missing.append("sdk/node_modules (npm ci --prefix sdk)")
    if not (SDK / "dist" / "openqoe.min.js").is_file():
        missing.append("sdk/dist/openqoe.min.js (npm run build --prefix sdk)")
    if missing:
        pytest.fail("the browser tests need: " + "; ".join(missing) + " (.ci/run installs them)")


class Service:
    """A child process with a log file, polled until ``ready_url`` answers 200."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            args, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO
        )

    def wait_ready(self, url: str, timeout_s: float = 60) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                return requests.get(url, timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(f"{self.name} ready", ready, timeout_s)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def start_collector(
    topics: Any, key: str, org: str, origin: str, workdir: Path
) -> tuple[Service, str]:
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": topics.kafka_bootstrap_servers,
        "INGEST_RAW_TOPIC": topics.raw_topic,
        "INGEST_REJECTED_TOPIC": topics.rejected_topic,
        "INGEST_HOST": "127.0.0.1",
        "INGEST_PORT": str(port),
        "INGEST_API_KEYS": f"{org}:{key}",
        "INGEST_CORS_ORIGINS": origin,
        "LOG_LEVEL": "WARNING",
    }
    service = Service("collector", [sys.executable, "-m", "ingest"], env, workdir / "collector.log")
    url = f"http://127.0.0.1:{port}"
    service.wait_ready(f"{url}/ready")
    return service, url


def start_media_server(port: int, collector_url: str, key: str, org: str, workdir: Path) -> Service:
    args = [sys.executable, "-m", "tests.media.server", "--port", str(port)]
    args += ["--collector", collector_url, "--key", key, "--org", org]
    service = Service("media server", args, {}, workdir / "media-server.log")
    # The first run generates the media with ffmpeg (~30 s on 2 cores).
    service.wait_ready(f"http://127.0.0.1:{port}/demo/config.js", timeout_s=240)
    return service


@dataclass
class ScenarioRun:
    """What the driver saw: view ids, the page's own truth (sdk/e2e/truth.js), actions."""

    result: dict[str, Any]

    @property
    def view_ids(self) -> list[str]:
        ids: list[str] = self.result.get("viewIds") or []
        return ids

    @property
    def truth(self) -> dict[str, Any]:
        truth: dict[str, Any] = self.result.get("truth") or {}
        return truth

    def page_log(self, kind: str) -> list[dict[str, Any]]:
        return [entry for entry in self.result.get("log") or [] if entry["kind"] == kind]

    @property
    def play_requested(self) -> float:
        """The app's play request: the page's own note (Video.js calls video.play() later)."""
        notes = self.page_log("play_request")
        return float(notes[0]["t"]) if notes else float(self.truth["playRequests"][0])

    @property
    def startup_ms(self) -> float:
        return float(self.truth["firstFrame"]) - self.play_requested

    def stall_gaps(self) -> list[dict[str, Any]]:
        """Frozen stretches after the first frame that were not seek waits: from 500 ms (a
        loaded 2-core machine has render hiccups of 250-350 ms), or from 250 ms while the
        element was waiting for data (VHS's quality change freezes for 450-550 ms)."""
        waits: list[float] = self.truth.get("waits") or []

        def stalled(gap: dict[str, Any]) -> bool:
            frozen = gap["end"] - gap["start"]
            waited = any(gap["start"] - WAITING_SLACK_MS <= w <= gap["end"] for w in waits)
            return frozen >= STALL_MIN_MS or (waited and frozen >= WAITED_STALL_MIN_MS)

        return [g for g in self.truth["gaps"] if not g["seeking"] and stalled(g)]

    def stalls(self) -> list[float]:
        """The stall_gaps' durations, in ms."""
        return [float(g["end"] - g["start"]) for g in self.stall_gaps()]


def run_scenario(spec: dict[str, Any], timeout_s: float = 90) -> ScenarioRun:
    completed = subprocess.run(
        ["node", str(SDK / "e2e" / "run-scenario.mjs"), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "CHROMIUM": CHROMIUM},
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if not lines:
        pytest.fail(f"driver printed nothing (rc {completed.returncode}):\n{completed.stderr}")
    result = json.loads(lines[-1])
    if not result.get("ok"):
        console = "\n".join(result.get("console", [])[-20:])
        log = json.dumps(result.get("log"), indent=None)[:3000]
        pytest.fail(f"scenario failed: {result.get('error')}\npage log: {log}\nconsole:\n{console}")
    return ScenarioRun(result)


class ViewsReader:
    """Reads ``qoe.views`` from the beginning; keeps the latest summary per view id."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.codec = SingleObjectCodec(load_schema("view_summary"), logical_types=False)
        self.summaries: dict[str, dict[str, Any]] = {}
        self.published: dict[str, int] = {}

    async def _read(self, view_ids: set[str], timeout_s: float) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        try:
            self.summaries.clear()
            self.published.clear()
            deadline = time.monotonic() + timeout_s
            grace_until: float | None = None
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        summary = self.codec.decode(record.value)
                        view_id = summary["view_id"]
                        previous = self.summaries.get(view_id)
                        # At-least-once: a view may come twice, always with the same values.
                        assert previous is None or previous == summary, (previous, summary)
                        self.summaries[view_id] = summary
                        self.published[view_id] = self.published.get(view_id, 0) + 1
                if view_ids <= set(self.summaries):
                    # A little longer, so that a second (different) summary would be seen.
                    grace_until = grace_until or time.monotonic() + 1.0
                    if time.monotonic() >= grace_until:
                        return
        finally:
            await consumer.stop()

    def wait(self, view_ids: list[str], timeout_s: float = 40) -> dict[str, dict[str, Any]]:
        wanted = set(view_ids)
        asyncio.run(self._read(wanted, timeout_s))
        missing = wanted - set(self.summaries)
        if missing:
            pytest.fail(f"no qoe.views summary within {timeout_s}s for {sorted(missing)}")
        return {view_id: self.summaries[view_id] for view_id in view_ids}
