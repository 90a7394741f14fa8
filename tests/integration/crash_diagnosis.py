"""When a crash test fails: where did the wrong view's events and state writes go?

Prints, for each view whose summary differs from the ground truth, its raw events
(partition, offset, type) and every changelog record of its table key, so a failure
report says whether a write was lost, skipped or applied twice.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer

from ingest.topics import TopicsConfig
from processors.state_codec import decode_view
from schemas import player_event_reader


async def _read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        partitions = consumer.assignment()
        while not partitions:
            await consumer.getmany(timeout_ms=100)
            partitions = consumer.assignment()
        end = await consumer.end_offsets(list(partitions))
        records: list[Any] = []
        while True:
            behind = [tp for tp in partitions if await consumer.position(tp) < end[tp]]
            if not behind:
                break
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def explain(
    topics: TopicsConfig,
    app_id: str,
    expected: dict[str, dict[str, Any]],
    summaries: dict[str, dict[str, Any]],
) -> str:
    lines = await _unreflected(topics, app_id, set(expected))
    bad = sorted(
        view_id
        for view_id, want in expected.items()
        if view_id not in summaries
        or any(summaries[view_id].get(k) != v for k, v in want.items() if not isinstance(v, float))
    )
    if not bad:
        return "\n".join([*lines, "no summary differs from the ground truth"])
    lines.append(f"views with wrong summaries: {bad}")
    reader = player_event_reader()
    raw = await _read_all(topics.kafka_bootstrap_servers, topics.raw_topic)
    changelog = await _read_all(topics.kafka_bootstrap_servers, f"{app_id}-views-changelog")
    for view_id in bad:
        want, got = expected[view_id], summaries.get(view_id, {})
        lines.append(f"--- {view_id}")
        lines.append(
            "  differs: " + str({k: (got.get(k), v) for k, v in want.items() if got.get(k) != v})
        )
        for record in raw:
            if record.key == view_id.encode():
                event = reader.decode(record.value)
                lines.append(
                    f"  raw p{record.partition}@{record.offset} {event['event_type']}"
                    f" t={event['event_time']}"
                )
        key = f"v|{view_id}".encode()
        for record in changelog:
            if record.key == key:
                value = None if record.value is None else decode_view(view_id, record.value)
                brief = (
                    "tombstone"
                    if value is None
                    else f"offsets={value['offsets']} last={value['last_msg']}"
                    f" closed={value['closed']}"
                )
                lines.append(f"  changelog p{record.partition}@{record.offset} {brief}")
    return "\n".join(lines)


async def _unreflected(topics: TopicsConfig, app_id: str, view_ids: set[str]) -> list[str]:
    """Raw events that no changelog write of their view reflects (a write reflects every
    raw offset up to its own, since a batch writes a view once): their effect was lost."""
    reader = player_event_reader()
    raw = await _read_all(topics.kafka_bootstrap_servers, topics.raw_topic)
    changelog = await _read_all(topics.kafka_bootstrap_servers, f"{app_id}-views-changelog")
    written: dict[str, list[tuple[int, int, Any]]] = {}
    for record in changelog:
        key = record.key.decode()
        if key.startswith("v|") and record.value is not None:
            value = decode_view(key[2:], record.value)
            written.setdefault(key[2:], []).append(
                (record.offset, value["offsets"].get("raw", -1), value["last_msg"])
            )
    lines = []
    for record in raw:
        view_id = record.key.decode()
        if view_id not in view_ids:
            continue
        writes = written.get(view_id, [])
        if not any(raw_offset >= record.offset for _, raw_offset, _ in writes):
            event = reader.decode(record.value)
            lines.append(
                f"UNREFLECTED raw p{record.partition}@{record.offset} {event['event_type']} "
                f"view {view_id}; its view's writes (changelog offset, raw offset, last_msg): "
                f"{writes}"
            )
    return lines or ["every raw event is reflected by a changelog write of its view"]
