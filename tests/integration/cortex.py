"""A real multi-tenant Cortex (single process, loopback only) for the tests.

Cortex (Apache-2.0) is the project Grafana Mimir was forked from: the same ``/api/v1/push``,
``X-Scope-OrgID`` tenancy, ruler API (``/api/v1/rules``, here under the Prometheus prefix
``/prometheus/config/v1/rules`` as in Mimir) and ``/prometheus/api/v1/query``. The binary is
built from the Go module proxy by ``deploy/cortex/build.sh`` (cached; ``.ci/run`` and
``scripts/test.sh`` build it before the tests).

The configuration: every component in one process (``-target=all``), every listener on
127.0.0.1 (HTTP, gRPC, the alertmanager's cluster port, memberlist), blocks and rules on the
local filesystem under the test's directory, ``auth_enabled: true`` (multi-tenant: a request
without ``X-Scope-OrgID`` is refused), the ruler API on, and short ruler poll and evaluation
intervals so the tests see rule results within seconds.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from bench.common import stop_process
from tests.integration.pipeline import (
    REPO,
    free_port,
    instant_query,
    serving,
    single_value,
    wait_for,
)

BUILD_SCRIPT = REPO / "deploy" / "cortex" / "build.sh"
PREFIX = "/prometheus"
# Cortex's ruler config API (Mimir serves it at /prometheus/config/v1/rules).
RULES_PATH = "/api/v1/rules"


def cortex_binary() -> Path:
    """The pinned Cortex binary; builds it (minutes, once) when it is not cached yet."""
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode != 0:
        pytest.fail(f"deploy/cortex/build.sh failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def cortex_config(workdir: Path, ports: dict[str, int], evaluation_interval: str) -> dict[str, Any]:
    loopback = "127.0.0.1"
    inmemory = {"kvstore": {"store": "inmemory"}}
    return {
        "target": "all",
        "auth_enabled": True,
        "server": {
            "http_listen_address": loopback,
            "http_listen_port": ports["http"],
            "grpc_listen_address": loopback,
            "grpc_listen_port": ports["grpc"],
            "log_level": "warn",
        },
        "distributor": {
            "shard_by_all_labels": True,
            "ring": {"instance_addr": loopback, **inmemory},
        },
        "ingester": {
            "lifecycler": {
                "address": loopback,
                "min_ready_duration": "0s",
                "final_sleep": "0s",
                "join_after": "0s",
                "num_tokens": 512,
                "ring": {**inmemory, "replication_factor": 1},
            }
        },
        "blocks_storage": {
            "backend": "filesystem",
            "filesystem": {"dir": str(workdir / "blocks")},
            "tsdb": {"dir": str(workdir / "tsdb")},
            "bucket_store": {"sync_dir": str(workdir / "tsdb-sync")},
        },
        "compactor": {
            "data_dir": str(workdir / "compactor"),
            "sharding_ring": {"instance_addr": loopback, **inmemory},
        },
        "store_gateway": {"sharding_ring": {"instance_addr": loopback, **inmemory}},
        "frontend_worker": {"match_max_concurrent": True},
        "ruler": {
            "enable_api": True,
            "evaluation_interval": evaluation_interval,
            "poll_interval": "1s",
            "rule_path": str(workdir / "ruler-tmp"),
            "ring": {"instance_addr": loopback, **inmemory},
        },
        # "filesystem", not "local": the local rule store is read-only (no ruler API writes).
        "ruler_storage": {"backend": "filesystem", "filesystem": {"dir": str(workdir / "rules")}},
        "alertmanager": {
            "data_dir": str(workdir / "alertmanager"),
            "external_url": f"http://{loopback}:{ports['http']}/alertmanager",
            # Without this the alertmanager's cluster listener binds every interface on :9094.
            "cluster": {"listen_address": f"{loopback}:{ports['cluster']}"},
            "sharding_ring": {"instance_addr": loopback, **inmemory},
        },
        "alertmanager_storage": {"backend": "local", "local": {"path": str(workdir / "alerts")}},
        "memberlist": {"bind_addr": [loopback], "bind_port": ports["memberlist"]},
        # The pipeline's histograms over org/env/app/device/player are many series at once.
        # ruler_query_offset: rules see data 3 s old, which every push (one a second) has
        # landed by then; so a rule's sample equals its expression queried at that time.
        "limits": {
            "ingestion_rate": 1_000_000,
            "ingestion_burst_size": 2_000_000,
            "ruler_query_offset": "3s",
        },
    }


class CortexServer:
    def __init__(self, workdir: Path, evaluation_interval: str = "1s") -> None:
        self.binary = cortex_binary()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        for directory in ("alerts", "ruler-tmp"):
            (workdir / directory).mkdir(exist_ok=True)
        self.ports = {name: free_port() for name in ("http", "grpc", "cluster", "memberlist")}
        self.url = f"http://127.0.0.1:{self.ports['http']}"
        config = cortex_config(workdir, self.ports, evaluation_interval)
        self.config_path = workdir / "cortex.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "cortex.log"
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(self.binary), f"-config.file={self.config_path}"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        wait_for("Cortex ready", self._ready, 90, every_s=0.5)

    @property
    def push_url(self) -> str:
        return f"{self.url}/api/v1/push"

    def _ready(self) -> bool:
        return serving(self.process, "cortex", f"{self.url}/ready", self.tail)

    def query(self, tenant: str, promql: str, **params: str) -> list[dict[str, Any]]:
        """An instant query in ``tenant`` (``params``: e.g. ``time``)."""
        url = f"{self.url}{PREFIX}/api/v1/query"
        return instant_query(url, promql, {"X-Scope-OrgID": tenant}, **params)

    def value(self, tenant: str, promql: str) -> float | None:
        """The single value of an instant vector query in ``tenant``, or None when empty."""
        return single_value(self.query(tenant, promql))

    def rule_groups(self, tenant: str, namespace: str) -> list[dict[str, Any]] | None:
        """The tenant's rule groups in ``namespace`` as the ruler API returns them."""
        response = requests.get(
            f"{self.url}{RULES_PATH}/{namespace}",
            headers={"X-Scope-OrgID": tenant},
            timeout=10,
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        groups: list[dict[str, Any]] = yaml.safe_load(response.text)[namespace]
        return groups

    def evaluated_rules(self, tenant: str) -> list[dict[str, Any]]:
        """The Prometheus-style ``/api/v1/rules`` view: every rule with health and last run."""
        response = requests.get(
            f"{self.url}{PREFIX}/api/v1/rules", headers={"X-Scope-OrgID": tenant}, timeout=10
        )
        response.raise_for_status()
        return [rule for group in response.json()["data"]["groups"] for rule in group["rules"]]

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_process(self.process, 30)
        self.log.close()


class BasicAuthGateway:
    """What sits in front of a multi-tenant Cortex/Mimir in production: an authenticating
    reverse proxy (nginx ``auth_basic``, Grafana Cloud's gateway). Cortex itself does no
    authentication (it ignores ``Authorization`` and takes the tenant from ``X-Scope-OrgID``),
    so this gateway checks the basic-auth credentials, answers 401 to anything else, records
    what it saw and passes the request through unchanged (headers included) to Cortex.
    """

    def __init__(self, upstream: str, username: str, password: str) -> None:
        expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        gateway = self
        self.seen: list[dict[str, str | int | None]] = []
        self.refused = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != expected:
                    gateway.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="cortex"')
                    self.end_headers()
                    return
                hop = {"host", "content-length", "connection", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                answer = requests.post(upstream + self.path, data=body, headers=headers, timeout=30)
                gateway.seen.append(
                    {
                        "path": self.path,
                        "tenant": self.headers.get("X-Scope-OrgID"),
                        "status": answer.status_code,
                    }
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
