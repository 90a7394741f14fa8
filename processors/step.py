"""One message in, the writes and outputs it causes: the processor's decision logic.

The batch step (``processors.batch``) looks up state, calls one of these functions per
message and carries out the returned ``Step``s in a fixed order: **views first, then
aggregates**.
Both live in one table, so their changelog writes land, in that order, in the same
changelog partition; if the aggregate write is durable, so is the view write.

A view write records the message it reflects (``last_msg``) and the aggregate deltas
that message caused (``pending``). After a crash, a replayed message that the view
already reflects is not recomputed: its recorded deltas are applied to the aggregate
unless the aggregate already has them. So every message is counted exactly once, and a
decision (such as closing a view) once durable is never taken differently on replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.view import (
    RECENT_IDS,
    Deltas,
    State,
    apply_event,
    close,
    merge_deltas,
    new_view,
    view_summary,
)

ID_HASH_BYTES = 6
RAW = "raw"
CONTROL = "ctl"


@dataclass(slots=True)
class Step:
    """What to do for one message."""

    kind: str  # applied | new | closed | late | duplicate | replayed | ignored
    view: State | None = None  # write this view (before the aggregate)
    delete: bool = False  # delete the view instead
    deltas: Deltas | None = None  # apply once to the view's aggregate
    summary: dict[str, Any] | None = None  # the view ended: publish its summary
    fatal_error: Mapping[str, Any] | None = None  # the event that failed the view
    outputs: list[Any] = field(default_factory=list)


def event_id_hash(event_id: str) -> bytes:
    """What a view keeps of an event id to recognise a resend: 6 bytes of BLAKE2b.

    Kept instead of the id (~36 bytes) so a view stays small; two different ids of one view
    collide with a chance of about 1 in 10^13 per event (32 ids kept, 48-bit hashes).
    """
    return hashlib.blake2b(event_id.encode(), digest_size=ID_HASH_BYTES).digest()


def seen_recently(recent: bytes, digest: bytes) -> bool:
    """Whether ``digest`` is one of the hashes concatenated in ``recent``."""
    at = recent.find(digest)
    while at >= 0:
        if at % ID_HASH_BYTES == 0:
            return True
        at = recent.find(digest, at + 1)
    return False


def _record(view: State, topic: str, offset: int, pending: Deltas) -> None:
    view["offsets"][topic] = offset
    view["last_msg"] = [topic, offset]
    view["pending"] = pending


def _replay(
    view: State,
    topic: str,
    offset: int,
    agg_offset: int,
    event: Mapping[str, Any] | None = None,
) -> Step:
    """The view already reflects this message: re-apply its recorded deltas if needed,
    and publish again what closing the view published.

    The summary is published after the view write and is only known to be in Kafka once
    the message's offset is committed; a replayed message was not committed, so its
    summary may have been lost with the crash. Consumers get it at least once (the same
    record again if it was not lost).
    """
    step = Step("replayed")
    if view["last_msg"] == [topic, offset] and view["pending"] and agg_offset < offset:
        step.deltas = view["pending"]
    if view.get("closed_by") == [topic, offset]:
        step.summary = view_summary(view)
        if event is not None and event["event_type"] == "error":
            step.fatal_error = event
    return step


def on_event(
    view: State | None,
    agg_offset: int,
    event: Mapping[str, Any],
    offset: int,
    partition: int,
    labels_for: Callable[[Mapping[str, Any]], dict[str, str]],
) -> Step:
    """A player event from the raw topic at ``offset``.

    ``agg_offset`` is the raw offset last applied to the view's aggregate (-1 if none).
    """
    if view is not None and view["offsets"].get(RAW, -1) >= offset:
        return _replay(view, RAW, offset, agg_offset, event)

    kind = "applied"
    if view is None:
        view = new_view(event, labels_for(event), partition)
        view["live"]["c"] = {"views_started": 1}
        kind = "new"
    elif view["closed"]:
        late: Deltas = {"c": {"late_events": 1}}
        _record(view, RAW, offset, late)
        return Step("late", view=view, deltas=late)

    event_id = event.get("event_id")
    if event_id is not None:
        digest = event_id_hash(event_id)
        if seen_recently(view["recent_ids"], digest):
            merge_deltas(view["live"], {"c": {"duplicate_events": 1}})
            _record(view, RAW, offset, {})
            return Step("duplicate", view=view)
        view["recent_ids"] = (view["recent_ids"] + digest)[-RECENT_IDS * ID_HASH_BYTES :]

    # The event's live contributions go straight into the view's (summed either way).
    reason = apply_event(view, event, view["live"])
    if reason is None:
        _record(view, RAW, offset, {})
        return Step(kind, view=view)

    pending: Deltas = view["live"]
    view["live"] = {}
    summary = close(view, reason, pending)
    view["closed_by"] = [RAW, offset]
    _record(view, RAW, offset, pending)
    fatal = event if event["event_type"] == "error" else None
    return Step("closed", view=view, deltas=pending, summary=summary, fatal_error=fatal)


def on_close(
    view: State | None, agg_offset: int, offset: int, now_ms: int, timeout_ms: float
) -> Step:
    """A close request from the expiry scan: end the view if it is still idle."""
    if view is None:
        return Step("ignored")
    if view["offsets"].get(CONTROL, -1) >= offset:
        return _replay(view, CONTROL, offset, agg_offset)
    if view["closed"] or now_ms - view["last_received_ms"] < timeout_ms:
        return Step("ignored")
    pending: Deltas = {}
    merge_deltas(pending, view["live"])
    view["live"] = {}
    summary = close(view, "timeout", pending)
    view["closed_by"] = [CONTROL, offset]
    _record(view, CONTROL, offset, pending)
    return Step("closed", view=view, deltas=pending, summary=summary)


def on_purge(view: State | None, now_ms: int, retention_ms: float) -> Step:
    """Forget an ended view once late events for it are no longer expected."""
    if view is None or not view["closed"] or now_ms - view["last_received_ms"] < retention_ms:
        return Step("ignored")
    return Step("purged", delete=True)
