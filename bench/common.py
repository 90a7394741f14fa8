"""What both benchmarks measure with: /proc CPU accounting, ports, percentiles, tables."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a whole process (all threads), in seconds; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (e.g. the processes of a multi-process collector)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def proc_tree_cpu_s(pid: int) -> float | None:
    """utime + stime of ``pid`` and its live descendants; None if ``pid`` is gone."""
    own = proc_cpu_s(pid)
    if own is None:
        return None
    return own + sum(proc_cpu_s(child) or 0.0 for child in descendants(pid))


def machine_busy_s() -> float:
    """CPU-seconds the whole machine spent busy (all CPUs) since boot, from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def find_broker_pid(bootstrap: str) -> int | None:
    """The local ``kafka.Kafka`` JVM: the only one in /proc, else the one of kafka-local.sh."""
    if not bootstrap.startswith(("127.0.0.1:", "localhost:")):
        return None
    candidates: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline and cmdline[0].endswith(b"java"):
            candidates.append(int(entry.name))
    if len(candidates) == 1:
        return candidates[0]
    pid_file = REPO / ".local" / "kafka" / "run" / "kafka.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        if pid in candidates:
            return pid
    return None


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    """SIGTERM (a clean shutdown), SIGKILL only after ``timeout_s``; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values: the ceil(q/100 x n)-th value."""
    if not sorted_values:
        return None
    rank = max(1, int(-(-q * len(sorted_values) // 100)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


# A broker with thousands of leftover topics answers slower and works more in the
# background: the collector's p99 at 10k events/s went from ~14 ms to 60-200 ms on one.
MANY_TOPICS = 200


def broker_topic_count(bootstrap: str) -> int | None:
    """Topics on the broker (None if it cannot be asked); warns when there are many."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def count() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            return len(await admin.list_topics())
        finally:
            await admin.close()

    try:
        n = asyncio.run(count())
    except Exception:  # noqa: BLE001 - informational only
        return None
    if n > MANY_TOPICS:
        print(
            f"WARNING: the broker has {n} topics; leftover test topics slow it down and "
            "distort latency. Delete them first (tests delete their own since session 2).",
            flush=True,
        )
    return n


def spy_stacks(path: Path) -> Iterator[tuple[list[str], int]]:
    """(frames root first, sample count) of each line of a ``py-spy record -f raw`` file."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield [f for f in stack.split(";") if f], int(count)


def processor_env(
    topics: Any, *, app_id: str, data_dir: Path, remote_write_url: str
) -> dict[str, str]:
    """The environment that points a processor worker at ``topics`` (an
    ``ingest.topics.TopicsConfig``), with a RocksDB store; the tests and the processor
    benchmark add their own timers."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": topics.kafka_bootstrap_servers,
        "INGEST_RAW_TOPIC": topics.raw_topic,
        "PROCESSOR_VIEWS_TOPIC": topics.views_topic,
        "PROCESSOR_CONTROL_TOPIC": topics.control_topic,
        "OPENQOE_RAW_PARTITIONS": str(topics.raw_partitions),
        "PROCESSOR_APP_ID": app_id,
        "PROCESSOR_DATA_DIR": str(data_dir),
        "PROCESSOR_STORE": "rocksdb://",
        "PROCESSOR_REMOTE_WRITE_URL": remote_write_url,
    }


def bench_topics(bootstrap: str, prefix: str, suffix: str, raw_partitions: int) -> Any:
    """A ``TopicsConfig`` whose every ``*_topic`` has a bench name (``<prefix>.<kind>.<suffix>``)
    and one hour of retention, so a benchmark never creates or checks a shared topic."""
    import dataclasses

    from ingest.topics import TopicsConfig

    overrides: dict[str, Any] = {}
    for f in dataclasses.fields(TopicsConfig):
        if f.name.endswith("_topic"):
            overrides[f.name] = f"{prefix}.{f.name.removesuffix('_topic')}.{suffix}"
        elif f.name.endswith("_retention_ms"):
            overrides[f.name] = 3_600_000
    return TopicsConfig(
        kafka_bootstrap_servers=bootstrap,
        raw_partitions=raw_partitions,
        rejected_partitions=1,
        **overrides,
    )


def git_provenance(repo: Path) -> dict[str, Any]:
    """The commit a benchmark ran, and whether processors/ had uncommitted changes."""
    git = ["git", "-C", str(repo)]
    head = subprocess.run(  # noqa: S603 - git on our own repository
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, check=False
    )
    dirty = subprocess.run(  # noqa: S603
        [*git, "status", "--porcelain", "processors"], capture_output=True, check=False
    )
    return {
        "git_head": head.stdout.decode().strip(),
        "processors_modified_in_work_tree": bool(dirty.stdout.strip()),
    }
