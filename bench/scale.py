"""Scale row of issue 8: one processor worker holding many active views under heartbeats.

Run from the repository root (the local broker must be up: ``bash deploy/kafka-local.sh
start``; Debian's ``prometheus`` must be installed)::

    .venv/bin/python -m bench.scale --views 100000 --minutes 10 --json pscale.json

What one run does:

* Creates fresh topics (every topic of ``TopicsConfig`` gets a ``pscale.*`` name; raw: 12
  partitions) and starts Debian's Prometheus with its remote-write receiver, a collector
  (auth disabled, for the freshness probes only) and ONE processor worker
  (``python -m processors``; RocksDB store in its own data dir, production timers, remote
  write to that Prometheus).
* Produces heartbeat traffic straight to the raw topic with a raw aiokafka producer using
  the collector's producer settings, in record batches per partition (``create_batch`` /
  ``send_batch``; the partition of the default partitioner, as the collector's sends),
  each event validated like the collector does (``ingest.validation.validate_event``, once
  per kind of event) and encoded with
  ``schemas.player_event_codec().encode`` at send time, key = view id,
  ``event_time``/``received_time`` = now: first one ``viewstart`` and one ``playing`` per
  view, the views' starts spread evenly over ``--ramp`` seconds (default 60), then one
  ``heartbeat`` per view every ``--heartbeat`` seconds (default 10; view i's heartbeats
  keep the phase of its start, so they are spread evenly) until ``--minutes`` of
  heartbeats after the ramp.
* Every ``--sample`` seconds (default 60) it samples: the worker's RSS (``VmRSS``), the
  size of its RocksDB data dir (``du``), the on-disk size of the worker's changelog topic
  (the ``.log`` segments of its partitions under the broker's log dir,
  ``$OPENQOE_KAFKA_HOME/data``; ``--kafka-data-dir``) per view started, the changelog's
  record count (end offsets minus beginning offsets) and so the average record size
  (compaction lags, so bytes per view alone overstates what a view costs once compacted),
  the worker's lag (``openqoe_processor_lag_messages``), its expiry scans
  (``openqoe_processor_expiry_scan_seconds`` sum/count over the interval: mean time per
  scan; and ``openqoe_processor_views_kept``; "n/a" when the worker does not expose them),
  the worker's CPU-us per event over the interval and the events/s it processed
  (``openqoe_processor_messages_total{topic="raw"}`` deltas).
* Freshness: every ~20 s (uniformly 10-30 s apart, so probes land at random phases of the
  flush timer) a probe posts a viewstart/playerready/playing batch of a new view of a NEW
  org through the collector and measures from its 2xx to the moment
  ``sum(openqoe_views_started_total{org="<probe org>"})`` is visible in Prometheus.

Prints a markdown table (one row per sample) and a summary (freshness p50/p95, final RSS,
RocksDB size, changelog bytes per view, expiry scan time per interval min/max against the
views kept), optionally writes everything as JSON (``--json``), and deletes its topics and
the worker's internal topics (unless ``--keep-topics``). Small runs for a check:
``--views 3000 --minutes 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    bench_topics,
    git_provenance,
    machine_busy_s,
    percentile,
    proc_cpu_s,
)
from bench.common import fmt as _fmt
from bench.processor_bench import (
    RAW_PARTITIONS,
    Collector,
    Prometheus,
    Worker,
    delete_topics,
    http_get,
    machine_info,
    probe_events,
    proc_rss_mb,
    topic_records,
    wait_until,
    worker_env,
)

ORG = "scale_org"
# Per-process cap on distinct org label values (processors.dims.DEFAULT_CAPS): every probe
# uses a new org, so a long run raises the worker's cap rather than fold probes into "other".
DEFAULT_ORG_CAP = 100


# --- the worker's /metrics ------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, list[tuple[str, float]]]:
    """Prometheus text format: metric name -> [(label text, value)]."""
    out: dict[str, list[tuple[str, float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        try:
            out.setdefault(name, []).append((labels.rstrip("}"), float(value)))
        except ValueError:
            continue
    return out


def metric_sum(
    metrics: dict[str, list[tuple[str, float]]], name: str, where: str = ""
) -> float | None:
    """Sum over the label sets of ``name`` that contain ``where``; None if it is absent."""
    samples = metrics.get(name)
    if samples is None:
        return None
    return sum(v for labels, v in samples if where in labels)


def worker_metrics(worker: Worker) -> dict[str, list[tuple[str, float]]]:
    status, body = http_get(f"{worker.url}/metrics", 5)
    return parse_metrics(body.decode(errors="replace")) if status == 200 else {}


# --- disk -----------------------------------------------------------------------------------


def du_bytes(path: Path) -> int:
    """Disk usage of a tree (allocated blocks, like ``du``)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def is_changelog(topic: str, app_id: str) -> bool:
    """faust names a table's changelog topic ``<app id>-<table name>-changelog``."""
    return topic.startswith(f"{app_id}-") and topic.endswith("-changelog")


