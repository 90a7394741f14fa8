"""A fake Loki push endpoint that checks requests as strictly as Loki does.

Loki cannot be installed here (AGPL, no package), so tests push to this instead. It
implements the checks of reference/protocols.md §3 (JSON body, gzip, string timestamps,
2-3 element entries, label name rules and limits, structured metadata of strings,
line size, sample age, tenant header), stores accepted entries, de-duplicates identical
entries like the ingester, and can be told to fail the next requests.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import threading
import time
from typing import Any

from aiohttp import web

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_LABELS = 15
MAX_LINE_BYTES = 256 * 1024
MAX_AGE_NS = 7 * 24 * 3600 * 10**9
GRACE_NS = 10 * 60 * 10**9


class FakeLoki:
    def __init__(self, require_tenant: bool = False) -> None:
        self.require_tenant = require_tenant
        self.entries: dict[
            tuple[str | None, tuple[tuple[str, str], ...], str, str], dict[str, str]
        ] = {}
        self.requests = 0
        self.rejected: list[str] = []
        self.fail_next = 0
        self.fail_status = 503
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle (runs in its own thread) ---
    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            # Decode gzip ourselves, as Loki does, to check the encoding really is gzip.
            app = web.Application(handler_args={"auto_decompress": False})
            app.router.add_post("/loki/api/v1/push", self._push)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/loki/api/v1/push"
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # --- what tests read ---
    def lines(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            out = []
            for (tenant, labels, ts, line), metadata in self.entries.items():
                label_map = dict(labels)
                if kind is None or label_map.get("kind") == kind:
                    out.append(
                        {
                            "tenant": tenant,
                            "labels": label_map,
                            "ts": ts,
                            "line": line,
                            "metadata": metadata,
                        }
                    )
            return out

    # --- the endpoint ---
    async def _push(self, request: web.Request) -> web.Response:
        with self._lock:
            self.requests += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return web.Response(status=self.fail_status, text="injected failure")
        tenant = request.headers.get("X-Scope-OrgID")
        if self.require_tenant and not tenant:
            return web.Response(status=401, text="no org id")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type != "application/json":
            return self._bad(f"unsupported Content-Type {content_type!r}")
        body = await request.read()
        encoding = request.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except OSError:
                return self._bad("bad gzip body")
        elif encoding not in ("", "identity"):
            return self._bad(f"unsupported Content-Encoding {encoding!r}")
        try:
            document = json.loads(body)
        except ValueError:
            return self._bad("invalid JSON")
        streams = document.get("streams") if isinstance(document, dict) else None
        if not isinstance(streams, list):
            return self._bad("streams must be a list")
        if not streams:
            return web.Response(status=422, text="no streams")
        errors = []
        now_ns = time.time_ns()
        for stream in streams:
            error = self._check_stream(stream, now_ns)
            if error:
                errors.append(error)
                continue
            labels = tuple(sorted(stream["stream"].items()))
            with self._lock:
                for value in stream["values"]:
                    metadata = value[2] if len(value) == 3 else {}
                    self.entries[(tenant, labels, value[0], value[1])] = metadata
        if errors:
            return self._bad("; ".join(errors))
        return web.Response(status=204)

    def _bad(self, message: str) -> web.Response:
        with self._lock:
            self.rejected.append(message)
        return web.Response(status=400, text=message)

    @staticmethod
    def _check_stream(stream: Any, now_ns: int) -> str | None:
        if not isinstance(stream, dict) or not isinstance(stream.get("stream"), dict):
            return "stream must be an object with a 'stream' label map"
        labels = stream["stream"]
        if not labels:
            return "missing_labels"
        if len(labels) > MAX_LABELS:
            return "max_label_names_per_series"
        for name, value in labels.items():
            if not LABEL_NAME.fullmatch(name):
                return f"invalid_labels: {name!r}"
            if not isinstance(value, str) or not value:
                return f"invalid label value for {name!r}"
            if len(name) > 1024 or len(value) > 2048:
                return "label too long"
        values = stream.get("values")
        if not isinstance(values, list):
            return "values must be a list"
        for value in values:
            if not isinstance(value, list) or not 2 <= len(value) <= 3:
                return "array must have at least 2 and up to 3 values"
            ts, line = value[0], value[1]
            if not isinstance(ts, str) or not ts.isdigit():
                return "timestamp must be a string of nanoseconds"
            if not isinstance(line, str):
                return "line must be a string"
            if len(line.encode()) > MAX_LINE_BYTES:
                return "line_too_long"
            if int(ts) < now_ns - MAX_AGE_NS:
                return "greater_than_max_sample_age"
            if int(ts) > now_ns + GRACE_NS:
                return "too_far_in_future"
            if len(value) == 3:
                metadata = value[2]
                if not isinstance(metadata, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
                ):
                    return "structured metadata must map strings to strings"
        return None
