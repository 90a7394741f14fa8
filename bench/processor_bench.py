"""Processor benchmark: throughput and CPU of one worker, and end-to-end freshness.

Run from the repository root (the local broker must be up: ``bash deploy/kafka-local.sh start``;
Debian's ``prometheus`` must be installed)::

    .venv/bin/python -m bench.processor_bench --events 200000 --probes 20 --json pbench.json

What one run does:

* **Throughput.** Creates fresh bench topics with ``ingest.topics.ensure_topics`` (raw: 12
  partitions) and pre-produces ``--events`` realistic events: whole views from
  ``bench.traffic`` (``new_view``/``view_script``), interleaved in time order as many
  concurrent players would send them, each validated and encoded exactly as the collector
  does (``ingest.validation.validate_event`` then ``schemas.player_event_codec().encode``),
  key ``view_id``, with a raw aiokafka producer using the collector's producer settings.
  Then, on that same topic:

  - *baseline*: a raw aiokafka consumer in its own process that only decodes every message
    (``schemas.player_event_reader().decode``); events/s and CPU-us per event
    (``resource.getrusage`` of that process, from consumer start to the last message);
  - *ours*: one processor worker (``python -m processors``; RocksDB store, fresh app id and
    data dir, default settings except the topics, remote write to the local Prometheus)
    consuming the topic from the start: time from the worker's ``/health`` answering to all
    events processed (``openqoe_processor_messages_total{topic="raw"}`` of its /metrics,
    polled every 0.25 s), events/s, and CPU-us per event (utime+stime of the worker from
    ``/proc/<pid>/stat`` over the same window).

* **Faust floor** (``--floor-events``, default 50,000; 0 skips it): two minimal faust apps
  with the processor's settings over the same topic, in their own processes: ``noop`` only
  iterates the events; ``table`` decodes each and reads and writes one ~2 kB value in a
  RocksDB table (one changelog message per event, like a view write). They show what faust
  itself costs per event before any of the processor's work. A third, ``batched``, runs
  the processor's view step without faust (``batched_main``): the cost of a batched
  design, measured for the decision the 10k events/s target needs. A fourth, ``quix``, is
  issue 8's peer (``quix_main``, dev extra ``quixstreams``): a quix-streams application
  that decodes with our decoder and keeps per-view state in its RocksDB store (read,
  update counters and timestamps, write back per message; its own changelog topic). Every
  row is also reported against the baseline (events/s and CPU-us/event ratios) and as
  events per CPU-second.

* **Profile** (``--profile py-spy``, the default, ``cprofile`` or ``none``): the same topic
  again, consumed by a second worker (fresh app id) sampled by ``py-spy`` (dev extra; 250 Hz,
  non-blocking, so the worker runs at nearly full speed) or run under ``cProfile`` (exact call
  counts, but Python code runs several times slower). Its speed is not a result; its
  breakdown of where the worker's time goes (self time by category and by function) is.

* **Freshness.** Fresh topics again, a collector (``python -m ingest``, auth disabled), a
  worker (``--flush-interval``, default 10 s as in production) and the local Prometheus with
  its remote-write receiver. Each probe posts one small batch (viewstart, playerready,
  playing) of a new view of a NEW org, so its series is new, and measures from the
  collector's 2xx to the moment ``sum(openqoe_views_started_total{org="<probe org>"})`` is
  visible in Prometheus (polled every 0.1 s). Probes are spaced by a random pause of up to one
  flush interval, so they land at random phases of the flush timer like real traffic.

Before each measured phase it waits up to ``--wait-quiet`` seconds (default 120) for the
shared machine to go idle, and it reports how busy the rest of the machine was anyway, plus
the broker's CPU per event. ``--processor-src DIR`` runs the workers from another tree (the
code before a change: ``git archive REV processors schemas ingest | tar -x -C DIR``).

Prints a markdown summary, optionally writes everything as JSON (``--json``), and deletes
the bench topics and the workers' internal topics (unless ``--keep-topics``).
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
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    bench_topics,
    broker_topic_count,
    cpu_model,
    find_broker_pid,
    free_port,
    git_provenance,
    machine_busy_s,
    percentile,
    proc_cpu_s,
    processor_env,
    spy_stacks,
    stop_process,
)
from bench.common import (
    fmt as _fmt,
)

ORG = "bench_org"
RAW_PARTITIONS = 12


# --- small helpers ---------------------------------------------------------------------------


def proc_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wait_until_quiet(budget_s: float, threshold: float = 0.3) -> float:
    """Wait (at most ``budget_s``) until the machine is nearly idle for 3 s.

    On this shared machine other people's tests and benchmarks steal CPU and skew every
    number. Returns the busy CPU share (1.0 = one core) of the whole machine in the last
    3 s (the idle broker included).
    """
    deadline = time.monotonic() + budget_s
    while True:
        before = machine_busy_s()
        time.sleep(3)
        busy = (machine_busy_s() - before) / 3
        if busy < threshold or time.monotonic() >= deadline:
            return busy
        print(f"  waiting for a quiet machine (busy {100 * busy:.0f} % of a core)", flush=True)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_until(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every_s)
    raise SystemExit(f"timed out after {timeout_s:.0f}s waiting for {what}")


# --- topics ----------------------------------------------------------------------------------


async def create_topics(bootstrap: str, suffix: str) -> Any:
    """Fresh bench topics: every ``*_topic`` of TopicsConfig gets a bench name (raw: 12
    partitions), so a run never creates or checks a shared topic; retention one hour."""
    from ingest.topics import ensure_topics

    topics = bench_topics(bootstrap, "pbench", suffix, RAW_PARTITIONS)
    await ensure_topics(topics)
    return topics


async def delete_topics(bootstrap: str, names: list[str], prefixes: list[str]) -> list[str]:
    """Delete ``names`` and every topic starting with one of ``prefixes`` (faust's own)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="openqoe-pbench")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = sorted(t for t in existing if t in names or any(t.startswith(p) for p in prefixes))
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


# --- events ----------------------------------------------------------------------------------


def generate_raw_events(n: int, seed: int, now_ms: int) -> list[dict[str, Any]]:
    """``n`` SDK events (JSON dicts) of whole views, interleaved in time order.

    Views start 1-2 h ago (every event_time stays inside the collector's 24 h window), so
    a few hundred views are playing at any moment and a partition sees their events
    interleaved, as it would with real players.
    """
    from bench.traffic import new_view, view_script

    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    while len(events) < n:
        view = new_view(rng, ORG)
        start = now_ms - rng.randint(3_600_000, 7_200_000)
        events.extend(view_script(rng, view, start, 10_000))
    events.sort(key=lambda e: e["event_time"])  # stable: a view's events keep their order
    return events[:n]


def encode_like_collector(
    raw_events: list[dict[str, Any]], now_ms: int
) -> list[tuple[bytes, bytes]]:
    """Validate and encode each event exactly as the collector does; (key, value) pairs."""
    from ingest.validation import validate_event
    from schemas import player_event_codec

    codec = player_event_codec()
    out: list[tuple[bytes, bytes]] = []
    for raw in raw_events:
        record = validate_event(raw, now_ms=now_ms, org_id=None)
        if not isinstance(record, dict):
            raise SystemExit(f"generated event rejected by validation: {record}")
        out.append((record["view_id"].encode(), codec.encode(record)))
    return out


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    """Send every message with the collector's producer settings; returns seconds taken."""
    from aiokafka import AIOKafkaProducer

    from ingest.config import IngestConfig

    config = IngestConfig(kafka_bootstrap_servers=bootstrap, auth_disabled=True)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="openqoe-pbench",
        acks="all",
        enable_idempotence=True,
        linger_ms=config.linger_ms,
        compression_type=config.compression_type,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    started = time.monotonic()
    try:
        chunk = 5000
        for i in range(0, len(messages), chunk):
            futures = [
                await producer.send(topic, value, key=key) for key, value in messages[i : i + chunk]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.monotonic() - started


# --- baseline: a raw consumer that only decodes (own process) -------------------------------


def baseline_main(bootstrap: str, topic: str, expected: int, timeout_s: float) -> None:
    """Child process: consume ``topic`` from the start, decode every value, report JSON."""

    async def run() -> dict[str, Any]:
        from aiokafka import AIOKafkaConsumer

        from schemas import player_event_reader

        decode = player_event_reader().decode
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        count = 0
        first: float | None = None
        deadline = t0 + timeout_s
        try:
            while count < expected and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for records in batch.values():
                    if first is None and records:
                        first = time.monotonic()
                    for record in records:
                        decode(record.value)
                    count += len(records)
        finally:
            done = time.monotonic()
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            await consumer.stop()
        cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        return {
            "events": count,
            "start_to_done_s": done - t0,
            "first_to_done_s": done - (first or done),
            "cpu_s": cpu,
        }

    print(json.dumps(asyncio.run(run())))


def run_baseline(
    bootstrap: str, topic: str, expected: int, timeout_s: float, broker_pid: int | None = None
) -> dict[str, Any]:
    broker_before = proc_cpu_s(broker_pid) if broker_pid else None
    out = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "bench.processor_bench",
            "_baseline",
            bootstrap,
            topic,
            str(expected),
            str(timeout_s),
        ],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=timeout_s + 60,
    )
    result: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    if result["events"] < expected:
        raise SystemExit(f"baseline consumed only {result['events']} of {expected} events")
    n = result["events"]
    result["events_per_s"] = n / result["start_to_done_s"]
    result["sustained_events_per_s"] = n / max(result["first_to_done_s"], 1e-9)
    result["cpu_us_per_event"] = result["cpu_s"] / n * 1e6
    broker_after = proc_cpu_s(broker_pid) if broker_pid else None
    result["broker_cpu_us_per_event"] = (
        (broker_after - broker_before) / n * 1e6
        if broker_before is not None and broker_after is not None
        else None
    )
    return result


