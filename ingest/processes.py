"""Several collector processes on one port, supervised by a parent process.

One collector process is one Python interpreter: it tops out at about one core
(docs/benchmarks.md). With ``INGEST_PROCESSES=N`` the parent starts N identical collector
processes that bind the same host and port with ``SO_REUSEPORT``, so the kernel spreads
incoming connections over them; each has its own Kafka producer, in-flight bound and rate
limiter. Metrics use prometheus_client's multiprocess mode: every process writes its values
to files in one directory and ``/metrics``, whichever process answers, reports the sum
over all of them, so a counter does not drop when a process is restarted.

The parent only supervises: it restarts a process that died (with a growing delay when it
keeps dying at once), and on SIGTERM/SIGINT it asks every process to shut down gracefully
(each drains its requests and flushes its producer) and exits 0 when they all did.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from ingest.config import IngestConfig

logger = logging.getLogger("ingest.processes")

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A process that dies sooner than this after starting counts as failing at once, and its
# next restart waits longer (up to MAX_RESTART_DELAY_S), so a broken setup does not spin.
_QUICK_DEATH_S = 10.0
_MAX_RESTART_DELAY_S = 30.0
GC_THRESHOLDS = (50_000, 20, 100)


def serve(config: IngestConfig, *, reuse_port: bool = False) -> None:
    """Run one collector process until SIGTERM/SIGINT (aiohttp's graceful shutdown)."""
    from aiohttp import web
    from prometheus_client import CollectorRegistry, disable_created_metrics, multiprocess

    from ingest.app import create_app

    disable_created_metrics()  # type: ignore[no-untyped-call]
    exposition = None
    if os.environ.get(METRICS_DIR_ENV):
        exposition = CollectorRegistry()
        multiprocess.MultiProcessCollector(exposition)  # type: ignore[no-untyped-call]
    app = create_app(config, exposition=exposition)
    _tune_gc()
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        reuse_port=reuse_port or None,
        shutdown_timeout=config.shutdown_timeout_s,
        access_log=None,
        print=None,
        handle_signals=True,
    )


def _tune_gc() -> None:
    """Fewer, later garbage collections: with CPython's defaults (a young collection
    every 700 allocations) the collector spent its tail latency in the GC; at 10k events/s
    in batches of 10 this cut p99 by about half (docs/benchmarks.md). Objects alive after
    start-up (modules, schemas, the app) are frozen out of every collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _child(config: IngestConfig, log_level: str) -> None:
    from openqoe_common.jsonlog import configure_logging

    configure_logging(log_level)
    serve(config, reuse_port=True)


@dataclass
class _Slot:
    """One of the N process slots and what the supervisor knows about it."""

    index: int
    process: BaseProcess | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0
    exit_codes: list[int | None] = field(default_factory=list)


class Supervisor:
    """Starts, watches and stops the collector processes."""

    def __init__(self, config: IngestConfig, log_level: str) -> None:
        self.config = config
        self.log_level = log_level
        self.slots = [_Slot(i) for i in range(config.processes)]
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._own_metrics_dir: Path | None = None

    def run(self) -> int:
        """Supervise until asked to stop; the exit status for the parent process."""
        metrics_dir = self._prepare_metrics_dir()
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        logger.info(
            "starting %d collector processes on %s:%d (metrics in %s)",
            len(self.slots),
            self.config.host,
            self.config.port,
            metrics_dir,
        )
        try:
            for slot in self.slots:
                self._start(slot)
            while not self._stopping:
                self._watch_once(timeout_s=0.5)
            return self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._own_metrics_dir is not None:
                shutil.rmtree(self._own_metrics_dir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process and s.process.pid is not None]

    # --- internals ------------------------------------------------------------------------

    def _prepare_metrics_dir(self) -> Path:
        configured = os.environ.get(METRICS_DIR_ENV)
        if configured:
            path = Path(configured)
            path.mkdir(parents=True, exist_ok=True)
            # Files of an earlier run would add its counts and its dead processes' gauges.
            for stale in path.glob("*.db"):
                stale.unlink()
        else:
            path = self._own_metrics_dir = Path(tempfile.mkdtemp(prefix="openqoe-collector-"))
        # Set before any child starts: prometheus_client picks its value store at import.
        os.environ[METRICS_DIR_ENV] = str(path)
        return path

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _start(self, slot: _Slot) -> None:
        process = self._context.Process(
            target=_child,
            args=(self.config, self.log_level),
            name=f"openqoe-collector-{slot.index}",
        )
        process.start()
        slot.process, slot.started = process, time.monotonic()
        logger.info("collector process %d started (pid %s)", slot.index, process.pid)

    def _watch_once(self, timeout_s: float) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None and now >= slot.restart_at:
                self._start(slot)
        live = [s.process.sentinel for s in self.slots if s.process is not None]
        multiprocessing.connection.wait(live, timeout=timeout_s)
        for slot in self.slots:
            process = slot.process
            if process is None or process.is_alive() or self._stopping:
                continue
            process.join()
            self._mark_dead(process)
            lived = time.monotonic() - slot.started
            slot.quick_deaths = slot.quick_deaths + 1 if lived < _QUICK_DEATH_S else 0
            delay = 0.0
            if slot.quick_deaths:
                delay = min(_MAX_RESTART_DELAY_S, 0.5 * 2**slot.quick_deaths)
            slot.exit_codes.append(process.exitcode)
            slot.process, slot.restart_at = None, time.monotonic() + delay
            logger.error(
                "collector process %d (pid %s) exited with %s after %.1fs; restarting in %.1fs",
                slot.index,
                process.pid,
                process.exitcode,
                lived,
                delay,
            )

    def _stop_all(self) -> int:
        running = [s.process for s in self.slots if s.process is not None]
        logger.info("stopping %d collector processes", len(running))
        for process in running:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_timeout_s + 5.0
        status = 0
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("collector process pid %s did not stop in time; killing", process.pid)
                process.kill()
                process.join()
                status = 1
            elif process.exitcode != 0:
                logger.error(
                    "collector process pid %s exited with %s", process.pid, process.exitcode
                )
                status = 1
            self._mark_dead(process)
        return status

    @staticmethod
    def _mark_dead(process: BaseProcess) -> None:
        if process.pid is None:
            return
        from prometheus_client import multiprocess

        # Drops the process's live gauges; its counters and histograms stay in the sum.
        multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
