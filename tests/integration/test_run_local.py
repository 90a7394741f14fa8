"""The README's first command, run as a newcomer would: every link it prints answers, the
project's recording rules produce QoE series in the local Prometheus, and it ends by itself
when its traffic ends, stopping what it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.integration.pipeline import REPO, free_port, wait_for

pytestmark = pytest.mark.kafka

DURATION_S = 45


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException:
        return False


def _port_free(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=1)
    except requests.ConnectionError:
        return True
    return False


def test_run_local_links_work_qoe_series_exist_and_it_ends_by_itself(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = ("INGEST_PORT", "PROCESSOR_WEB_PORT", "PROMETHEUS_PORT", "DEMO_PORT")
    ports = {name: free_port() for name in names}
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "KAFKA_PORT": kafka_bootstrap.rsplit(":", 1)[1],
        "DURATION": str(DURATION_S),
        "VIEWS": "10",
        "SPEED": "10",
    }
    log_path = tmp_path / "run-local.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "scripts/run-local.sh"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            banner = wait_for(
                "the 'where to look' list",
                lambda: "Where to look" in log_path.read_text() and log_path.read_text(),
                timeout_s=180,
            )
            links = re.findall(r"http://127\.0\.0\.1:\d+[^\s]*", banner)
            assert len(links) >= 10, banner
            for link in links:
                assert _answers(link), f"{link} does not answer 200"
            # The player demo pages, with the SDK bundle and a player they load.
            demo = f"http://127.0.0.1:{ports['DEMO_PORT']}"
            assert f"{demo}/demo/index.html" in links
            for path in ("/demo/hlsjs.html", "/sdk/openqoe.min.js", "/media/hls/master.m3u8"):
                assert _answers(demo + path), f"{demo}{path} does not answer 200"
            prometheus = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"

            wanted = {"openqoe:concurrent_viewers:sum", "openqoe:views_started:rate5m"}

            def qoe_series() -> set[str] | None:
                response = requests.get(
                    f"{prometheus}/api/v1/query",
                    params={"query": 'count by (__name__) ({__name__=~"openqoe:.+"})'},
                    timeout=5,
                )
                names = {r["metric"]["__name__"] for r in response.json()["data"]["result"]}
                return names if wanted <= names else None

            wait_for("the recording rules' QoE series", qoe_series, timeout_s=DURATION_S)
            up = requests.get(f"{prometheus}/api/v1/query", params={"query": "up"}, timeout=5)
            jobs = {r["metric"]["job"]: r["value"][1] for r in up.json()["data"]["result"]}
            assert jobs == {"openqoe-collector": "1", "openqoe-processor": "1"}
            returncode = process.wait(timeout=DURATION_S + 90)
        finally:
            if process.poll() is None:  # as Ctrl-C does: the whole process group
                os.killpg(process.pid, signal.SIGINT)
                process.wait(60)
    output = log_path.read_text()
    assert returncode == 0, output[-3000:]
    assert output.count("stopping the collector, processor and Prometheus") == 1, output[-2000:]
    deadline = time.monotonic() + 20
    while not all(_port_free(p) for p in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(_port_free(p) for p in ports.values()), "a service outlived run-local.sh"