# --- faust floor: what one faust worker costs before any of our work ---------------------


def floor_main(mode: str, bootstrap: str, topic: str, expected: int, datadir: str) -> None:
    """Child process: a minimal faust app with the processor's settings over ``topic``.

    ``noop`` only iterates the events; ``table`` decodes each one and reads and writes one
    ~2 kB value in a RocksDB table (one changelog message per event, like a view write).
    Prints one JSON line: events/s and CPU-us per event from the first event to the last.
    """
    import faust

    from schemas import player_event_reader

    app = faust.App(
        f"pbench-floor-{mode}-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=datadir,
        topic_partitions=RAW_PARTITIONS,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=5.0,
        producer_acks=-1,
        producer_linger=0.005,
        producer_max_batch_size=1024 * 1024,
        stream_wait_empty=True,
        table_standby_replicas=0,
        web_port=free_port(),
        web_host="127.0.0.1",
        env={},
    )
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    table = app.Table("state", default=None, partitions=RAW_PARTITIONS, key_type=str)
    decode = player_event_reader().decode
    pad = "x" * 1900
    state: dict[str, Any] = {"n": 0}

    async def agent(stream: Any) -> None:
        async for event in stream.events():
            if state["n"] == 0:
                usage = resource.getrusage(resource.RUSAGE_SELF)
                state["t0"], state["cpu0"] = time.monotonic(), usage.ru_utime + usage.ru_stime
            if mode == "table":
                key = "v|" + decode(event.value)["view_id"]
                value = table.data.get(key) or {"n": 0, "pad": pad}
                value["n"] += 1
                table[key] = value
            state["n"] += 1
            if state["n"] >= expected:
                usage = resource.getrusage(resource.RUSAGE_SELF)
                elapsed = time.monotonic() - state["t0"]
                cpu = usage.ru_utime + usage.ru_stime - state["cpu0"]
                line = {
                    "events_per_s": expected / elapsed,
                    "cpu_us_per_event": cpu / expected * 1e6,
                }
                print("FLOOR " + json.dumps(line), flush=True)
                os._exit(0)

    app.agent(source, name="floor")(agent)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()


def batched_main(bootstrap: str, topic: str, expected: int, datadir: str) -> None:
    """Child process: the processor's per-view step without faust, as a batched design
    would run it (a measurement for the design decision, not a second processor).

    aiokafka ``getmany`` batches; each event decoded and folded into its view with
    ``processors.step.on_event``; views cached in memory and in RocksDB (rocksdict); per
    batch one changelog write per view that changed (JSON, to a compacted topic), then the
    producer flush, then the offset commit ("changelog before commit"). Not included:
    aggregates (written for ~2.5 % of events), exports, expiry. Prints one FLOOR line.
    """

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from rocksdict import Rdict

    from processors.dims import DimensionCaps
    from processors.state_codec import decode_view, encode_view
    from processors.step import on_event
    from schemas import player_event_reader

    name = f"pbench-floor-batched-{uuid.uuid4().hex[:8]}"
    Path(datadir).mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            partitions = len((await admin.describe_topics([topic]))[0]["partitions"])
            await admin.create_topics(
                [
                    NewTopic(
                        f"{name}-changelog",
                        num_partitions=partitions,
                        replication_factor=1,
                        topic_configs={"cleanup.policy": "compact"},
                    )
                ]
            )
        finally:
            await admin.close()
        decode = player_event_reader().decode
        labels = DimensionCaps().labels
        db = Rdict(str(Path(datadir) / "views.db"))
        views: dict[str, Any] = {}
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024
        )
        await consumer.start()
        await producer.start()
        count = 0
        t0 = cpu0 = 0.0
        try:
            while count < expected:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                if count == 0 and batches:
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    t0, cpu0 = time.monotonic(), usage.ru_utime + usage.ru_stime
                dirty: dict[str, tuple[int, Any]] = {}
                for tp, records in batches.items():
                    for record in records:
                        event = decode(record.value)
                        key = "v|" + event["view_id"]
                        view = views.get(key)
                        if view is None:
                            stored = db.get(key)
                            view = None if stored is None else decode_view(key[2:], stored)
                        step = on_event(view, -1, event, record.offset, tp.partition, labels)
                        if step.view is not None:
                            views[key] = step.view
                            dirty[key] = (tp.partition, step.view)
                        count += 1
                for key, (partition, view) in dirty.items():
                    value = encode_view(view)
                    db[key] = value
                    await producer.send(
                        f"{name}-changelog", value, key=key.encode(), partition=partition
                    )
                await producer.flush()
                if batches:
                    await consumer.commit()
        finally:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            elapsed = time.monotonic() - t0
            cpu = usage.ru_utime + usage.ru_stime - cpu0
            await consumer.stop()
            await producer.stop()
            db.close()
        line = {"events_per_s": count / elapsed, "cpu_us_per_event": cpu / count * 1e6}
        print("FLOOR " + json.dumps(line), flush=True)

    asyncio.run(run())