def changelog_log_bytes(kafka_data_dir: Path, app_id: str) -> int | None:
    """Bytes of the ``.log`` segments of every partition of the worker's changelog topics
    in the broker's log dir (the indexes are left out: Kafka preallocates them); None if
    none is found."""
    found = False
    total = 0
    with contextlib.suppress(OSError):
        for entry in kafka_data_dir.iterdir():
            topic, _, partition = entry.name.rpartition("-")
            if not partition.isdigit() or not is_changelog(topic, app_id):
                continue
            found = True
            for segment in entry.glob("*.log"):
                with contextlib.suppress(OSError):
                    total += segment.stat().st_size
    return total if found else None


async def changelog_records(bootstrap: str, app_id: str) -> int | None:
    """Records in the worker's changelog topics: end offsets minus beginning offsets."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if is_changelog(t, app_id)]
    finally:
        await admin.close()
    counts = [await topic_records(bootstrap, name) for name in names]
    return sum(c for c in counts if c is not None) if any(c is not None for c in counts) else None


# --- traffic --------------------------------------------------------------------------------


class Traffic:
    """Heartbeat traffic for ``views`` views, encoded like the collector at send time.

    A few record templates (each kind of event of a handful of player/device mixes) are
    validated once with the collector's ``validate_event``; each event sent is a shallow
    copy of one with the view's ids, a new event id and the current times, encoded with
    ``player_event_codec().encode``.
    """

    def __init__(
        self,
        views: int,
        seed: int,
        heartbeat_s: float,
        paused_share: float = 0.0,
        paused_heartbeat_s: float = 30.0,
    ) -> None:
        from bench.traffic import base_event, new_view
        from ingest.validation import validate_event

        rng = random.Random(seed)
        now_ms = int(time.time() * 1000)
        self.heartbeat_s = heartbeat_s
        self.paused_heartbeat_s = paused_heartbeat_s
        # Views [playing, views) pause after their first frame and stay paused: the SDK
        # sends a paused view's heartbeats every 30 s (sdk/src/core), a playing one's every 10.
        self.playing = playing_and_paused(views, paused_share)[0]
        self.templates: list[dict[str, dict[str, Any]]] = []
        for _ in range(16):
            view = new_view(rng, ORG)
            view["duration_ms"] = 24 * 3_600_000  # no view reaches its end in a run
            bitrate = rng.choice([800_000, 1_600_000, 3_000_000])
            raws = {
                "viewstart": base_event(view, "viewstart", now_ms, {"preroll_requested": False}),
                "playing": base_event(
                    view,
                    "playing",
                    now_ms,
                    {"video_startup_time": rng.uniform(500, 2500), "bitrate": bitrate},
                ),
                "heartbeat": base_event(
                    view,
                    "heartbeat",
                    now_ms,
                    {"playing_time": 0.0, "bitrate": bitrate, "dropped_frames": 0},
                ),
                "pause": base_event(view, "pause", now_ms, {}),
            }
            kinds: dict[str, dict[str, Any]] = {}
            for kind, raw in raws.items():
                record = validate_event(raw, now_ms=now_ms, org_id=None)
                if not isinstance(record, dict):
                    raise SystemExit(f"generated {kind} rejected by validation: {record}")
                kinds[kind] = record
            self.templates.append(kinds)
        self.ids = [
            (str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex * 2) for _ in range(views)
        ]
        # Event ids: UUID-shaped (version 4 layout), unique per run, and a counter instead
        # of uuid4() per event, which cost 7 us, a fifth of building and encoding one.
        base = uuid.uuid4().hex
        self._id_prefix = f"{base[:8]}-{base[8:12]}-4{base[13:16]}-8{base[17:20]}-"
        self._next_id = 0

    def event(self, i: int, kind: str, k: int, now_ms: int) -> tuple[bytes, dict[str, Any]]:
        """Key and record of view ``i``'s event ``kind``; ``k`` heartbeats so far."""
        view_id, session_id, viewer_id = self.ids[i]
        record = dict(self.templates[i % len(self.templates)][kind])
        position = k * self.heartbeat_s * 1000.0 if i < self.playing else 0.0
        self._next_id += 1
        record.update(
            event_id=f"{self._id_prefix}{self._next_id:012x}",
            view_id=view_id,
            session_id=session_id,
            viewer_id=viewer_id,
            event_time=now_ms,
            viewer_time=now_ms,
            received_time=now_ms,
            playback_time=position,
        )
        if kind == "heartbeat":
            data = dict(record["data"])
            data["playing_time"] = position
            record["data"] = data
        return view_id.encode(), record


