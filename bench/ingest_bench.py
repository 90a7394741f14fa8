"""Collector benchmark: throughput, latency and CPU of ``POST /v1/events`` against real Kafka.

Run from the repository root (the local broker must be up: ``bash deploy/kafka-local.sh start``)::

    .venv/bin/python -m bench.ingest_bench --duration 10 --json bench-results.json

What one run does:

* creates fresh bench topics (raw: 12 partitions) with ``ingest.topics.ensure_topics``;
* starts the collector as a subprocess (``python -m ingest``; auth on with one key, rate
  limit off, a free port) and waits for ``/ready``;
* pre-generates realistic events with ``bench.traffic`` (event_time within the last 24 h)
  and pre-serialises every request body, so generation and JSON encoding are not measured;
* per scenario, starts load-generator subprocess(es) that speak HTTP/1.1 keep-alive over
  loopback with a minimal asyncio client (pre-built request bytes, so the client costs as
  little CPU as possible on this shared machine):

  - ``closed-bB``: closed loop, ``--connections`` connections each sending its next batch of
    B events as soon as the previous answer arrived (maximum throughput);
  - ``open-bB-rR``: open loop, a batch of B events is *scheduled* every B/R seconds whatever
    happened before; latency is measured from the scheduled time, so a stalled collector is
    not hidden by the client backing off (no coordinated omission);
  - ``baseline-bB``: no HTTP, no collector: a raw aiokafka producer with the collector's
    producer settings sends the same events, Avro-encoded once up front, B at a time with
    ``--connections`` concurrent senders, awaiting each batch's acknowledgements the way
    ``ingest/publisher.py`` does (``baseline-bB-gather``: with ``asyncio.gather``);
  - ``profile-bB``: the closed-loop scenario against a second collector running under
    ``cProfile``; its throughput is not a result (profiling slows Python code down), its
    breakdown of where the collector's time goes is;
  - ``spy-bB``: the closed-loop scenario while py-spy (dev extra) samples the collector,
    which costs the collector nothing and does not skew C against Python code;

* reports events/s (answered inside the measured window), p50/p95/p99 request latency (open
  loop: of every request scheduled in the window, however late its answer), errors by HTTP
  status (``timeout``: no answer within ``--drain-timeout``), and CPU-seconds per
  10k events of the collector (utime+stime from ``/proc/<pid>/stat``), of the load generator
  and of the broker (the ``kafka.Kafka`` JVM; it is shared, so others' load is included);
* prints a markdown table, optionally writes everything as JSON (``--json``), and deletes
  the bench topics (unless ``--keep-topics``).

Every scenario has a warm-up (``--warmup``) before its measured window (``--duration``).
The machine is shared: ``--wait-quiet S`` waits up to S s before each scenario for other
processes to go idle, and every row reports the CPU they used during its window.
``--collector-src DIR`` benchmarks the collector of another tree (e.g. an older commit).
Results: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import pstats
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    bench_topics,
    broker_topic_count,
    cpu_model,
    find_broker_pid,
    free_port,
    machine_busy_s,
    percentile,
    proc_tree_cpu_s,
    spy_stacks,
)
from bench.common import (
    fmt as _fmt,
)

ORG = "bench_org"
KEY = "bench-key-" + "0" * 22
DEFAULT_SCENARIOS = (
    "closed-b1,closed-b10,closed-b100,open-b10-r10000,open-b100-r20000,"
    "baseline-b1,baseline-b10,baseline-b100,baseline-b100-gather,profile-b10,profile-b100"
)


# --- CPU accounting ---------------------------------------------------------------------------


def wait_until_quiet(budget_s: float, ours: list[int], threshold: float = 0.15) -> float:
    """Wait (at most ``budget_s``) until the machine minus ``ours`` is nearly idle for 3 s.

    On a shared machine other people's test runs steal CPU from the collector and skew every
    number. Returns the busy CPU share (1.0 = one core) of the rest in the last 3 s.
    """
    deadline = time.monotonic() + budget_s
    while True:
        machine = machine_busy_s()
        own = sum(proc_tree_cpu_s(pid) or 0.0 for pid in ours)
        time.sleep(3)
        other = (
            machine_busy_s() - machine - (sum(proc_tree_cpu_s(pid) or 0.0 for pid in ours) - own)
        ) / 3
        if other < threshold or time.monotonic() >= deadline:
            return other
        print(f"  waiting for a quiet machine (others use {100 * other:.0f} % CPU)", flush=True)


# --- events ------------------------------------------------------------------------------------


def generate_events(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` realistic events from whole views (bench.traffic), all within the last 24 h.

    Views start 1-2 h ago, so every event_time stays valid for the next ~22 h. Events are
    kept in per-view order, views one after another, the way an SDK would batch them.
    """
    from bench.traffic import new_view, view_script

    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    events: list[dict[str, Any]] = []
    while len(events) < n:
        view = new_view(rng, ORG)
        start = now_ms - rng.randint(3_600_000, 7_200_000)
        events.extend(view_script(rng, view, start, 10_000))
    return events[:n]