QUIX_GROUP_PREFIX = "pbench-floor-quix"


def quix_main(bootstrap: str, topic: str, expected: int, datadir: str) -> None:
    """Child process: the quix-streams peer (issue 8), per-view state in its RocksDB store.

    A quix-streams ``Application`` (fresh consumer group, ``auto_offset_reset="earliest"``,
    its defaults otherwise: at-least-once, commit every 5 s like our worker, RocksDB state
    with its changelog topic) over the same raw topic. Each message is decoded by OUR
    decoder (``schemas.player_event_reader().decode``, registered as the topic's value
    deserializer, so both pay the same decode), then ``sdf.update(..., stateful=True)``
    reads the view's state (the state is keyed by the message key, the view id), updates
    counters and timestamps and writes it back.

    quix-streams keeps a checkpoint's writes in memory and, at each commit, produces one
    changelog message per key changed since the last one and writes the batch to RocksDB.
    So the measurement runs from the first event to the end of the commit that follows the
    last event (``app.run(count=...)`` ends with a forced commit), else that work would be
    left out. Prints one FLOOR line (also with the numbers up to the last event only).
    """
    from quixstreams import Application, State
    from quixstreams.models.serializers import Deserializer

    from schemas import player_event_reader

    decode = player_event_reader().decode

    class OurDecoder(Deserializer):
        """The processor's Avro reader as a quix-streams value deserializer."""

        def __call__(self, value: bytes, ctx: Any) -> Any:
            return decode(value)

    group = f"{QUIX_GROUP_PREFIX}-{uuid.uuid4().hex[:8]}"
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=datadir,
        commit_interval=5.0,
        processing_guarantee="at-least-once",
        use_changelog_topics=True,
        loglevel="WARNING",
    )
    deserializer = OurDecoder()  # type: ignore[no-untyped-call]  # quix's untyped __init__
    source = app.topic(topic, key_deserializer="bytes", value_deserializer=deserializer)
    marks: dict[str, float] = {"n": 0}

    def now() -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.monotonic(), usage.ru_utime + usage.ru_stime

    def per_view(event: dict[str, Any], state: State[str, Any]) -> None:
        if marks["n"] == 0:
            marks["t0"], marks["cpu0"] = now()
        view = state.get("view")
        event_time = event["event_time"]
        if view is None:
            view = {
                "events": 0,
                "first_event_time": event_time,
                "playing": 0,
                "buffering": 0,
                "heartbeats": 0,
                "bitrate_last": None,
            }
        view["events"] += 1
        view["last_event_time"] = event_time
        view["last_received_time"] = event["received_time"]
        kind = event["event_type"]
        if kind == "playing":
            view["playing"] += 1
        elif kind == "stall_start":
            view["buffering"] += 1
        elif kind == "heartbeat":
            view["heartbeats"] += 1
        data = event.get("data")
        if data is not None and data.get("bitrate") is not None:
            view["bitrate_last"] = data["bitrate"]
        state.set("view", view)
        marks["n"] += 1
        if marks["n"] == expected:
            marks["t_last"], marks["cpu_last"] = now()

    # Time the forced commit that ends the run (the last checkpoint's changelog and RocksDB
    # writes). Private attribute: if a quix-streams version lacks it, the numbers end when
    # run() returns instead (which then includes the shutdown: consumer close, flushes).
    context = getattr(app, "_processing_context", None)
    original_commit = getattr(context, "commit_checkpoint", None)
    if context is not None and original_commit is not None:

        def commit_checkpoint(force: bool = False, **kwargs: Any) -> None:
            original_commit(force=force, **kwargs)
            if force and "t_last" in marks and "t_done" not in marks:
                marks["t_done"], marks["cpu_done"] = now()

        context.commit_checkpoint = commit_checkpoint

    app.dataframe(source).update(per_view, stateful=True)
    app.run(count=expected, timeout=120.0, collect=False)
    t_end, cpu_end = now()
    count = int(marks["n"])
    if count < expected or "t0" not in marks:
        print(f"quix-streams processed only {count} of {expected} events", flush=True)
        sys.exit(1)
    t_done, cpu_done = marks.get("t_done", t_end), marks.get("cpu_done", cpu_end)
    elapsed, cpu = t_done - marks["t0"], cpu_done - marks["cpu0"]
    line = {
        "events_per_s": count / elapsed,
        "cpu_us_per_event": cpu / count * 1e6,
        "measured_to": "end of the final commit" if "t_done" in marks else "run() returned",
        "to_last_event_events_per_s": count / (marks["t_last"] - marks["t0"]),
        "to_last_event_cpu_us_per_event": (marks["cpu_last"] - marks["cpu0"]) / count * 1e6,
        # quix-streams writes one changelog message per key changed in a checkpoint, not
        # one per event: how many it wrote for these events.
        "changelog_records": asyncio.run(topic_records(bootstrap, f"changelog__{group}")),
        "quixstreams": _version("quixstreams"),
        "confluent_kafka": _version("confluent-kafka"),
    }
    print("FLOOR " + json.dumps(line), flush=True)