async def drive(
    bootstrap: str,
    topic: str,
    traffic: Traffic,
    ramp_s: float,
    run_s: float,
    stats: dict[str, Any],
    stop: threading.Event,
    started: asyncio.Event,
    slot_s: float = 0.1,
) -> None:
    """Send view i's start (viewstart + playing, + pause for a paused view) at
    ``ramp_s * i / n`` and its heartbeats every ``heartbeat_s`` (``paused_heartbeat_s``)
    after that, until ``run_s`` after the start of the ramp."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    from ingest.config import IngestConfig
    from schemas import player_event_codec

    encode = player_event_codec().encode
    config = IngestConfig(kafka_bootstrap_servers=bootstrap, auth_disabled=True)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="openqoe-pscale",
        acks="all",
        enable_idempotence=True,
        linger_ms=config.linger_ms,
        compression_type=config.compression_type,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    # The producer's default partitioner (murmur2 of the key), as the collector's sends:
    # the same view always lands on the same partition.
    partitions = sorted(await producer.partitions_for(topic))
    partitioner = DefaultPartitioner()
    n = len(traffic.ids)
    groups = (
        (0, traffic.playing, traffic.heartbeat_s, ("viewstart", "playing")),
        (traffic.playing, n, traffic.paused_heartbeat_s, ("viewstart", "playing", "pause")),
    )
    t0 = time.monotonic()
    stats["t0"] = t0
    started.set()
    done_to = 0.0  # events due before this many seconds after t0 are sent
    try:
        while done_to < run_s and not stop.is_set():
            await asyncio.sleep(slot_s)
            upto = min(time.monotonic() - t0, run_s)
            now_ms = int(time.time() * 1000)
            by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            # View i's k-th event is due at ramp_s * i / n + k * hb (k = 0: its start).
            for first, end, hb, start_kinds in groups:
                k = max(0, math.floor((done_to - ramp_s) / hb))
                while k * hb < upto and first < end:
                    lo = max(first, math.ceil((done_to - k * hb) * n / ramp_s))
                    hi = min(end, math.ceil((upto - k * hb) * n / ramp_s))
                    for i in range(lo, hi):
                        kinds = start_kinds if k == 0 else ("heartbeat",)
                        for kind in kinds:
                            key, record = traffic.event(i, kind, k, now_ms)
                            partition = partitioner(key, partitions, partitions)
                            by_partition.setdefault(partition, []).append((key, encode(record)))
                        if k == 0:
                            stats["views_started"] += 1
                    k += 1
            if by_partition:
                sent = await send_batches(producer, topic, by_partition)
                stats["produced"] += sent
            done_to = upto
    finally:
        await producer.stop()
        stats["ended"] = time.monotonic()


async def send_batches(
    producer: Any, topic: str, by_partition: dict[int, list[tuple[bytes, bytes]]]
) -> int:
    """Send each partition's records as record batches and wait until all are acked.

    Batches, not ``send()`` per record: the generator shares the two cores with the worker
    and the broker, and a ``send()`` costs several times a batch append."""
    from processors.table_io import send_batches as send_partition

    deliveries = []
    for partition, records in by_partition.items():
        deliveries += [d for d, _n in await send_partition(producer, topic, partition, records)]
    await asyncio.gather(*deliveries)
    return sum(len(records) for records in by_partition.values())


# --- freshness probes (a thread: blocking HTTP and sleeps) ------------------------------------


def one_probe(
    collector: Collector, prometheus: Prometheus, org: str, timeout_s: float, stop: threading.Event
) -> dict[str, Any]:
    """Post a new view of a new org; seconds from the collector's 2xx to Prometheus."""
    started = time.monotonic()
    status = collector.post(probe_events(org, int(time.time() * 1000)))
    acked = time.monotonic()
    probe: dict[str, Any] = {"org": org, "at": started, "status": status, "latency_s": None}
    if 200 <= status < 300:
        promql = f'sum(openqoe_views_started_total{{org="{org}"}})'
        while time.monotonic() < acked + timeout_s:
            if stop.is_set():
                probe["interrupted"] = True  # the run ended first: neither seen nor missed
                break
            if (prometheus.value(promql) or 0) >= 1:
                probe["latency_s"] = time.monotonic() - acked
                break
            time.sleep(0.1)
    return probe


