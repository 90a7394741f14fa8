"""HTTP senders for Prometheus remote write and Loki push (run in pusher threads)."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from processors.errors import RetryableError
from processors.pusher import PushRequest
from processors.remote_write import (
    Sample,
    chunk,
    classify_response,
    compress,
    encode_write_request,
    headers_for,
)

MAX_SAMPLES_PER_REQUEST = 2000


def http_sender(
    url: str,
    content_headers: Mapping[str, str],
    auth: tuple[str, str] | None,
    timeout_s: float,
) -> Callable[[PushRequest], None]:
    """A send function: POST the request body, raise per the spec's retry rules."""
    session = requests.Session()

    def send(request: PushRequest) -> None:
        headers = dict(content_headers)
        if request.tenant:
            headers["X-Scope-OrgID"] = request.tenant
        try:
            response = session.post(
                url, data=request.body, headers=headers, auth=auth, timeout=timeout_s
            )
        except requests.RequestException as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
        classify_response(response.status_code, response.text, response.headers.get("Retry-After"))

    return send


def remote_write_requests(samples: list[Sample], tenant_label: str | None) -> list[PushRequest]:
    """Encode samples as remote-write requests, one tenant per request when asked."""
    groups: dict[str | None, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.labels.get(tenant_label) if tenant_label else None].append(sample)
    out = []
    for tenant, group in groups.items():
        for part in chunk(group, MAX_SAMPLES_PER_REQUEST):
            out.append(PushRequest(compress(encode_write_request(part)), tenant, len(part)))
    return out


REMOTE_WRITE_HEADERS = headers_for(None)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One Loki entry: bounded stream labels, time in ns, the line, structured metadata."""

    labels: Mapping[str, str]
    timestamp_ns: int
    line: str
    metadata: Mapping[str, str]


def loki_requests(lines: Iterable[LogLine], tenant_label: str | None) -> list[PushRequest]:
    """JSON push bodies (gzip), one per tenant when asked."""
    by_tenant: dict[str | None, dict[tuple[tuple[str, str], ...], list[list[Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    counts: dict[str | None, int] = defaultdict(int)
    for entry in lines:
        tenant = entry.labels.get(tenant_label) if tenant_label else None
        value: list[Any] = [str(entry.timestamp_ns), entry.line]
        if entry.metadata:
            value.append(dict(entry.metadata))
        by_tenant[tenant][tuple(sorted(entry.labels.items()))].append(value)
        counts[tenant] += 1
    out = []
    for tenant, streams in by_tenant.items():
        body = {
            "streams": [
                {"stream": dict(labels), "values": values} for labels, values in streams.items()
            ]
        }
        out.append(PushRequest(gzip.compress(json.dumps(body).encode()), tenant, counts[tenant]))
    return out


LOKI_HEADERS = {
    "Content-Type": "application/json",
    "Content-Encoding": "gzip",
    "User-Agent": "openqoe-processor/0.1.0",
}