async def topic_records(bootstrap: str, prefix: str) -> int | None:
    """Records in the topics whose name starts with ``prefix`` (end minus beginning
    offsets, over all their partitions); None if there is no such topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    tps = [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if not d.get("error_code")
        for p in d.get("partitions", [])
    ]
    if not tps:
        return None
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        end = await consumer.end_offsets(tps)
        begin = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return int(sum(end[tp] - begin[tp] for tp in tps))


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def peer_rounds(
    n: int,
    events: int,
    new_worker: Callable[[int], Worker],
    run_peer: Callable[[], dict[str, Any] | None],
    quiet: Callable[[str], None],
    timeout_s: float,
    broker_pid: int | None,
) -> dict[str, Any]:
    """``n`` rounds of our worker and the quix-streams peer over the same ``events``, one
    right after the other, ours first in odd rounds and second in even ones. Each side is
    a fresh consumer group from offset 0; ours is measured from its first event to its
    ``events``-th (its exports included), the peer to the end of its final commit."""
    rounds = []
    for i in range(n):
        order = "ours first" if i % 2 == 0 else "peer first"
        row: dict[str, Any] = {"round": i + 1, "order": order}
        for side in ("ours", "peer") if i % 2 == 0 else ("peer", "ours"):
            quiet(f"pair{i + 1}-{side}")
            if side == "ours":
                worker = new_worker(i + 1)
                try:
                    mine = consume_with_worker(worker, events, timeout_s, broker_pid=broker_pid)
                finally:
                    worker.stop()
                row["ours_cpu_us_per_event"] = mine["sustained_cpu_us_per_event"]
                row["ours_events_per_s"] = mine["sustained_events_per_s"]
            else:
                peer = run_peer()
                if peer is None:
                    raise SystemExit("the quix-streams peer failed in a paired round")
                row["peer_cpu_us_per_event"] = peer["cpu_us_per_event"]
                row["peer_events_per_s"] = peer["events_per_s"]
        # events per CPU-second, ours over the peer's
        row["ours_per_peer"] = row["peer_cpu_us_per_event"] / row["ours_cpu_us_per_event"]
        print(
            f"  round {i + 1} ({row['order']}): ours {row['ours_cpu_us_per_event']:.1f} "
            f"CPU-us/event, peer {row['peer_cpu_us_per_event']:.1f}; ours "
            f"{row['ours_per_peer']:.2f}x the peer per CPU-second",
            flush=True,
        )
        rounds.append(row)
    return {"events": events, "rounds": rounds}


def run_floor(
    mode: str, bootstrap: str, topic: str, expected: int, workdir: Path, timeout_s: float
) -> dict[str, Any] | None:
    out = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "bench.processor_bench",
            "_floor",
            mode,
            bootstrap,
            topic,
            str(expected),
            str(workdir / f"floor-{mode}"),
        ],
        cwd=REPO,
        capture_output=True,
        check=False,
        timeout=timeout_s,
    )
    # faust's logging may take over stdout or stderr: look in both.
    text = out.stdout.decode(errors="replace") + "\n" + out.stderr.decode(errors="replace")
    for line in text.splitlines():
        if "FLOOR " in line:
            result: dict[str, Any] = json.loads(line.split("FLOOR ", 1)[1])
            return result
    print(f"  floor {mode} failed:\n{text[-2000:]}", flush=True)
    return None


# --- Prometheus, collector and processor worker processes -----------------------------------


class Prometheus:
    """Debian's prometheus binary with the remote-write receiver (stands in for Mimir)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise SystemExit("prometheus is not installed (apt-get install prometheus)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - the distribution's binary
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-remote-write-receiver",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until("Prometheus ready", lambda: http_get(f"{self.url}/-/ready")[0] == 200, 60)

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def value(self, promql: str) -> float | None:
        query = urllib.parse.urlencode({"query": promql})
        status, body = http_get(f"{self.url}/api/v1/query?{query}")
        if status != 200:
            return None
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        stop_process(self.process)


class Worker:
    """One ``python -m processors`` worker, optionally under cProfile.

    ``SOURCE`` is the directory it runs in (``--processor-src``): ``python -m`` puts it first
    on ``sys.path``, so its ``processors``/``schemas``/``ingest`` are the ones imported.
    """

    SOURCE = REPO

    def __init__(self, env: dict[str, str], log: Path, profile_to: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable]
        if profile_to is not None:
            command += ["-m", "cProfile", "-o", str(profile_to)]
        command += ["-m", "processors"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command,
                env={**os.environ, **env, "PROCESSOR_WEB_PORT": str(self.port)},
                cwd=self.SOURCE,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"processor exited with {self.process.returncode}:\n{tail}")

    def healthy(self) -> bool:
        self.check_alive()
        return http_get(f"{self.url}/health", 2)[0] == 200

    def raw_messages(self) -> float:
        """Sum of openqoe_processor_messages_total{topic="raw"} on the worker's /metrics."""
        status, body = http_get(f"{self.url}/metrics", 5)
        total = 0.0
        if status != 200:
            return total
        for line in body.decode().splitlines():
            if line.startswith("openqoe_processor_messages_total{") and 'topic="raw"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> int:
        return stop_process(self.process)