def probe_loop(
    collector: Collector,
    prometheus: Prometheus,
    run_id: str,
    out: list[dict[str, Any]],
    stop: threading.Event,
    every_s: float,
    timeout_s: float,
    seed: int,
) -> None:
    """Probes until ``stop``, each started uniformly 0.5-1.5 x ``every_s`` after the
    previous one ended (random phases of the worker's flush timer)."""
    rng = random.Random(seed)
    i = 0
    while not stop.wait(rng.uniform(every_s / 2, every_s * 1.5)):
        probe = one_probe(collector, prometheus, f"scale{run_id}p{i}", timeout_s, stop)
        i += 1
        if probe.get("interrupted"):
            continue
        out.append(probe)
        latency, status = probe["latency_s"], probe["status"]
        print(
            f"  probe {probe['org']}: {'missed' if latency is None else f'{latency:.2f} s'}"
            + ("" if 200 <= status < 300 else f" (collector answered {status})"),
            flush=True,
        )


# --- sampling -------------------------------------------------------------------------------


class Sampler:
    """What one sample reads, and the deltas since the previous one."""

    def __init__(
        self, worker: Worker, data_dir: Path, kafka_data_dir: Path, app_id: str, bootstrap: str
    ) -> None:
        self.worker = worker
        self.data_dir = data_dir
        self.kafka_data_dir = kafka_data_dir
        self.warned_data_dir = False
        self.app_id = app_id
        self.bootstrap = bootstrap
        self.previous: dict[str, Any] | None = None

    def read(self) -> dict[str, Any]:
        metrics = worker_metrics(self.worker)
        return {
            "t": time.monotonic(),
            "cpu_s": proc_cpu_s(self.worker.pid),
            "machine_busy_s": machine_busy_s(),
            "bench_cpu_s": time.process_time(),
            "messages": metric_sum(metrics, "openqoe_processor_messages_total", 'topic="raw"'),
            "lag": metric_sum(metrics, "openqoe_processor_lag_messages"),
            "scan_sum": metric_sum(metrics, "openqoe_processor_expiry_scan_seconds_sum"),
            "scan_count": metric_sum(metrics, "openqoe_processor_expiry_scan_seconds_count"),
            "views_kept": metric_sum(metrics, "openqoe_processor_views_kept"),
            "views_open": metric_sum(metrics, "openqoe_processor_views_open"),
        }

    async def sample(self, stats: dict[str, Any], probes: list[dict[str, Any]]) -> dict[str, Any]:
        now = await asyncio.to_thread(self.read)
        rocksdb = await asyncio.to_thread(du_bytes, self.data_dir)
        log_bytes = changelog_log_bytes(self.kafka_data_dir, self.app_id)
        try:
            records = await changelog_records(self.bootstrap, self.app_id)
        except Exception:  # noqa: BLE001 - informational: the topic may not exist yet
            records = None
        if log_bytes is None and records and not self.warned_data_dir:
            # The topic has records but not in this log dir: another broker's data dir.
            self.warned_data_dir = True
            print(
                f"  (no changelog partitions in {self.kafka_data_dir}: the broker at "
                f"{self.bootstrap} keeps its log elsewhere; pass --kafka-data-dir for "
                "the changelog bytes columns)",
                flush=True,
            )
        prev = self.previous or now
        self.previous = now
        dt = now["t"] - prev["t"]
        d_msgs = (now["messages"] or 0.0) - (prev["messages"] or 0.0)
        d_cpu = (now["cpu_s"] or 0.0) - (prev["cpu_s"] or 0.0)
        scan_mean = scans = None
        if now["scan_sum"] is not None and now["scan_count"] is not None:
            scans = now["scan_count"] - (prev["scan_count"] or 0.0)
            if scans > 0:
                scan_mean = (now["scan_sum"] - (prev["scan_sum"] or 0.0)) / scans
        views = stats["views_started"]
        window = [p for p in probes if prev["t"] <= p["at"] < now["t"]]
        latencies = sorted(p["latency_s"] for p in window if p["latency_s"] is not None)
        return {
            "elapsed_s": round(now["t"] - stats["t0"], 1),
            "views_started": views,
            "produced": stats["produced"],
            "processed": int(now["messages"] or 0),
            "events_per_s": d_msgs / dt if dt > 0 else None,
            "worker_cpu_cores": d_cpu / dt if dt > 0 else None,
            # The whole machine (2 cores = 2.0) and this script (the traffic generator, the
            # probes, the sampling): how much else competed with the worker.
            "machine_busy_cores": (now["machine_busy_s"] - prev["machine_busy_s"]) / dt
            if dt > 0
            else None,
            "bench_cpu_cores": (now["bench_cpu_s"] - prev["bench_cpu_s"]) / dt if dt > 0 else None,
            "cpu_us_per_event": d_cpu / d_msgs * 1e6 if d_msgs > 0 else None,
            "lag": now["lag"],
            "rss_mb": proc_rss_mb(self.worker.pid),
            "rocksdb_mb": rocksdb / 1e6,
            "changelog_bytes": log_bytes,
            "changelog_records": records,
            "changelog_bytes_per_view": log_bytes / views if log_bytes and views else None,
            "changelog_bytes_per_record": log_bytes / records if log_bytes and records else None,
            "expiry_scans": scans,
            "expiry_scan_mean_s": scan_mean,
            "views_kept": now["views_kept"],
            "views_open": now["views_open"],
            "probes": len(window),
            "probe_max_s": latencies[-1] if latencies else None,
        }