def batches(events: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [list(events[i : i + size]) for i in range(0, len(events) - size + 1, size)]


# --- a minimal HTTP/1.1 keep-alive client ------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; responses need Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.header_end = -1
        self.total = -1
        self.status = 0
        self.broken = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.total < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self.broken = True
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_exception(ConnectionError("response without Content-Length"))
                return
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : line_end if line_end > 0 else len(head)])
            self.header_end = end + 4
            self.total = self.header_end + length
        if len(self.buffer) >= self.total:
            body = bytes(self.buffer[self.header_end : self.total])
            del self.buffer[: self.total]
            self.total = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((self.status, body))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.transport is None or self.broken:
            raise ConnectionError("connection is closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def http_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nX-API-Key: {KEY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --- worker processes (load generator, baseline producer) --------------------------------------


@dataclass
class Tally:
    """What one worker observed inside the measured window."""

    events: int = 0  # accepted events of the measured requests
    events_in_window: int = 0  # ... of those answered before the window closed
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    max_send_lag_ms: float = 0.0
    connections: int = 0

    def record(
        self, status: str, latency_s: float, events: int, body: bytes = b"", in_window: bool = True
    ) -> None:
        self.requests += 1
        self.statuses[status] += 1
        self.latencies_ms.append(latency_s * 1000)
        if status == "202":
            self.events += events
            if in_window:
                self.events_in_window += events
        elif len(self.error_samples) < 5:
            self.error_samples.append(f"{status}: {body[:300]!r}")


async def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def _closed_loop(spec: dict[str, Any], requests: list[bytes], t0: float) -> Tally:
    batch, conns, port = spec["batch"], spec["connections"], spec["port"]
    window_start = t0 + spec["warmup"]
    window_end = window_start + spec["duration"]
    tally = Tally(connections=conns)
    connections = [await HttpConnection.open("127.0.0.1", port) for _ in range(conns)]
    await _sleep_until(t0)

    async def run(index: int) -> None:
        conn = connections[index]
        i = index * (len(requests) // conns)
        while True:
            started = time.perf_counter()
            if started >= window_end:
                break
            data = requests[i % len(requests)]
            i += 1
            try:
                status, body = await conn.request(data)
                code = str(status)
            except ConnectionError as exc:
                code, body = "conn_error", str(exc).encode()
                conn = connections[index] = await HttpConnection.open("127.0.0.1", port)
            done = time.perf_counter()
            if started >= window_start and done <= window_end:
                tally.record(code, done - started, batch, body)

    await asyncio.gather(*(run(i) for i in range(conns)))
    for conn in connections:
        conn.close()
    return tally


async def _open_loop(spec: dict[str, Any], requests: list[bytes], t0: float) -> Tally:
    batch, port = spec["batch"], spec["port"]
    interval = batch / spec["rate"]
    window_start = t0 + spec["warmup"]
    window_end = window_start + spec["duration"]
    tally = Tally()
    idle: list[HttpConnection] = [
        await HttpConnection.open("127.0.0.1", port) for _ in range(spec["connections"])
    ]
    opened = len(idle)
    waiters: deque[asyncio.Future[HttpConnection]] = deque()
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def acquire() -> HttpConnection:
        nonlocal opened
        if idle:
            return idle.pop()
        if opened < spec["max_connections"]:
            opened += 1
            return await HttpConnection.open("127.0.0.1", port)
        waiter: asyncio.Future[HttpConnection] = loop.create_future()
        waiters.append(waiter)
        return await waiter

    def release(conn: HttpConnection) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        idle.append(conn)

    async def fire(scheduled: float, data: bytes, measured: bool) -> None:
        conn = await acquire()
        try:
            status, body = await conn.request(data)
            code = str(status)
        except ConnectionError as exc:
            code, body = "conn_error", str(exc).encode()
            conn = await HttpConnection.open("127.0.0.1", port)
        release(conn)
        if measured:
            done = time.perf_counter()
            tally.record(code, done - scheduled, batch, body, in_window=done <= window_end)

    await _sleep_until(t0)
    i = 0
    while True:
        scheduled = t0 + i * interval
        if scheduled >= window_end:
            break
        now = time.perf_counter()
        if scheduled > now:
            await asyncio.sleep(scheduled - now)
            now = time.perf_counter()
        measured = scheduled >= window_start
        if measured:
            tally.max_send_lag_ms = max(tally.max_send_lag_ms, (now - scheduled) * 1000)
        task = asyncio.create_task(fire(scheduled, requests[i % len(requests)], measured))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    # Answers to requests scheduled inside the window count, however late they arrive.
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=spec["drain_timeout"])
        for task in pending:
            task.cancel()
            tally.record("timeout", spec["drain_timeout"], batch, in_window=False)
    tally.connections = opened
    for conn in idle:
        conn.close()
    return tally


async def _baseline(spec: dict[str, Any], events: list[dict[str, Any]], t0: float) -> Tally:
    """Raw aiokafka producer with the collector's settings; same events, Avro-encoded once."""
    from ingest.config import IngestConfig, Secret
    from ingest.publisher import EventPublisher
    from ingest.validation import validate_event
    from schemas import player_event_codec

    codec = player_event_codec()
    now_ms = int(time.time() * 1000)
    encoded: list[tuple[bytes, bytes]] = []
    for raw in events:
        record = validate_event(raw, now_ms=now_ms, org_id=ORG)
        if not isinstance(record, dict):
            raise SystemExit(f"generated event is invalid: {record}")
        encoded.append((record["view_id"].encode(), codec.encode(record)))
    batch, conns, topic = spec["batch"], spec["connections"], spec["topic"]
    gather = spec["wait"] == "gather"
    groups = [encoded[i : i + batch] for i in range(0, len(encoded) - batch + 1, batch)]
    # The very producer the collector builds (acks, idempotence, compression, linger, batch).
    config = IngestConfig(
        kafka_bootstrap_servers=spec["bootstrap"], api_keys={Secret(KEY): ORG}, raw_topic=topic
    )
    producer = EventPublisher(config)._default_producer()
    await producer.start()
    await producer.client._wait_on_metadata(topic)
    window_start = t0 + spec["warmup"]
    window_end = window_start + spec["duration"]
    tally = Tally(connections=conns)
    await _sleep_until(t0)

    async def run(index: int) -> None:
        i = index * (len(groups) // conns)
        while True:
            started = time.perf_counter()
            if started >= window_end:
                break
            group = groups[i % len(groups)]
            i += 1
            futures = [await producer.send(topic, value, key=key) for key, value in group]
            if gather:
                await asyncio.gather(*futures)
            else:  # like ingest.publisher: one acknowledgement at a time
                for future in futures:
                    await future
            done = time.perf_counter()
            if started >= window_start and done <= window_end:
                tally.record("202", done - started, batch)

    try:
        await asyncio.gather(*(run(i) for i in range(conns)))
    finally:
        await producer.stop()
    return tally


def worker_main(spec_path: str) -> None:
    """Entry point of a worker subprocess; talks to the orchestrator over stdin/stdout."""
    spec = json.loads(Path(spec_path).read_text())
    events: list[dict[str, Any]] = json.loads(Path(spec["events_file"]).read_text())
    if spec["mode"] != "baseline":
        bodies = [
            json.dumps({"events": b}, separators=(",", ":")).encode()
            for b in batches(events, spec["batch"])
        ]
        requests = [http_request(spec["port"], body) for body in bodies]
        # Different workers start at different places in the pool.
        shift = spec["worker_index"] * len(requests) // max(1, spec["workers"])
        requests = requests[shift:] + requests[:shift]

    async def main() -> dict[str, Any]:
        # Preparation is done; the orchestrator answers with the common start (epoch seconds).
        print("READY", flush=True)
        start_epoch = float(await asyncio.to_thread(sys.stdin.readline))
        t0 = time.perf_counter() + (start_epoch - time.time())
        cpu: dict[str, float] = {}

        async def sample_cpu() -> None:
            await _sleep_until(t0 + spec["warmup"])
            cpu["start"] = time.process_time()
            await _sleep_until(t0 + spec["warmup"] + spec["duration"])
            cpu["end"] = time.process_time()

        sampler = asyncio.create_task(sample_cpu())
        if spec["mode"] == "closed":
            tally = await _closed_loop(spec, requests, t0)
        elif spec["mode"] == "open":
            tally = await _open_loop(spec, requests, t0)
        else:
            tally = await _baseline(spec, events, t0)
        await sampler
        return {
            "events": tally.events,
            "events_in_window": tally.events_in_window,
            "requests": tally.requests,
            "statuses": dict(tally.statuses),
            "latencies_ms": tally.latencies_ms,
            "error_samples": tally.error_samples,
            "max_send_lag_ms": tally.max_send_lag_ms,
            "connections": tally.connections,
            "cpu_s": cpu["end"] - cpu["start"],
        }

    result = asyncio.run(main())
    Path(spec["result_file"]).write_text(json.dumps(result))


# --- orchestration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str  # closed | open | baseline | profile (cProfile) | spy (py-spy)
    batch: int
    rate: float = 0.0  # open loop: offered events/s
    wait: str = "each"  # baseline: await acks one at a time (as the collector) or gather
    processes: int = 1  # INGEST_PROCESSES of the collector (suffix -pN)

    @classmethod
    def parse(cls, name: str) -> Scenario:
        parts = name.split("-")
        processes = 1
        try:
            if len(parts) > 2 and parts[-1].startswith("p") and parts[0] in ("closed", "open"):
                processes = int(parts.pop().removeprefix("p"))
            mode = parts[0]
            batch = int(parts[1].removeprefix("b"))
            if mode == "open" and len(parts) == 3:
                rate = float(parts[2].removeprefix("r"))
                return cls(name, mode, batch, rate, processes=processes)
            if mode in ("closed", "baseline", "profile", "spy") and len(parts) == 2:
                return cls(name, mode, batch, processes=processes)
            if mode == "baseline" and parts[2:] == ["gather"]:
                return cls(name, mode, batch, wait="gather")
        except (IndexError, ValueError):
            pass
        raise SystemExit(
            f"bad scenario {name!r}: use closed-bB, open-bB-rEPS, baseline-bB, "
            "baseline-bB-gather, profile-bB or spy-bB; closed and open take -pN for N "
            "collector processes"
        )


class Collector:
    """The collector as a subprocess, optionally under cProfile."""

    def __init__(
        self,
        topics: Any,
        workdir: Path,
        bootstrap: str,
        profile_to: Path | None = None,
        src: Path | None = None,
        processes: int = 1,
    ) -> None:
        self.port = free_port()
        self.profile_to = profile_to
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "INGEST_HOST": "127.0.0.1",
            "INGEST_PORT": str(self.port),
            "INGEST_API_KEYS": f"{ORG}:{KEY}",
            "INGEST_RAW_TOPIC": topics.raw_topic,
            "INGEST_REJECTED_TOPIC": topics.rejected_topic,
            "INGEST_ORG_RATE_LIMIT_EPS": "0",
            "INGEST_PROCESSES": str(processes),
            "LOG_LEVEL": "WARNING",
        }
        command = [sys.executable]
        if profile_to is not None:
            command += ["-m", "cProfile", "-o", str(profile_to)]
        command += ["-m", "ingest"]
        self.command = command
        self.log = workdir / f"collector-{self.port}.log"
        with self.log.open("wb") as log:
            # In ``src`` (a tree holding ingest/ and schemas/), that code is imported first.
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command, env=env, cwd=src or REPO, stdout=log, stderr=subprocess.STDOUT
            )
        self.pid = self.process.pid

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.port}/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"collector exited ({self.process.returncode}); see {self.log}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise SystemExit(f"collector not ready after {timeout_s}s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_workers(
    args: argparse.Namespace,
    scenario: Scenario,
    workdir: Path,
    base_spec: dict[str, Any],
    watch: dict[str, int | None],
    collector: Collector | None,
    spy_to: Path | None = None,
) -> dict[str, Any]:
    """Start the worker processes, release them together, sample CPU around the window.

    With ``spy_to``, py-spy samples the collector during the measured window.
    """

    def diagnose() -> str:
        if collector is None or collector.process.poll() is None:
            return ""
        tail = collector.log.read_text(errors="replace")[-2000:]
        return f"; the collector exited with {collector.process.returncode}:\n{tail}"

    n = 1 if scenario.mode == "baseline" else args.procs
    procs: list[tuple[subprocess.Popen[str], Path]] = []
    for index in range(n):
        spec = {
            **base_spec,
            "batch": scenario.batch,
            "warmup": args.warmup,
            "duration": args.duration,
            "connections": max(1, args.connections // n),
            "max_connections": max(1, args.max_connections // n),
            "rate": scenario.rate / n if scenario.rate else 0.0,
            "wait": scenario.wait,
            "drain_timeout": args.drain_timeout,
            "worker_index": index,
            "workers": n,
            "result_file": str(workdir / f"result-{scenario.name}-{index}.json"),
        }
        spec_path = workdir / f"spec-{scenario.name}-{index}.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ)
        if args.collector_src:  # the baseline uses that tree's producer settings too
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.ingest_bench", "--worker", str(spec_path)],
            cwd=args.collector_src or REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append((proc, Path(spec["result_file"])))
    for proc, _ in procs:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "READY":
            raise SystemExit(f"worker failed to start for {scenario.name}{diagnose()}")
    start = time.time() + 0.3
    for proc, _ in procs:
        if proc.stdin is None:
            raise SystemExit("worker has no stdin")
        proc.stdin.write(f"{start!r}\n")
        proc.stdin.flush()
    time.sleep(max(0.0, start + args.warmup - time.time()))
    # Trees: a multi-process collector's CPU is its processes' together.
    before = {name: proc_tree_cpu_s(pid) if pid else None for name, pid in watch.items()}
    machine_before = machine_busy_s()
    t_before = time.time()
    spy = None
    if spy_to is not None and collector is not None:
        spy = start_py_spy(collector.pid, args.duration, spy_to)
    time.sleep(max(0.0, start + args.warmup + args.duration - time.time()))
    after = {name: proc_tree_cpu_s(pid) if pid else None for name, pid in watch.items()}
    machine = machine_busy_s() - machine_before
    window = time.time() - t_before
    if spy is not None and spy.wait(timeout=60) != 0 and spy_to is not None:
        print(f"  py-spy failed ({spy.returncode}); see {spy_to.with_suffix('.log')}", flush=True)
    for proc, _ in procs:
        if proc.wait(timeout=args.drain_timeout + 120) != 0:
            raise SystemExit(f"worker for {scenario.name} failed ({proc.returncode}){diagnose()}")
    results = [json.loads(path.read_text()) for _, path in procs]

    # Throughput counts what was answered inside the window; latency covers every request
    # of the window (open loop: also those answered after it closed).
    events = sum(r["events_in_window"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies_ms"])
    statuses: Counter[str] = Counter()
    for r in results:
        statuses.update(r["statuses"])
    cpu: dict[str, float | None] = {}
    for name, b in before.items():
        a = after[name]
        cpu[name] = a - b if a is not None and b is not None else None
    driver_cpu = sum(r["cpu_s"] for r in results)

    def per_10k(seconds: float | None) -> float | None:
        return None if seconds is None or not events else seconds / events * 10_000

    return {
        "scenario": scenario.name,
        "mode": scenario.mode,
        "batch": scenario.batch,
        "offered_eps": scenario.rate or None,
        "connections": sum(r["connections"] for r in results),
        "window_s": round(window, 3),
        "events": events,
        "events_per_s": events / args.duration,
        "events_accepted_incl_late": sum(r["events"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": latencies[-1] if latencies else None,
        },
        "statuses": dict(statuses),
        "errors": {k: v for k, v in statuses.items() if k != "202"},
        "error_samples": [s for r in results for s in r["error_samples"]][:5],
        "max_send_lag_ms": max(r["max_send_lag_ms"] for r in results),
        "cpu_s": {**cpu, "driver": driver_cpu, "machine": machine},
        # Busy CPU of everything else on the machine (other users of the broker, tests, ...).
        "other_cpu_pct": round(
            100 * (machine - driver_cpu - sum(v for v in cpu.values() if v)) / window, 1
        ),
        "machine_cpu_pct": round(100 * machine / window, 1),
        "cpu_s_per_10k_events": {
            **{name: per_10k(v) for name, v in cpu.items()},
            "driver": per_10k(driver_cpu),
        },
    }


# --- profile summary ---------------------------------------------------------------------------

_CATEGORIES = (
    # (category, substrings of the file path or builtin name), first match wins.
    ("validation (ingest/validation.py)", ("ingest/validation.py",)),
    ("JSON (parse body, dump responses/extra_json)", ("/json/", "_json", "orjson")),
    (
        "Avro encoding (schemas/codec.py, fastavro)",
        ("schemas/codec.py", "<avro writer", "fastavro"),
    ),
    ("collector handler glue (ingest/*)", ("/ingest/",)),
    ("Prometheus metrics", ("prometheus_client",)),
    ("Kafka compression (lz4)", ("lz4", "cramjam")),
    ("aiokafka (send, partitioner, batching, I/O)", ("aiokafka",)),
    ("aiohttp (HTTP parse, routing, responses)", ("aiohttp", "multidict", "yarl")),
    ("socket I/O syscalls", ("socket", "transport")),
    ("asyncio event loop", ("asyncio", "selectors", "contextvars")),
)
_IDLE = ("select.epoll", "poll' of 'select")


def _category(key: tuple[str, int, str]) -> str | None:
    filename, _, func = key
    text = filename if filename != "~" else func
    if any(marker in text for marker in _IDLE):
        return None  # waiting in epoll: idle, not CPU
    for name, markers in _CATEGORIES:
        if any(marker in text for marker in markers):
            return name
    return "other"


def summarise_profile(path: Path, top: int = 18) -> dict[str, Any]:
    """Own time by component (builtins charged to their callers), top own and cumulative."""
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    by_category: Counter[str] = Counter()
    idle = 0.0
    for key, (_, _, tottime, _, callers) in table.items():
        category = _category(key)
        if category is None:
            idle += tottime
            continue
        if key[0] == "~" and callers and category in ("other", "socket I/O syscalls"):
            # A builtin (isinstance, dict.get, ...): charge it to whoever called it.
            caller_total = sum(c[2] for c in callers.values()) or 1.0
            for caller, c in callers.items():
                share = tottime * c[2] / caller_total
                caller_category = _category(caller) or "asyncio event loop"
                if category == "socket I/O syscalls":
                    caller_category = category
                by_category[caller_category] += share
            continue
        by_category[category] += tottime
    busy = sum(by_category.values())

    def label(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        if filename == "~":
            return func
        short = filename
        for marker in ("site-packages/", str(REPO) + "/", "/lib/python3"):
            if marker in short:
                short = short.split(marker, 1)[1]
        return f"{short}:{line}({func})"

    def row(key: tuple[str, int, str]) -> dict[str, Any]:
        _, calls, tottime, cumtime, _ = table[key]
        return {
            "function": label(key),
            "calls": calls,
            "own_s": round(tottime, 3),
            "own_pct": round(100 * tottime / busy, 1) if busy else None,
            "cum_s": round(cumtime, 3),
            "cum_pct": round(100 * cumtime / busy, 1) if busy else None,
        }

    busy_keys = [k for k in table if _category(k) is not None]
    by_own = sorted(busy_keys, key=lambda k: table[k][2], reverse=True)[:top]
    interesting = (
        "post_events",
        "_accept",
        "parse_events",
        "validate_event",
        "encode",
        "publish",
        "send",
        "json_response",
        "errors_and_metrics",
        "_handle_request",
        "data_received",
        "_send_produce_req",
        "_sender_routine",
        "add_message",
        "loads",
        "dumps",
    )
    cum_keys = [
        k
        for k in busy_keys
        if k[2] in interesting
        and (
            "ingest" in k[0]
            or "aiokafka" in k[0]
            or "aiohttp" in k[0]
            or "json" in k[0]
            or "schemas" in k[0]
        )
    ]
    by_cum = sorted(cum_keys, key=lambda k: table[k][3], reverse=True)[:top]
    return {
        "profile_file": str(path),
        "busy_s": round(busy, 3),
        "idle_epoll_s": round(idle, 3),
        "by_component": [
            {"component": name, "own_s": round(s, 3), "pct": round(100 * s / busy, 1)}
            for name, s in by_category.most_common()
        ],
        "top_own": [row(k) for k in by_own],
        "top_cumulative": [row(k) for k in by_cum],
    }


def start_py_spy(pid: int, duration: float, out: Path) -> subprocess.Popen[bytes]:
    """Sample ``pid`` with py-spy (dev extra) for ``duration`` s into collapsed stacks."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        raise SystemExit("spy-bB scenarios need py-spy: .venv/bin/pip install -e '.[dev]'")
    command = [exe, "record", "--pid", str(pid), "--rate", "250", "--duration"]
    command += [str(max(1, round(duration))), "--format", "raw", "--nonblocking", "-o", str(out)]
    with out.with_suffix(".log").open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


def _spy_frame(frame: str) -> tuple[str, str]:
    """(label, file) of one py-spy frame 'function (path:line)'."""
    func, _, where = frame.partition(" (")
    path = where.rstrip(")")
    for marker in ("site-packages/", str(REPO) + "/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}({func})", where


def summarise_spy(path: Path, top: int = 18) -> dict[str, Any]:
    """Own (leaf) and cumulative share of py-spy samples; components by deepest frame.

    py-spy does not see C functions, so their time counts for the Python function that
    called them (json.loads for the C scanner, lz4_encode for cramjam, and so on).
    """
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    for raw_frames, n in spy_stacks(path):
        total += n
        frames = [_spy_frame(f) for f in raw_frames]
        if not frames:
            continue
        own[frames[-1][0]] += n
        for label in {label for label, _ in frames}:
            cumulative[label] += n
        for _, where in reversed(frames):
            category = _category(("/" + where, 0, ""))  # py-spy paths may be relative
            if category not in (None, "other"):
                components[category or "other"] += n
                break
        else:
            components["other"] += n
    share = 100 / total if total else 0.0
    wanted = ("ingest/", "schemas/", "aiokafka/producer", "json/", "aiohttp/web_protocol")
    return {
        "profile_file": str(path),
        "samples": total,
        "by_component": [
            {"component": name, "pct": round(n * share, 1)} for name, n in components.most_common()
        ],
        "top_own": [
            {"function": name, "own_pct": round(n * share, 1)} for name, n in own.most_common(top)
        ],
        "top_cumulative": [
            {"function": name, "cum_pct": round(n * share, 1)}
            for name, n in cumulative.most_common()
            if any(w in name for w in wanted)
        ][:top],
    }


# --- per-event stage costs ---------------------------------------------------------------


def stage_costs(events: list[dict[str, Any]], repeat: int = 5) -> dict[str, float]:
    """Microseconds per event of each stage of the collector, timed in-process, best of 5.

    These are the costs without a profiler: compare with the collector's CPU per event.
    """
    import fastavro

    from ingest.body import parse_events
    from ingest.publisher import KeyPartitioner, murmur2
    from ingest.validation import validate_event
    from schemas import player_event_codec

    codec = player_event_codec()
    now_ms = int(time.time() * 1000)
    n = len(events)

    def best(action: Any) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            action()
            times.append(time.perf_counter() - started)
        return min(times) / n * 1e6

    bodies = {
        size: [
            json.dumps({"events": b}, separators=(",", ":")).encode() for b in batches(events, size)
        ]
        for size in (10, 100)
    }
    records = [validate_event(e, now_ms=now_ms, org_id=ORG) for e in events]
    valid = [r for r in records if isinstance(r, dict)]
    keys = [r["view_id"].encode() for r in valid]
    partitions = list(range(12))
    partitioner = KeyPartitioner()

    def fastavro_encode() -> None:
        for record in valid:
            buf = io.BytesIO()
            buf.write(codec.header)
            fastavro.schemaless_writer(buf, codec.schema, record, strict_allow_default=True)

    return {
        "json_parse_b10": best(lambda: [parse_events(b, 1000) for b in bodies[10]]),
        "json_parse_b100": best(lambda: [parse_events(b, 1000) for b in bodies[100]]),
        "validate_event": best(
            lambda: [validate_event(e, now_ms=now_ms, org_id=ORG) for e in events]
        ),
        "avro_encode": best(lambda: [codec.encode(r) for r in valid]),
        "avro_encode_fastavro_only": best(fastavro_encode),
        "partition_murmur2_uncached": best(lambda: [murmur2(k) for k in keys]),
        "partition_key_partitioner": best(
            lambda: [partitioner(k, partitions, partitions) for k in keys]
        ),
    }


# --- reporting ---------------------------------------------------------------------------------


def markdown(
    results: list[dict[str, Any]],
    profiles: dict[str, dict[str, Any]],
    stages: dict[str, float] | None = None,
) -> str:
    lines = [
        "| scenario | conns | offered ev/s | events/s | p50 ms | p95 ms | p99 ms | errors "
        "| collector CPU-s/10k | load-gen CPU-s/10k | broker CPU-s/10k | other CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lat = r["latency_ms"]
        per = r["cpu_s_per_10k_events"]
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
        own = per.get("collector") if r["mode"] != "baseline" else per.get("driver")
        driver = per.get("driver") if r["mode"] != "baseline" else None
        lines.append(
            f"| {r['scenario']} | {r['connections']} | {_fmt(r['offered_eps'], 0)} "
            f"| {_fmt(r['events_per_s'], 0)} | {_fmt(lat['p50'])} | {_fmt(lat['p95'])} "
            f"| {_fmt(lat['p99'])} | {errors} | {_fmt(own, 3)} | {_fmt(driver, 3)} "
            f"| {_fmt(per.get('broker'), 3)} | {_fmt(r['other_cpu_pct'], 0)} |"
        )
    lines.append("")
    lines.append(
        "For baseline rows 'collector CPU' is the raw producer process's CPU. "
        "Latency: closed loop from send, open loop from the scheduled send time. "
        "'other CPU %': busy CPU of everything else on the machine during the window "
        "(100 % = one core)."
    )
    by_name = {r["scenario"]: r for r in results}
    ratio_rows = []
    for r in results:
        if r["mode"] != "baseline":
            continue
        ours = by_name.get(f"closed-b{r['batch']}")
        if ours is None:
            continue
        ours_cpu = ours["cpu_s_per_10k_events"].get("collector")
        base_cpu = r["cpu_s_per_10k_events"].get("driver")
        ratio_rows.append(
            f"| {r['batch']} | {r['scenario']} "
            f"| {_fmt(ours['events_per_s'], 0)} | {_fmt(r['events_per_s'], 0)} "
            f"| {_fmt(ours['events_per_s'] / r['events_per_s'] if r['events_per_s'] else None, 2)} "
            f"| {_fmt(ours_cpu, 3)} | {_fmt(base_cpu, 3)} "
            f"| {_fmt(ours_cpu / base_cpu if ours_cpu and base_cpu else None, 2)} |"
        )
    if ratio_rows:
        lines += [
            "",
            "| batch | baseline | collector ev/s (closed) | baseline ev/s | ratio ev/s "
            "| collector CPU-s/10k | baseline CPU-s/10k | ratio CPU |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
            *ratio_rows,
        ]
    for name, profile in profiles.items():
        if "samples" in profile:  # py-spy
            lines += [
                "",
                f"Profile {name}: py-spy, {profile['samples']} samples of the collector's busy "
                "time (C functions count for their Python caller).",
                "",
                "| component (deepest frame) | % |",
                "|---|---:|",
                *(f"| {c['component']} | {c['pct']:.1f} |" for c in profile["by_component"]),
                "",
                "| top own (leaf) | % |",
                "|---|---:|",
                *(f"| `{f['function']}` | {f['own_pct']} |" for f in profile["top_own"][:15]),
                "",
                "| cumulative | % |",
                "|---|---:|",
                *(
                    f"| `{f['function']}` | {f['cum_pct']} |"
                    for f in profile["top_cumulative"][:15]
                ),
            ]
            continue
        lines += [
            "",
            f"Profile {name}: {profile['busy_s']:.1f} s busy in the collector under cProfile "
            f"({profile['idle_epoll_s']:.1f} s idle in epoll). cProfile's per-call overhead "
            "inflates pure-Python code relative to C code.",
            "",
            "| component (own time, builtins charged to caller) | s | % |",
            "|---|---:|---:|",
            *(
                f"| {c['component']} | {c['own_s']:.2f} | {c['pct']:.1f} |"
                for c in profile["by_component"]
            ),
            "",
            "| top own time | calls | own s | own % | cum % |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| `{f['function']}` | {f['calls']} | {f['own_s']:.2f} | {f['own_pct']} "
                f"| {f['cum_pct']} |"
                for f in profile["top_own"][:12]
            ),
            "",
            "| cumulative | calls | cum s | cum % |",
            "|---|---:|---:|---:|",
            *(
                f"| `{f['function']}` | {f['calls']} | {f['cum_s']:.2f} | {f['cum_pct']} |"
                for f in profile["top_cumulative"][:12]
            ),
        ]
    if stages:
        lines += [
            "",
            "Per-event stage costs, timed in-process without a profiler (best of 5), us/event:",
            "",
            "| stage | us/event |",
            "|---|---:|",
            *(f"| {name} | {value:.2f} |" for name, value in stages.items()),
        ]
    return "\n".join(lines)


def machine_info(bootstrap: str, broker_pid: int | None) -> dict[str, Any]:
    model = cpu_model()
    import aiohttp
    import aiokafka
    import fastavro

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "aiokafka": aiokafka.__version__,
        "fastavro": fastavro.__version__,
        "kafka_bootstrap": bootstrap,
        "broker_pid": broker_pid,
        "broker_topics": broker_topic_count(bootstrap),
    }


async def create_topics(bootstrap: str, suffix: str) -> tuple[Any, list[str]]:
    """Fresh bench topics: every topic of TopicsConfig (raw with 12 partitions) + baseline.

    Every ``*_topic`` field gets a bench name, so the run never creates or checks a shared
    topic, whatever topics TopicsConfig grows. Retention is one hour in case cleanup fails.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from ingest.topics import ensure_topics

    topics = bench_topics(bootstrap, "bench", suffix, 12)
    await ensure_topics(topics)
    baseline = f"bench.baseline.{suffix}"
    raw_spec = topics.specs()[0]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="openqoe-bench")
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(baseline, raw_spec.partitions, 1, topic_configs=dict(raw_spec.configs))]
        )
    finally:
        await admin.close()
    return topics, [*(s.name for s in topics.specs()), baseline]


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="openqoe-bench")
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured s per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured s before each")
    parser.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        help=f"comma-separated: closed-bB, open-bB-rEPS, baseline-bB, profile-bB "
        f"(default {DEFAULT_SCENARIOS})",
    )
    parser.add_argument("--connections", type=int, default=32, help="closed-loop concurrency")
    parser.add_argument("--max-connections", type=int, default=512, help="open-loop connection cap")
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes")
    parser.add_argument("--pool-events", type=int, default=20_000, help="distinct events")
    parser.add_argument("--drain-timeout", type=float, default=15.0)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--json", type=Path, help="write all results to this file")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument(
        "--out-dir",
        type=Path,
        help="keep collector logs, cProfile files and worker results here "
        "(default: a new ingest-bench-* directory in the system temp dir)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each scenario wait up to this many s for the rest of the machine to be idle",
    )
    parser.add_argument(
        "--no-stage-costs", action="store_true", help="skip the in-process per-stage timings"
    )
    parser.add_argument(
        "--collector-src",
        type=Path,
        help="run the collector (and the baseline's producer settings) from this tree with "
        "ingest/ and schemas/, e.g. an older commit: "
        "git archive REV ingest schemas | tar -x -C DIR",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return

    scenarios = [Scenario.parse(s.strip()) for s in args.scenarios.split(",") if s.strip()]
    broker_pid = find_broker_pid(args.bootstrap)
    info = machine_info(args.bootstrap, broker_pid)
    print(f"machine: {info}", flush=True)
    suffix = time.strftime("%Y%m%d%H%M%S") + "." + uuid.uuid4().hex[:6]
    topics, topic_names = asyncio.run(create_topics(args.bootstrap, suffix))
    baseline_topic = topic_names[-1]
    results: list[dict[str, Any]] = []
    profiles: dict[str, dict[str, Any]] = {}
    workdir = args.out_dir or Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"logs, profiles and raw results: {workdir}", flush=True)
    events_file = workdir / "events.json"
    pool = generate_events(args.pool_events, args.seed)
    events_file.write_text(json.dumps(pool))
    stages: dict[str, float] = {}
    if not args.no_stage_costs and not args.collector_src:
        stages = stage_costs(pool[:5000])
        print(f"stage costs (us/event): {stages}", flush=True)
    collectors: dict[int, Collector] = {}
    try:
        for scenario in scenarios:
            base = {"events_file": str(events_file), "bootstrap": args.bootstrap}
            watch: dict[str, int | None] = {"broker": broker_pid}
            profiled: Collector | None = None
            target: Collector | None = None
            if scenario.mode == "baseline":
                base |= {"mode": "baseline", "topic": baseline_topic, "port": 0}
            else:
                if scenario.mode == "profile":
                    profile_file = workdir / f"collector-{scenario.name}.prof"
                    target = profiled = Collector(
                        topics,
                        workdir,
                        args.bootstrap,
                        profile_to=profile_file,
                        src=args.collector_src,
                    )
                else:
                    if scenario.processes not in collectors:
                        collectors[scenario.processes] = Collector(
                            topics,
                            workdir,
                            args.bootstrap,
                            src=args.collector_src,
                            processes=scenario.processes,
                        )
                    target = collectors[scenario.processes]
                target.wait_ready()
                watch["collector"] = target.pid
                mode = "closed" if scenario.mode in ("profile", "spy") else scenario.mode
                base |= {"mode": mode, "port": target.port}
            if args.wait_quiet > 0:
                ours = [pid for pid in (broker_pid, *(c.pid for c in collectors.values())) if pid]
                other = wait_until_quiet(args.wait_quiet, ours)
                if other >= 0.15:
                    print(f"  machine still busy ({100 * other:.0f} % CPU); going on", flush=True)
            print(f"running {scenario.name} ...", flush=True)
            spy_to = workdir / f"collector-{scenario.name}.txt" if scenario.mode == "spy" else None
            try:
                result = run_workers(args, scenario, workdir, base, watch, target, spy_to)
            finally:
                if profiled is not None:
                    profiled.stop()
            if profiled is not None and profiled.profile_to is not None:
                profiles[scenario.name] = summarise_profile(profiled.profile_to)
            if spy_to is not None and spy_to.exists():
                profiles[scenario.name] = summarise_spy(spy_to)
            results.append(result)
            lat = result["latency_ms"]
            print(
                f"  {result['events_per_s']:,.0f} events/s, p50 {_fmt(lat['p50'])} ms, "
                f"p99 {_fmt(lat['p99'])} ms, errors {result['errors'] or 'none'}, "
                f"CPU-s/10k {result['cpu_s_per_10k_events']}",
                flush=True,
            )
    finally:
        for collector in collectors.values():
            collector.stop()
        if not args.keep_topics:
            with contextlib.suppress(Exception):  # best-effort cleanup
                asyncio.run(delete_topics(args.bootstrap, topic_names))
    report = markdown(results, profiles, stages)
    print()
    print(report)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "command": " ".join(
                        [Path(sys.executable).name, "-m", "bench.ingest_bench", *sys.argv[1:]]
                    ),
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "collector_src": str(args.collector_src or REPO),
                    "results": results,
                    "profiles": profiles,
                    "stage_costs_us_per_event": stages,
                    "markdown": report,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