def worker_env(
    topics: Any, app_id: str, data_dir: Path, remote_write_url: str, **extra: str
) -> dict[str, str]:
    """bench.common.processor_env with production defaults instead of the tests' short
    timers (an empty value means "default" to the processor)."""
    env = {
        **processor_env(
            topics, app_id=app_id, data_dir=data_dir, remote_write_url=remote_write_url
        ),
        "PROCESSOR_FLUSH_INTERVAL_S": "",
        "PROCESSOR_VIEW_TIMEOUT_S": "",
        "PROCESSOR_CLOSED_VIEW_RETENTION_S": "",
        "PROCESSOR_EXPIRY_SCAN_INTERVAL_S": "",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def consume_with_worker(
    worker: Worker,
    expected: int,
    timeout_s: float,
    poll_s: float = 0.25,
    on_ready: Callable[[], None] | None = None,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Wait for the worker to answer, then until it processed ``expected`` raw messages."""
    wait_until("processor /health", worker.healthy, 120, 0.1)
    if on_ready is not None:
        on_ready()
    t_ready = time.monotonic()
    cpu_ready = proc_cpu_s(worker.pid) or 0.0
    busy_ready = machine_busy_s()
    broker_ready = proc_cpu_s(broker_pid) if broker_pid else None
    first: tuple[float, float, float] | None = None  # (time, count, cpu)
    samples: list[tuple[float, float]] = []
    count = 0.0
    deadline = t_ready + timeout_s
    while time.monotonic() < deadline:
        worker.check_alive()
        count = worker.raw_messages()
        now = time.monotonic()
        samples.append((now - t_ready, count))
        if count > 0 and first is None:
            first = (now, count, proc_cpu_s(worker.pid) or 0.0)
        if count >= expected:
            break
        time.sleep(poll_s)
    t_done = time.monotonic()
    cpu_done = proc_cpu_s(worker.pid) or 0.0
    busy_done = machine_busy_s()
    broker_done = proc_cpu_s(broker_pid) if broker_pid else None
    if count < expected:
        raise SystemExit(
            f"worker processed {count:.0f} of {expected} events in {timeout_s:.0f}s; "
            f"see {worker.log}"
        )
    assert first is not None  # noqa: S101 - count >= expected > 0
    ready_to_done = t_done - t_ready
    first_to_done = t_done - first[0]
    return {
        "events": int(count),
        "ready_to_first_s": first[0] - t_ready,
        "ready_to_done_s": ready_to_done,
        "events_per_s": count / ready_to_done,
        "sustained_events_per_s": (count - first[1]) / max(first_to_done, 1e-9),
        "cpu_s": cpu_done - cpu_ready,
        "cpu_us_per_event": (cpu_done - cpu_ready) / count * 1e6,
        "sustained_cpu_us_per_event": (cpu_done - first[2]) / max(count - first[1], 1) * 1e6,
        "machine_busy_cores": (busy_done - busy_ready) / ready_to_done,
        # The broker is shared: whatever else uses it in the window is counted too.
        "broker_cpu_us_per_event": (broker_done - broker_ready) / count * 1e6
        if broker_ready is not None and broker_done is not None
        else None,
        # Everything on the machine except the worker and the broker (bench, Prometheus,
        # other people's work), in cores: how disturbed the measurement was.
        "others_busy_cores": (
            (busy_done - busy_ready)
            - (cpu_done - cpu_ready)
            - ((broker_done or 0.0) - (broker_ready or 0.0))
        )
        / ready_to_done,
        "rss_mb": proc_rss_mb(worker.pid),
        "progress": [(round(t, 2), int(c)) for t, c in samples[:: max(1, len(samples) // 40)]],
    }


# --- profile ---------------------------------------------------------------------------------

_CATEGORIES = (
    (
        "processors decision logic (step/view/aggregates/dims)",
        (
            "/processors/step.py",
            "/processors/view.py",
            "/processors/aggregates.py",
            "/processors/dims.py",
            "/processors/scores.py",
        ),
    ),
    ("processors app glue (app.py)", ("/processors/app.py",)),
    (
        "processors export (series/remote write/sinks/pusher)",
        (
            "/processors/series.py",
            "/processors/remote_write.py",
            "/processors/sinks.py",
            "/processors/pusher.py",
        ),
    ),
    ("Avro decode (schemas, fastavro)", ("/schemas/", "fastavro")),
    (
        "table value (de)serialisation (json/orjson, faust codecs)",
        ("/json/", "orjson", "/faust/serializers/"),
    ),
    ("RocksDB (rocksdict, faust rocksdb store)", ("rocksdict", "/faust/stores/")),
    ("faust tables/changelog (faust/tables)", ("/faust/tables/",)),
    (
        "faust streams/agents/topics (faust/streams, agents, topics, channels)",
        (
            "/faust/streams.py",
            "/faust/agents/",
            "/faust/topics.py",
            "/faust/channels.py",
            "/faust/events.py",
        ),
    ),
    ("faust transport/producer/consumer (faust/transport)", ("/faust/transport/",)),
    ("aiokafka (fetch, records, produce)", ("/aiokafka/",)),
    ("mode/other faust", ("/mode/", "/faust/")),
    (
        "asyncio event loop",
        ("/asyncio/", "selectors.py", "<built-in method select", "<method 'poll' of 'select"),
    ),
)


def _category(key: tuple[str, int, str]) -> str:
    filename, _line, name = key
    where = f"/{filename}:{name}"
    for label, needles in _CATEGORIES:
        if any(n in where for n in needles):
            return label
    if filename == "~":
        return f"builtins ({name[:60]})" if "method" in name else "builtins"
    return "other"


def summarise_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Self time by category and the top functions by self and cumulative time."""
    stats = pstats.Stats(str(path), stream=io.StringIO())
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1e-9
    by_category: dict[str, float] = {}
    for key, (_cc, _nc, tt, _ct, _callers) in raw.items():
        label = _category(key)
        if label.startswith("builtins ("):
            label = "builtins"
        by_category[label] = by_category.get(label, 0.0) + tt

    def name(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        if filename == "~":
            return func
        short = filename
        for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
            if marker in short:
                short = short.split(marker, 1)[1]
        return f"{short}:{line}({func})"

    def rows(index: int) -> list[dict[str, Any]]:
        items = sorted(raw.items(), key=lambda kv: kv[1][index], reverse=True)[:top]
        return [
            {"function": name(k), "calls": v[1], "self_s": round(v[2], 3), "cum_s": round(v[3], 3)}
            for k, v in items
        ]

    return {
        "total_self_s": total,
        "by_category": {
            k: {"self_s": round(v, 3), "share": round(v / total, 4)}
            for k, v in sorted(by_category.items(), key=lambda kv: -kv[1])
        },
        "top_self": rows(2),
        "top_cumulative": rows(3),
    }


def _spy_key(frame: str) -> tuple[str, int, str]:
    """``function (path:line)`` of py-spy's raw format as a pstats-like key."""
    name, _, where = frame.rpartition(" (")
    path, _, line = where.rstrip(")").rpartition(":")
    return (path or where, int(line) if line.isdigit() else 0, name or frame)


def summarise_spy(path: Path, top: int = 25) -> dict[str, Any]:
    """Self time (leaf frames) by category and function, and inclusive time by function."""
    self_counts: dict[tuple[str, int, str], int] = {}
    inclusive: dict[tuple[str, int, str], int] = {}
    total = 0
    for raw_frames, n in spy_stacks(path):
        total += n
        frames = [_spy_key(f) for f in raw_frames]
        # py-spy's first frame is the thread ("process 123:...") when idle frames are off.
        frames = [f for f in frames if not f[2].startswith(("process ", "thread "))]
        if not frames:
            continue
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + n
        for key in set(frames):
            inclusive[key] = inclusive.get(key, 0) + n
    total = total or 1
    by_category: dict[str, int] = {}
    for key, n in self_counts.items():
        label = _category(key)
        label = "builtins" if label.startswith("builtins") else label
        by_category[label] = by_category.get(label, 0) + n

    def name(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
            if marker in filename:
                filename = filename.split(marker, 1)[1]
        return f"{filename}:{line}({func})"

    def rows(counts: dict[tuple[str, int, str], int]) -> list[dict[str, Any]]:
        items = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [{"function": name(k), "share": round(n / total, 4)} for k, n in items]

    return {
        "samples": total,
        "by_category": {
            k: {"share": round(v / total, 4)}
            for k, v in sorted(by_category.items(), key=lambda kv: -kv[1])
        },
        "top_self": rows(self_counts),
        "top_inclusive": rows(inclusive),
    }


def profile_worker(
    how: str, env: dict[str, str], workdir: Path, events: int, timeout_s: float
) -> dict[str, Any] | None:
    """Run a second worker over the same topic under a profiler; summarise where time goes."""
    if how == "cprofile":
        prof_path = workdir / "worker.prof"
        worker = Worker(env, workdir / "profile.log", profile_to=prof_path)
        try:
            run = consume_with_worker(worker, events, timeout_s)
        finally:
            worker.stop()
        if not prof_path.exists():
            print("  (the profiled worker wrote no profile)", flush=True)
            return None
        return {
            "tool": "cProfile",
            "events": events,
            "events_per_s_under_profiler": run["events_per_s"],
            "path": str(prof_path),
            "summary": summarise_profile(prof_path),
        }
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("  (py-spy is not installed: pip install -e '.[dev]')", flush=True)
        return None
    out = workdir / "worker.spy.txt"
    worker = Worker(env, workdir / "profile.log")
    spy_process: subprocess.Popen[bytes] | None = None

    def start_spy() -> None:
        nonlocal spy_process
        spy_process = subprocess.Popen(  # noqa: S603 - the dev extra's py-spy
            [
                spy,
                "record",
                "--pid",
                str(worker.pid),
                "--format",
                "raw",
                "--rate",
                "250",
                "--output",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "py-spy.log").open("wb"),
        )

    try:
        run = consume_with_worker(worker, events, timeout_s, on_ready=start_spy)
    finally:
        if spy_process is not None:
            spy_process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy_process.wait(30)
        worker.stop()
    if not out.exists():
        print(f"  (py-spy wrote no profile; see {workdir / 'py-spy.log'})", flush=True)
        return None
    return {
        "tool": "py-spy (sampling, 250 Hz, --nonblocking)",
        "events": events,
        "events_per_s_under_profiler": run["events_per_s"],
        "path": str(out),
        "summary": summarise_spy(out),
    }


# --- freshness ------------------------------------------------------------------------------


class Collector:
    def __init__(self, topics: Any, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": topics.kafka_bootstrap_servers,
            "INGEST_HOST": "127.0.0.1",
            "INGEST_PORT": str(self.port),
            "INGEST_AUTH_DISABLED": "true",
            "INGEST_RAW_TOPIC": topics.raw_topic,
            "INGEST_REJECTED_TOPIC": topics.rejected_topic,
            "LOG_LEVEL": "WARNING",
        }
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ingest"],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.log = log

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise SystemExit(f"collector exited ({self.process.returncode}); see {self.log}")
            return http_get(f"{self.url}/ready", 2)[0] == 200

        wait_until("collector /ready", ready, 60)

    def post(self, events: list[dict[str, Any]]) -> int:
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.url}/v1/events",
            data=json.dumps({"events": events}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def stop(self) -> int:
        return stop_process(self.process)


def probe_events(org: str, now_ms: int) -> list[dict[str, Any]]:
    from bench.traffic import base_event, new_view

    view = new_view(random.Random(), org)
    return [
        base_event(view, "viewstart", now_ms - 1500, {"preroll_requested": False}),
        base_event(view, "playerready", now_ms - 1200, {"player_startup_time": 120.0}),
        base_event(
            view, "playing", now_ms - 200, {"video_startup_time": 1300.0, "bitrate": 1_600_000}
        ),
    ]


def measure_freshness(
    collector: Collector,
    prometheus: Prometheus,
    worker: Worker,
    probes: int,
    suffix: str,
    gap_s: float,
    timeout_s: float,
    rng: random.Random,
) -> dict[str, Any]:
    def one(org: str) -> float | None:
        status = collector.post(probe_events(org, int(time.time() * 1000)))
        acked = time.monotonic()
        if not 200 <= status < 300:
            raise SystemExit(f"collector answered {status} to a probe")
        promql = f'sum(openqoe_views_started_total{{org="{org}"}})'
        deadline = acked + timeout_s
        while time.monotonic() < deadline:
            if (prometheus.value(promql) or 0) >= 1:
                return time.monotonic() - acked
            worker.check_alive()
            time.sleep(0.1)
        return None

    # Warm-up probe (not counted): the worker has joined the group and flushes to Prometheus.
    if one(f"warm{suffix}") is None:
        raise SystemExit("the warm-up probe never became visible in Prometheus")
    latencies: list[float] = []
    misses = 0
    for i in range(probes):
        time.sleep(rng.uniform(0, gap_s))
        latency = one(f"fresh{suffix}{i}")
        if latency is None:
            misses += 1
        else:
            latencies.append(latency)
        print(
            f"  probe {i + 1}/{probes}: {'missed' if latency is None else f'{latency:.2f} s'}",
            flush=True,
        )
    ordered = sorted(latencies)
    return {
        "probes": probes,
        "missed": misses,
        "p50_s": percentile(ordered, 50),
        "p95_s": percentile(ordered, 95),
        "max_s": ordered[-1] if ordered else None,
        "min_s": ordered[0] if ordered else None,
        "latencies_s": [round(x, 3) for x in latencies],
    }


# --- report ---------------------------------------------------------------------------------


def machine_info(bootstrap: str) -> dict[str, Any]:
    model = cpu_model()
    versions: dict[str, str | None] = {}
    for module in ("faust", "aiokafka", "fastavro", "rocksdict", "orjson", "quixstreams"):
        try:
            from importlib.metadata import version

            dist = {"faust": "faust-streaming"}.get(module, module)
            versions[module] = version(dist)
        except Exception:  # noqa: BLE001 - not installed
            versions[module] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_total_mb": int(Path("/proc/meminfo").read_text().split()[1]) // 1024,
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
        **versions,
        "kafka_bootstrap": bootstrap,
        "broker_topics": broker_topic_count(bootstrap),
    }


FLOOR_MODES = ("noop", "table", "batched", "quix")
FLOOR_LABELS = {
    "noop": "faust floor: minimal agent, no work",
    "table": "faust floor: decode + one 2 kB table write per event",
    "batched": "without faust: aiokafka batches, view step, one changelog write per "
    "changed view per batch",
    "quix": "peer: quix-streams, per-view state in its RocksDB store",
}


def floor_rows(floor: dict[str, Any] | None) -> list[str]:
    floor = floor or {}
    rows = []
    for mode in FLOOR_MODES:
        r = floor.get(mode)
        if r:
            rows.append(
                f"| {FLOOR_LABELS[mode]} ({floor['events']:,} events) | | "
                f"{_fmt(r['events_per_s'], 0)} | {_fmt(r['cpu_us_per_event'])} | | |"
            )
    return rows


def comparison(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every throughput row against the decode-only baseline of the same run.

    events/s is the sustained rate (first event to done; for the floors and the peer, first
    event to last, the peer's final commit included); CPU is per event over the row's own
    window; "events per CPU-second" is 1e6 / CPU-us per event (issue 8's comparison with
    the quix-streams peer).
    """
    t = results.get("throughput")
    if not t:
        return []
    b, o = t["baseline"], t["ours"]
    rows = [
        (
            "baseline",
            "baseline: raw aiokafka consumer, decode only",
            b["events"],
            b["sustained_events_per_s"],
            b["cpu_us_per_event"],
        ),
        (
            "ours",
            "ours: one processor worker (RocksDB)",
            o["events"],
            o["sustained_events_per_s"],
            o["cpu_us_per_event"],
        ),
    ]
    floor = results.get("floor") or {}
    for mode in FLOOR_MODES:
        r = floor.get(mode)
        if r:
            rows.append(
                (
                    mode,
                    FLOOR_LABELS[mode],
                    floor["events"],
                    r["events_per_s"],
                    r["cpu_us_per_event"],
                )
            )
    base_eps, base_cpu = b["sustained_events_per_s"], b["cpu_us_per_event"]
    return [
        {
            "row": name,
            "label": label,
            "events": events,
            "events_per_s": eps,
            "cpu_us_per_event": cpu,
            "events_per_s_ratio_to_baseline": eps / base_eps,
            "cpu_us_per_event_ratio_to_baseline": cpu / base_cpu,
            "events_per_cpu_s": 1e6 / cpu if cpu > 0 else None,
        }
        for name, label, events, eps, cpu in rows
    ]


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines: list[str] = []
    m = results["machine"]
    lines.append(
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_mb']} MB, Python "
        f"{m['python']}, faust-streaming {m['faust']}, aiokafka {m['aiokafka']}, rocksdict "
        f"{m['rocksdict']}, orjson {m['orjson'] or 'not installed'}, quixstreams "
        f"{m.get('quixstreams') or 'not installed'}; load average before "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_before'])}."
    )
    t = results.get("throughput")
    if t:
        b, o = t["baseline"], t["ours"]
        lines += [
            "",
            f"Throughput: {t['events']:,} events pre-produced to {RAW_PARTITIONS} partitions "
            f"({t['encoded_bytes_per_event']:.0f} B/event Avro), {t['views']:,} views.",
            "",
            "| | events/s (start to done) | events/s (sustained) | CPU-us/event | "
            "broker CPU-us/event | time (s) |",
            "|---|---:|---:|---:|---:|---:|",
            f"| baseline: raw aiokafka consumer, decode only | {_fmt(b['events_per_s'], 0)} | "
            f"{_fmt(b['sustained_events_per_s'], 0)} | {_fmt(b['cpu_us_per_event'])} | "
            f"{_fmt(b.get('broker_cpu_us_per_event'))} | {_fmt(b['start_to_done_s'])} |",
            f"| ours: one processor worker (RocksDB) | {_fmt(o['events_per_s'], 0)} | "
            f"{_fmt(o['sustained_events_per_s'], 0)} | {_fmt(o['cpu_us_per_event'])} | "
            f"{_fmt(o.get('broker_cpu_us_per_event'))} | {_fmt(o['ready_to_done_s'])} |",
            *floor_rows(results.get("floor")),
            "",
            "Against the decode-only baseline (events/s sustained; events per CPU-second = "
            "1e6 / CPU-us per event):",
            "",
            "| | events | events/s | CPU-us/event | events/s / baseline | "
            "CPU-us/event / baseline | events per CPU-second |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {r['label']} | {r['events']:,} | {_fmt(r['events_per_s'], 0)} | "
                f"{_fmt(r['cpu_us_per_event'])} | {r['events_per_s_ratio_to_baseline']:.2f} | "
                f"{r['cpu_us_per_event_ratio_to_baseline']:.1f} | "
                f"{_fmt(r['events_per_cpu_s'], 0)} |"
                for r in results.get("comparison", [])
            ),
            "",
            f"Worker: ready to first event {o['ready_to_first_s']:.1f} s (group join, "
            f"assignment); RSS at the end {_fmt(o['rss_mb'], 0)} MB. During the worker's run "
            f"the machine was busy {o['machine_busy_cores']:.2f} of {m['nproc']} cores, of "
            f"which {o['others_busy_cores']:.2f} neither the worker nor the broker (bench "
            "poller, Prometheus, anything else running).",
        ]
    pairs = results.get("peer_rounds")
    if pairs:
        lines += [
            "",
            f"Paired rounds, ours and the quix-streams peer back to back over the same "
            f"{pairs['events']:,} events:",
            "",
            "| round | order | ours CPU-us/event | peer CPU-us/event | ours events/s | "
            "peer events/s | ours per CPU-second / peer's |",
            "|---:|---|---:|---:|---:|---:|---:|",
            *(
                f"| {r['round']} | {r['order']} | {_fmt(r['ours_cpu_us_per_event'])} | "
                f"{_fmt(r['peer_cpu_us_per_event'])} | {_fmt(r['ours_events_per_s'], 0)} | "
                f"{_fmt(r['peer_events_per_s'], 0)} | {r['ours_per_peer']:.2f} |"
                for r in pairs["rounds"]
            ),
        ]
    p = results.get("profile")
    if p:
        summary = p["summary"]
        lines += [
            "",
            f"Profile ({p['tool']}, second worker over the same {p['events']:,} events, "
            f"{p['events_per_s_under_profiler']:,.0f} events/s while profiled); self time by "
            "category:",
            "",
            "| category | share of worker time |",
            "|---|---:|",
        ]
        for label, row in list(summary["by_category"].items())[:14]:
            lines.append(f"| {label} | {row['share'] * 100:.1f}% |")
        lines += ["", "Top functions by self time:", "", "| function | share |", "|---|---:|"]
        for row in summary["top_self"][:15]:
            share = row["share"] if "share" in row else row["self_s"] / summary["total_self_s"]
            lines.append(f"| `{row['function']}` | {share * 100:.1f}% |")
    f = results.get("freshness")
    if f:
        lines += [
            "",
            f"Freshness (collector 2xx to visible in Prometheus; flush interval "
            f"{args.flush_interval:g} s; {f['probes']} probes, {f['missed']} missed): "
            f"p50 {_fmt(f['p50_s'], 2)} s, p95 {_fmt(f['p95_s'], 2)} s, "
            f"min {_fmt(f['min_s'], 2)} s, max {_fmt(f['max_s'], 2)} s.",
        ]
    targets = results.get("targets", {})
    if targets:
        lines += ["", "Targets: " + "; ".join(f"{k}: {v}" for k, v in targets.items())]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


async def prepare_throughput_topic(
    bootstrap: str, suffix: str, n: int, seed: int
) -> tuple[Any, dict[str, Any]]:
    topics = await create_topics(bootstrap, suffix)
    now_ms = int(time.time() * 1000)
    started = time.monotonic()
    raw = generate_raw_events(n, seed, now_ms)
    views = len({e["view_id"] for e in raw})
    messages = encode_like_collector(raw, now_ms)
    del raw
    prepared = time.monotonic() - started
    produce_s = await produce(bootstrap, topics.raw_topic, messages)
    info = {
        "events": n,
        "views": views,
        "encoded_bytes_per_event": sum(len(v) for _k, v in messages) / len(messages),
        "generate_encode_s": prepared,
        "produce_s": produce_s,
    }
    return topics, info


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_baseline"]:
        baseline_main(argv[1], argv[2], int(argv[3]), float(argv[4]))
        return
    if argv[:1] == ["_floor"]:
        children: dict[str, Callable[[str, str, int, str], None]] = {
            "batched": batched_main,
            "quix": quix_main,
        }
        floor = children.get(argv[1]) or partial(floor_main, argv[1])
        floor(argv[2], argv[3], int(argv[4]), argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--events", type=int, default=200_000, help="events to pre-produce")
    parser.add_argument("--probes", type=int, default=20, help="freshness probes (0: skip)")
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=10.0,
        help="PROCESSOR_FLUSH_INTERVAL_S of the freshness worker",
    )
    parser.add_argument(
        "--profile",
        choices=("py-spy", "cprofile", "none"),
        default="py-spy",
        help="profile a second worker: py-spy (sampling, near full speed) or cProfile",
    )
    parser.add_argument(
        "--profile-events",
        type=int,
        default=0,
        help="events the profiled worker consumes (default: all)",
    )
    parser.add_argument(
        "--floor-events",
        type=int,
        default=50_000,
        help="events for the floor runs (minimal faust apps and the batched design over the "
        "same topic; 0: skip)",
    )
    parser.add_argument(
        "--peer-rounds",
        type=int,
        default=0,
        help="after the floor rows, this many rounds of our worker and the quix-streams peer "
        "back to back over the whole topic, the order alternating (the VM's speed drifts "
        "between rows; a pair measured together is compared by its ratio)",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="bound on each consuming phase, seconds"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120.0,
        help="before each measured phase, wait up to this many seconds for a quiet machine",
    )
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument(
        "--processor-src",
        type=Path,
        help="run the workers from this tree instead (e.g. the code before a change: "
        "git archive HEAD processors schemas ingest | tar -x -C DIR)",
    )
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--workdir", type=Path, help="logs, data dirs (default: a temp dir)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    if args.processor_src is not None:
        Worker.SOURCE = args.processor_src.resolve()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="openqoe-pbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {
        "processor_src": str(Worker.SOURCE),
        **git_provenance(REPO),
        "machine": machine_info(args.bootstrap),
        "run_id": run_id,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    topic_names: list[str] = []
    app_prefixes: list[str] = []
    broker_pid = find_broker_pid(args.bootstrap)

    def quiet(results: dict[str, Any], phase: str) -> None:
        if args.wait_quiet > 0:
            busy = wait_until_quiet(args.wait_quiet)
            results.setdefault("busy_before_phase_cores", {})[phase] = round(busy, 3)

    prometheus = Prometheus(workdir / "prometheus")
    print(f"workdir {workdir}; Prometheus at {prometheus.url}", flush=True)
    try:
        if not args.skip_throughput:
            print(f"[throughput] generating and producing {args.events:,} events ...", flush=True)
            topics, info = asyncio.run(
                prepare_throughput_topic(args.bootstrap, f"t{run_id}", args.events, args.seed)
            )
            topic_names += [s.name for s in topics.specs()]
            print(f"  produced in {info['produce_s']:.1f} s", flush=True)

            print("[throughput] baseline: raw consumer, decode only ...", flush=True)
            quiet(results, "baseline")
            baseline = run_baseline(
                args.bootstrap, topics.raw_topic, args.events, args.timeout, broker_pid
            )
            print(
                f"  {baseline['events_per_s']:,.0f} events/s, "
                f"{baseline['cpu_us_per_event']:.1f} CPU-us/event",
                flush=True,
            )

            print("[throughput] ours: one processor worker ...", flush=True)
            quiet(results, "ours")
            app_id = f"pbench-{run_id}-ours"
            app_prefixes.append(app_id)
            worker = Worker(
                worker_env(topics, app_id, workdir / "ours-data", prometheus.write_url),
                workdir / "ours.log",
            )
            try:
                ours = consume_with_worker(worker, args.events, args.timeout, broker_pid=broker_pid)
            finally:
                ours_exit = worker.stop()
            ours["exit_code"] = ours_exit
            print(
                f"  {ours['events_per_s']:,.0f} events/s (sustained "
                f"{ours['sustained_events_per_s']:,.0f}), {ours['cpu_us_per_event']:.1f} "
                f"CPU-us/event, exit {ours_exit}",
                flush=True,
            )
            results["throughput"] = {**info, "baseline": baseline, "ours": ours}

            if args.floor_events > 0:
                floors: dict[str, Any] = {"events": min(args.floor_events, args.events)}
                for mode in FLOOR_MODES:
                    if mode == "quix" and _version("quixstreams") is None:
                        print(
                            "[floor] quix: quixstreams is not installed (pip install -e "
                            "'.[dev]'); skipped",
                            flush=True,
                        )
                        continue
                    print(f"[floor] {FLOOR_LABELS[mode]} ...", flush=True)
                    quiet(results, f"floor-{mode}")
                    floors[mode] = run_floor(
                        mode,
                        args.bootstrap,
                        topics.raw_topic,
                        floors["events"],
                        workdir,
                        args.timeout,
                    )
                    app_prefixes.append(f"pbench-floor-{mode}")
                # quix-streams names its changelog topics changelog__<group>--<topic>--<store>.
                app_prefixes.append(f"changelog__{QUIX_GROUP_PREFIX}")
                results["floor"] = floors

            if args.peer_rounds > 0 and _version("quixstreams") is None:
                print("[peer rounds] quixstreams is not installed; skipped", flush=True)
            elif args.peer_rounds > 0:
                # Registered first: a round that fails still has its topics deleted.
                app_prefixes += [
                    f"pbench-{run_id}-pair",
                    "pbench-floor-quix",
                    f"changelog__{QUIX_GROUP_PREFIX}",
                ]
                print(
                    f"[peer rounds] {args.peer_rounds} x (ours, quix-streams), "
                    f"{args.events:,} events each",
                    flush=True,
                )
                results["peer_rounds"] = peer_rounds(
                    args.peer_rounds,
                    args.events,
                    lambda i: Worker(
                        worker_env(
                            topics,
                            f"pbench-{run_id}-pair{i}",
                            workdir / f"pair{i}-data",
                            prometheus.write_url,
                        ),
                        workdir / f"pair{i}.log",
                    ),
                    lambda: run_floor(
                        "quix", args.bootstrap, topics.raw_topic, args.events, workdir, args.timeout
                    ),
                    lambda phase: quiet(results, phase),
                    args.timeout,
                    broker_pid,
                )

            if args.profile != "none":
                n = args.profile_events or args.events
                print(f"[profile] worker under {args.profile}, {n:,} events ...", flush=True)
                quiet(results, "profile")
                app_id = f"pbench-{run_id}-prof"
                app_prefixes.append(app_id)
                results["profile"] = profile_worker(
                    args.profile,
                    worker_env(topics, app_id, workdir / "prof-data", prometheus.write_url),
                    workdir,
                    n,
                    args.timeout * 3,
                )

        if args.probes > 0:
            print(
                f"[freshness] {args.probes} probes, flush interval {args.flush_interval:g} s",
                flush=True,
            )
            topics = asyncio.run(create_topics(args.bootstrap, f"f{run_id}"))
            topic_names += [s.name for s in topics.specs()]
            app_id = f"pbench-{run_id}-fresh"
            app_prefixes.append(app_id)
            collector = Collector(topics, workdir / "collector.log")
            worker = Worker(
                worker_env(
                    topics,
                    app_id,
                    workdir / "fresh-data",
                    prometheus.write_url,
                    PROCESSOR_FLUSH_INTERVAL_S=str(args.flush_interval),
                ),
                workdir / "fresh.log",
            )
            try:
                collector.wait_ready()
                wait_until("processor /health", worker.healthy, 120, 0.1)
                results["freshness"] = measure_freshness(
                    collector,
                    prometheus,
                    worker,
                    args.probes,
                    run_id,
                    gap_s=args.flush_interval,
                    timeout_s=max(60.0, 6 * args.flush_interval),
                    rng=random.Random(args.seed),
                )
                results["freshness"]["flush_interval_s"] = args.flush_interval
            finally:
                worker.stop()
                collector.stop()
    finally:
        prometheus.stop()
        if not args.keep_topics and (topic_names or app_prefixes):
            with contextlib.suppress(Exception):
                deleted = asyncio.run(delete_topics(args.bootstrap, topic_names, app_prefixes))
                print(f"deleted {len(deleted)} topics", flush=True)

    results["machine"]["loadavg_after"] = os.getloadavg()
    results["comparison"] = comparison(results)
    targets: dict[str, str] = {}
    if "throughput" in results:
        # Issue 8's targets for one worker on this 2-core machine.
        ours = results["throughput"]["ours"]
        eps, cpu = ours["sustained_events_per_s"], ours["cpu_us_per_event"]
        targets["throughput >= 8,000 events/s (sustained)"] = (
            f"{'met' if eps >= 8_000 else 'NOT met'} ({eps:,.0f})"
        )
        targets["<= 150 CPU-us/event"] = f"{'met' if cpu <= 150 else 'NOT met'} ({cpu:,.1f})"
        by_row = {r["row"]: r for r in results["comparison"]}
        if "quix" in by_row:
            mine = by_row["ours"]["events_per_cpu_s"]
            peer = by_row["quix"]["events_per_cpu_s"]
            targets["ahead of the quix-streams peer in events per CPU-second"] = (
                f"{'met' if mine > peer else 'NOT met'} ({mine:,.0f} vs {peer:,.0f})"
            )
        pairs = results.get("peer_rounds", {}).get("rounds")
        if pairs:
            median = statistics.median(r["ours_per_peer"] for r in pairs)
            targets[f"ahead of the quix-streams peer, median of {len(pairs)} paired rounds"] = (
                f"{'met' if median > 1 else 'NOT met'} (ours {median:.2f}x the peer)"
            )
    if results.get("freshness", {}).get("p95_s") is not None:
        p95 = results["freshness"]["p95_s"]
        ok = p95 < 15 and results["freshness"]["missed"] == 0
        targets["freshness p95 < 15 s"] = f"{'met' if ok else 'NOT met'} ({p95:.2f} s)"
    results["targets"] = targets
    print()
    print(markdown(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