def n_a(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "n/a" if value is None else _fmt(value * scale, digits)


def sample_table(samples: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| t (s) | views | events/s | worker CPU-us/event | worker cores | machine busy cores "
        "| lag | RSS MB | "
        "RocksDB MB | changelog B/view | changelog B/record | expiry scans | "
        "expiry scan ms (mean) | views kept | views open | probes (max s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in samples:
        lines.append(
            f"| {s['elapsed_s']:.0f} | {s['views_started']:,} | {n_a(s['events_per_s'], 0)} | "
            f"{n_a(s['cpu_us_per_event'])} | {n_a(s['worker_cpu_cores'], 2)} | "
            f"{n_a(s['machine_busy_cores'], 2)} | {n_a(s['lag'], 0)} | "
            f"{n_a(s['rss_mb'], 0)} | {n_a(s['rocksdb_mb'])} | "
            f"{n_a(s['changelog_bytes_per_view'], 0)} | {n_a(s['changelog_bytes_per_record'], 0)} "
            f"| {n_a(s['expiry_scans'], 0)} | {n_a(s['expiry_scan_mean_s'], 2, 1000)} | "
            f"{n_a(s['views_kept'], 0)} | {n_a(s['views_open'], 0)} | "
            f"{s['probes']} ({n_a(s['probe_max_s'], 2)}) |"
        )
    return lines


def summarise(samples: list[dict[str, Any]], probes: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = sorted(p["latency_s"] for p in probes if p["latency_s"] is not None)
    last = samples[-1] if samples else {}
    scans = [s for s in samples if s["expiry_scan_mean_s"] is not None]
    summary: dict[str, Any] = {
        "probes": len(probes),
        "probes_missed": sum(1 for p in probes if p["latency_s"] is None),
        "freshness_p50_s": percentile(latencies, 50),
        "freshness_p95_s": percentile(latencies, 95),
        "freshness_max_s": latencies[-1] if latencies else None,
        "final_rss_mb": last.get("rss_mb"),
        "final_rocksdb_mb": last.get("rocksdb_mb"),
        "final_changelog_bytes_per_view": last.get("changelog_bytes_per_view"),
        "final_changelog_bytes_per_record": last.get("changelog_bytes_per_record"),
        "final_views_started": last.get("views_started"),
        "final_views_kept": last.get("views_kept"),
        "expiry_scan_mean_s_min": None,
        "expiry_scan_mean_s_max": None,
    }
    if scans:
        low = min(scans, key=lambda s: s["expiry_scan_mean_s"])
        high = max(scans, key=lambda s: s["expiry_scan_mean_s"])
        summary.update(
            expiry_scan_mean_s_min=low["expiry_scan_mean_s"],
            expiry_scan_min_at_views_kept=low["views_kept"],
            expiry_scan_mean_s_max=high["expiry_scan_mean_s"],
            expiry_scan_max_at_views_kept=high["views_kept"],
        )
    return summary


def playing_and_paused(views: int, paused_share: float) -> tuple[int, int]:
    """How many of ``views`` play and how many stay paused (the last ones)."""
    paused = round(views * paused_share)
    return views - paused, paused


def offered_rate(a: dict[str, Any]) -> float:
    """Heartbeats per second once every view has started."""
    playing, paused = playing_and_paused(a["views"], a.get("paused_share", 0.0))
    return float(playing / a["heartbeat"] + paused / a.get("paused_heartbeat", 30.0))


def markdown(results: dict[str, Any]) -> str:
    s = results["summary"]
    a = results["args"]
    playing, paused = playing_and_paused(a["views"], a.get("paused_share", 0.0))
    lines = [
        f"Scale: {a['views']:,} views ({playing:,} playing, a heartbeat every "
        f"{a['heartbeat']:g} s; {paused:,} paused, every {a.get('paused_heartbeat', 30):g} s), "
        f"{a['ramp']:g} s ramp-up, then {a['minutes']:g} min of heartbeats "
        f"({offered_rate(a):,.0f} events/s offered); one worker (RocksDB), exporting every "
        f"{a.get('flush_interval', 10.0):g} s.",
        "",
        *sample_table(results["samples"]),
        "",
        f"Freshness (collector 2xx to visible in Prometheus): {s['probes']} probes, "
        f"{s['probes_missed']} missed; p50 {n_a(s['freshness_p50_s'], 2)} s, "
        f"p95 {n_a(s['freshness_p95_s'], 2)} s, max {n_a(s['freshness_max_s'], 2)} s.",
        f"At the end: RSS {n_a(s['final_rss_mb'], 0)} MB, RocksDB {n_a(s['final_rocksdb_mb'])} "
        f"MB, changelog {n_a(s['final_changelog_bytes_per_view'], 0)} B per view started "
        f"({n_a(s['final_changelog_bytes_per_record'], 0)} B per changelog record; compaction "
        "lags, so B/view counts every record not yet compacted away), views kept "
        f"{n_a(s['final_views_kept'], 0)}.",
    ]
    p95 = s["freshness_p95_s"]
    if p95 is not None:
        ok = p95 < 10 and s["probes_missed"] == 0
        lines.append(f"Target freshness p95 < 10 s: {'met' if ok else 'NOT met'} ({p95:.2f} s).")
    if s["expiry_scan_mean_s_min"] is None:
        lines.append(
            "Expiry scan time: n/a (the worker exposes no openqoe_processor_expiry_scan_seconds)."
        )
    else:
        lines.append(
            "Expiry scan time per interval (mean per scan): min "
            f"{s['expiry_scan_mean_s_min'] * 1000:,.2f} ms at "
            f"{n_a(s['expiry_scan_min_at_views_kept'], 0)} "
            f"views kept, max {s['expiry_scan_mean_s_max'] * 1000:,.2f} ms at "
            f"{n_a(s['expiry_scan_max_at_views_kept'], 0)} views kept."
        )
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


def default_kafka_data_dir() -> Path:
    home = os.environ.get("OPENQOE_KAFKA_HOME")
    return Path(home) / "data" if home else REPO / ".local" / "kafka" / "data"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--views", type=int, default=100_000, help="active views")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="minutes of heartbeats after the ramp-up"
    )
    parser.add_argument("--ramp", type=float, default=60.0, help="ramp-up seconds (view starts)")
    parser.add_argument(
        "--heartbeat", type=float, default=10.0, help="seconds between a playing view's heartbeats"
    )
    parser.add_argument(
        "--paused-share",
        type=float,
        default=0.0,
        help="share of the views that pause after their first frame and stay paused",
    )
    parser.add_argument(
        "--paused-heartbeat",
        type=float,
        default=30.0,
        help="seconds between a paused view's heartbeats (the SDK's: 30)",
    )
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=10.0,
        help="the worker's PROCESSOR_FLUSH_INTERVAL_S: a probe waits up to one interval "
        "for the export that carries it",
    )
    parser.add_argument(
        "--probe-every", type=float, default=20.0, help="mean seconds between freshness probes"
    )
    parser.add_argument(
        "--kafka-data-dir",
        type=Path,
        default=default_kafka_data_dir(),
        help="the broker's log dir, for the changelog's size on disk "
        "(default: $OPENQOE_KAFKA_HOME/data, else .local/kafka/data)",
    )
    parser.add_argument("--drain", type=float, default=120.0, help="max seconds to wait for lag 0")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument(
        "--processor-src",
        type=Path,
        help="run the worker from this tree instead (as bench.processor_bench's option)",
    )
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--workdir", type=Path, help="logs, data dirs (default: a temp dir)")
    args = parser.parse_args(argv)
    if (
        args.views < 1
        or args.ramp <= 0
        or args.heartbeat <= 0
        or args.paused_heartbeat <= 0
        or args.minutes < 0
        or not 0 <= args.paused_share <= 1
    ):
        parser.error(
            "--views, --ramp and the heartbeats must be positive, --minutes >= 0, "
            "--paused-share in [0, 1]"
        )

    sys.path.insert(0, str(REPO))
    from ingest.topics import ensure_topics

    if args.processor_src is not None:
        Worker.SOURCE = args.processor_src.resolve()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="openqoe-pscale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {
        **git_provenance(REPO),
        "processor_src": str(Worker.SOURCE),
        "run_id": run_id,
        "machine": machine_info(args.bootstrap),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    run_s = args.ramp + 60.0 * args.minutes
    n_probes = int(run_s / args.probe_every) + 2
    print(
        f"workdir {workdir}; {args.views:,} views, {run_s:.0f} s of traffic, "
        f"~{offered_rate(vars(args)):,.0f} events/s",
        flush=True,
    )

    topics = bench_topics(args.bootstrap, "pscale", run_id, RAW_PARTITIONS)
    asyncio.run(ensure_topics(topics))
    app_id = f"pscale-{run_id}"
    data_dir = workdir / "worker-data"
    extra = {"PROCESSOR_FLUSH_INTERVAL_S": str(args.flush_interval)}
    if n_probes + 2 > DEFAULT_ORG_CAP:
        extra["PROCESSOR_DIMENSION_CAPS"] = f"org={n_probes + 10}"
    print("generating templates ...", flush=True)
    traffic = Traffic(
        args.views, args.seed, args.heartbeat, args.paused_share, args.paused_heartbeat
    )

    probes: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    started: list[Prometheus | Collector | Worker] = []
    prober: threading.Thread | None = None
    worker_exit = None
    try:
        prometheus = Prometheus(workdir / "prometheus")
        started.append(prometheus)
        collector = Collector(topics, workdir / "collector.log")
        started.append(collector)
        worker = Worker(
            worker_env(topics, app_id, data_dir, prometheus.write_url, **extra),
            workdir / "worker.log",
        )
        started.append(worker)
        collector.wait_ready()
        wait_until("processor /health", worker.healthy, 120, 0.1)
        # Warm-up probe (not counted): the worker has its partitions and writes to Prometheus.
        warm = one_probe(collector, prometheus, f"scale{run_id}warm", 90.0, stop)
        if warm["latency_s"] is None:
            raise SystemExit(f"the warm-up probe never became visible in Prometheus: {warm}")
        results["warm_up_probe_s"] = warm["latency_s"]
        print(f"warm-up probe visible after {warm['latency_s']:.2f} s", flush=True)

        sampler = Sampler(worker, data_dir, args.kafka_data_dir, app_id, args.bootstrap)
        stats: dict[str, Any] = {"views_started": 0, "produced": 0}
        prober = threading.Thread(
            target=probe_loop,
            args=(collector, prometheus, run_id, probes, stop, args.probe_every, 60.0, args.seed),
            daemon=True,
        )

        async def run() -> None:
            traffic_started = asyncio.Event()
            traffic_task = asyncio.create_task(
                drive(
                    args.bootstrap,
                    topics.raw_topic,
                    traffic,
                    args.ramp,
                    run_s,
                    stats,
                    stop,
                    traffic_started,
                )
            )
            prober.start()
            waiter = asyncio.create_task(traffic_started.wait())
            await asyncio.wait([traffic_task, waiter], return_when=asyncio.FIRST_COMPLETED)
            if not traffic_started.is_set():
                waiter.cancel()
                await traffic_task  # it failed before starting: raise its error
            sampler.previous = {**await asyncio.to_thread(sampler.read), "t": stats["t0"]}
            next_at = stats["t0"] + args.sample
            while not traffic_task.done():
                await asyncio.sleep(min(1.0, max(0.0, next_at - time.monotonic())))
                worker.check_alive()
                if time.monotonic() >= next_at:
                    samples.append(await sampler.sample(stats, probes))
                    print("\n".join(sample_table(samples[-1:])[2:]), flush=True)
                    next_at += args.sample
            await traffic_task
            # Drain: the last sample once the worker caught up (or after --drain seconds).
            deadline = time.monotonic() + args.drain
            waited = False
            while time.monotonic() < deadline:
                processed = metric_sum(
                    await asyncio.to_thread(worker_metrics, worker),
                    "openqoe_processor_messages_total",
                    'topic="raw"',
                )
                # The probes' events (3 each, warm-up included) go to the raw topic too.
                if (processed or 0) >= stats["produced"] + 3 * (len(probes) + 1):
                    break
                waited = True
                await asyncio.sleep(1.0)
            if waited:
                # The worker sets its lag gauge at each flush: wait for the next one (15 s).
                flushes = "openqoe_processor_flush_duration_seconds_count"
                before = metric_sum(await asyncio.to_thread(worker_metrics, worker), flushes)
                until = time.monotonic() + 15.0
                while before is not None and time.monotonic() < until:
                    await asyncio.sleep(0.5)
                    now = metric_sum(await asyncio.to_thread(worker_metrics, worker), flushes)
                    if (now or 0) > before:
                        break
            last = sampler.previous["t"] if sampler.previous else 0.0
            # Unless the worker had caught up already and the last sample is a few ms old.
            if waited or time.monotonic() - last >= 5.0:
                samples.append(await sampler.sample(stats, probes))
                print("\n".join(sample_table(samples[-1:])[2:]), flush=True)

        print("\n".join(sample_table([])), flush=True)
        asyncio.run(run())
        results["t0"] = stats["t0"]
    finally:
        stop.set()
        if prober is not None and prober.is_alive():
            prober.join(30)
        for process in reversed(started):
            exit_code = process.stop()
            if isinstance(process, Worker):
                worker_exit = exit_code
        if not args.keep_topics:
            names = [spec.name for spec in topics.specs()]
            with contextlib.suppress(Exception):
                deleted = asyncio.run(delete_topics(args.bootstrap, names, [app_id]))
                print(f"deleted {len(deleted)} topics", flush=True)
    results["worker_exit_code"] = worker_exit
    results["samples"] = samples
    t0 = results.pop("t0", 0.0)
    results["probes"] = [
        {**{k: v for k, v in p.items() if k != "at"}, "at_s": round(p["at"] - t0, 1)}
        for p in probes
    ]
    results["summary"] = summarise(samples, probes)
    results["machine"]["loadavg_after"] = os.getloadavg()
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
