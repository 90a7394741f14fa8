"""One batch of one topic partition in, each changed view and aggregate written once.

The decisions are ``processors.step``'s, message by message, in offset order, on views and
aggregates held in memory for the batch. Then, with no await in between (so a rebalance or
shutdown cannot cut it in two), every changed view is written, then every changed
aggregate. Both live in one table, so their changelog writes land in that order in the
partition's changelog: if an aggregate write is durable, so are the view writes before it.

Crash safety (processors.step) with coalesced writes: a view written by a batch records
the last message it reflects (``last_msg``) and, as ``pending``, *all* the aggregate deltas
applied on its behalf in that batch (replayed ones included). If the batch's aggregate
write was lost, the aggregate's offset is below ``last_msg``, and replaying that message
applies them all; if it was not, nothing is applied twice.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from processors.aggregates import Aggregate, aggregate_key, apply_once, new_aggregate
from processors.partition_index import PartitionIndex
from processors.state_codec import decode_view, encode_aggregate, encode_view
from processors.step import CONTROL, RAW, Step, on_close, on_event, on_purge
from processors.table_io import TableIO
from processors.view import Deltas, State, merge_deltas
from schemas import AvroCodecError, SectionReader

logger = logging.getLogger(__name__)
VIEW_PREFIX = b"v|"


@dataclass(frozen=True, slots=True)
class Output:
    """What a batch publishes besides its table writes."""

    summaries: list[tuple[int, dict[str, Any]]]  # (partition, ViewSummary record)
    # (labels, kind, time_ms, body, ids) of each Loki line
    log_lines: list[tuple[Mapping[str, str], str, int, Mapping[str, Any], Mapping[str, Any]]]
    kinds: Counter[str]


class BatchStep:
    def __init__(
        self,
        table: TableIO,
        index_for: Callable[[int], PartitionIndex],
        drop_index: Callable[[int], None],
        decode_event: Callable[[bytes], dict[str, Any]],
        labels_for: Callable[[Mapping[str, Any]], dict[str, str]],
        clock: Callable[[], float],
        view_timeout_ms: float,
        retention_ms: float,
        decode_known: Callable[[bytes], dict[str, Any]] | None = None,
        sections: SectionReader | None = None,
    ) -> None:
        self._table = table
        self._index_for = index_for
        self._drop_index = drop_index  # forget a partition's index: rebuilt from the table
        self._decode_event = decode_event
        # For an event of a view the step already has: only what processors.step reads of
        # it then (schemas.PLAYER_EVENT_KNOWN_VIEW_FIELDS); a new view needs every field.
        self._decode_known = decode_known or decode_event
        # Faster still, for values of the current schema: the head up to the view id, then
        # the middle (session, device, player, video...) skipped without parsing when it is
        # the same bytes as in the view's last event (PartitionIndex.middle), then the tail.
        self._sections = sections
        self._labels_for = labels_for
        self._clock = clock
        self._timeout_ms = view_timeout_ms
        self._retention_ms = retention_ms

    def run(self, tag: str, partition: int, messages: Sequence[tuple[int, bytes]]) -> Output:
        """Process ``messages`` ((offset, value), ascending) of one partition of ``tag``."""
        try:
            return self._run(tag, partition, messages)
        except BaseException:
            # The step changes cached views in place; what it changed was not written.
            self._drop_index(partition)
            raise

    def _run(self, tag: str, partition: int, messages: Sequence[tuple[int, bytes]]) -> Output:
        index = self._index_for(partition)
        open_view = index.open_view
        out = Output([], [], Counter())
        views: dict[bytes, State | None] = {}  # the batch's view of the table
        written: dict[bytes, State | None] = {}  # to write (None: delete), in first-change order
        pending: dict[bytes, Deltas] = {}  # aggregate deltas applied for a view in this batch
        changed_aggs: dict[bytes, Aggregate] = {}
        now_ms = int(self._clock() * 1000)

        def view_for(key: bytes) -> State | None:
            if key in views:
                return views[key]
            view = open_view(key)
            if view is None:  # not open: closed, or not in the table
                stored = self._table.get(partition, key)
                view = None if stored is None else decode_view(key[2:].decode(), stored)
            views[key] = view
            return view

        def agg_offset(view: State | None, offset: int) -> int:
            # Needed only for a message the view already reflects (a replay after a crash).
            if view is None or view["offsets"].get(tag, -1) < offset:
                return -1
            agg = index.aggregates.get(aggregate_key(partition, view["labels"]).encode())
            return -1 if agg is None else int(agg["offsets"].get(tag, -1))

        for offset, value in messages:
            step, key, view = self._decide(tag, index, offset, value, now_ms, view_for, agg_offset)
            if step is None or key is None:
                out.kinds["undecodable"] += 1
                continue
            out.kinds[step.kind] += 1
            if step.delete:
                views[key] = written[key] = None
            elif step.view is not None:
                views[key] = written[key] = step.view
            current = step.view or view
            if step.deltas and current is not None:
                akey = aggregate_key(partition, current["labels"]).encode()
                agg = index.aggregates.get(akey) or new_aggregate(partition, current["labels"])
                if apply_once(agg, tag, offset, step.deltas):
                    index.aggregates[akey] = changed_aggs[akey] = agg
                    merge_deltas(pending.setdefault(key, {}), step.deltas)
            if step.summary is not None:
                summary = step.summary
                out.summaries.append((partition, summary))
                out.log_lines.append(
                    (summary["labels"], "view", summary["end_time"], summary, summary)
                )
            if step.fatal_error is not None and current is not None:
                error = step.fatal_error
                line = {
                    "event_type": "error",
                    "view_id": error["view_id"],
                    "error": error.get("data"),
                    "labels": current["labels"],
                }
                out.log_lines.append(
                    (current["labels"], "error", int(error["event_time"]), line, current)
                )

        # The writes: views first, then aggregates (see the module docstring). No await.
        table = self._table
        for key, view in written.items():
            if view is None:
                table.delete(partition, key)
                index.note_view(key, None, self._timeout_ms, self._retention_ms)
                continue
            view["pending"] = pending.get(key, {})
            index.note_view(key, view, self._timeout_ms, self._retention_ms)
            # An open view's leading fields are packed once (None: closed, packed in full).
            table.set(partition, key, encode_view(view, index.prefix(key)))
        for akey, agg in changed_aggs.items():
            table.set(partition, akey, encode_aggregate(agg))
        return out

    def _decide(
        self,
        tag: str,
        index: PartitionIndex,
        offset: int,
        value: bytes,
        now_ms: int,
        view_for: Callable[[bytes], State | None],
        agg_offset: Callable[[State | None, int], int],
    ) -> tuple[Step | None, bytes | None, State | None]:
        partition = index.partition
        if tag == RAW:
            try:
                event, key, view = self._read_event(index, value, view_for)
            except AvroCodecError as exc:
                logger.error("undecodable message p%s@%s: %s", partition, offset, exc)
                return None, None, None
            step = on_event(
                view, agg_offset(view, offset), event, offset, partition, self._labels_for
            )
            return step, key, view
        try:
            request = json.loads(value)
            op = request["op"]
            key = VIEW_PREFIX + str(request["view_id"]).encode()
        except (ValueError, KeyError, TypeError):
            logger.error("undecodable control message p%s@%s", partition, offset)
            return None, None, None
        view = view_for(key)
        if op == "close":
            step = on_close(view, agg_offset(view, offset), offset, now_ms, self._timeout_ms)
        elif op == "purge":
            step = on_purge(view, now_ms, self._retention_ms)
        else:
            return None, None, None
        return step, key, view

    def _read_event(
        self, index: PartitionIndex, value: bytes, view_for: Callable[[bytes], State | None]
    ) -> tuple[dict[str, Any], bytes, State | None]:
        """The event in ``value``, its view's key and the view (None: a new one). Of an
        event of a known view, only what processors.step reads of it then."""
        sections = self._sections
        if type(value) is not bytes:
            value = bytes(value)  # the section reader compares and slices bytes
        head = None if sections is None else sections.head(value)
        if sections is None or head is None:  # no sections, or another writer schema
            event = self._decode_known(value)
            key = VIEW_PREFIX + event["view_id"].encode()
            view = view_for(key)
            if view is None:
                event = self._decode_event(value)
            return event, key, view
        event, pos = head
        key = VIEW_PREFIX + event["view_id"].encode()
        view = view_for(key)
        # A new view needs every field; an error is logged with all of its data.
        if view is None or event["event_type"] == "error":
            return self._decode_event(value), key, view
        middle = index.middle(key)
        if middle is not None and value.startswith(middle, pos):
            pos += len(middle)  # the same bytes parse the same way: the tail starts here
        else:
            end = sections.middle_end(value, pos)
            index.keep_middle(key, value[pos:end])
            pos = end
        event.update(sections.tail(value, pos))
        return event, key, view


__all__ = ["CONTROL", "RAW", "BatchStep", "Output"]
