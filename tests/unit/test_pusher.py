"""The pusher: retries 5xx/429 in order, drops 4xx and overflow, and counts both."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from processors.pusher import Pusher, PushMetrics, PushRequest
from processors.sinks import REMOTE_WRITE_HEADERS, http_sender


class Receiver:
    """A loopback HTTP server answering with scripted statuses."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                if status < 300:
                    receiver.bodies.append(body)
                    receiver.headers.append(dict(self.headers))
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/write"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_retries_in_order_then_delivers_each_request_once(receiver: Receiver) -> None:
    registry = CollectorRegistry()
    pusher = Pusher(
        "remote_write",
        http_sender(receiver.url, REMOTE_WRITE_HEADERS, None, 5),
        10,
        PushMetrics(registry),
    )
    receiver.statuses = [503, 429, 500]
    pusher.start()
    for i in range(3):
        pusher.submit(PushRequest(f"req{i}".encode(), "tenant-a", 1))
    assert pusher.wait_idle(20)
    assert receiver.bodies == [b"req0", b"req1", b"req2"]
    assert receiver.headers[0]["X-Scope-OrgID"] == "tenant-a"
    assert receiver.headers[0]["Content-Encoding"] == "snappy"
    assert (
        value(
            registry, "openqoe_processor_push_requests_total", target="remote_write", result="retry"
        )
        == 3
    )
    assert (
        value(registry, "openqoe_processor_push_requests_total", target="remote_write", result="ok")
        == 3
    )
    pusher.stop(1)


def test_client_errors_are_dropped_and_counted_not_retried(receiver: Receiver) -> None:
    registry = CollectorRegistry()
    pusher = Pusher(
        "loki", http_sender(receiver.url, {}, ("user", "pw"), 5), 10, PushMetrics(registry)
    )
    receiver.statuses = [400]
    pusher.start()
    pusher.submit(PushRequest(b"bad", None, 7))
    pusher.submit(PushRequest(b"good", None, 1))
    assert pusher.wait_idle(10)
    assert receiver.bodies == [b"good"]
    assert receiver.headers[0]["Authorization"].startswith("Basic ")
    assert (
        value(
            registry, "openqoe_processor_push_dropped_items_total", target="loki", reason="rejected"
        )
        == 7
    )
    pusher.stop(1)


def test_overflow_drops_the_oldest_and_counts_items() -> None:
    registry = CollectorRegistry()
    pusher = Pusher("remote_write", lambda request: None, 2, PushMetrics(registry))  # not started
    for i in range(5):
        pusher.submit(PushRequest(b"x", None, 10 + i))
    assert (
        value(
            registry,
            "openqoe_processor_push_dropped_items_total",
            target="remote_write",
            reason="overflow",
        )
        == 10 + 11 + 12
    )
    assert value(registry, "openqoe_processor_push_pending_requests", target="remote_write") == 2
