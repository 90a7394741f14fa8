"""``python -m schemas.tail``: print the records of an OpenQoE topic as JSON lines.

For people, not pipelines: shows what the collector (or the processor) wrote, decoded
with the same codec the services use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys

from aiokafka import AIOKafkaConsumer

from schemas.codec import AvroCodecError, SingleObjectCodec, load_schema

_SCHEMA_BY_TOPIC_PREFIX = {
    "qoe.events.raw": "player_event",
    "qoe.events.rejected": "rejected_event",
    "qoe.views": "view_summary",
}


async def tail(servers: str, topic: str, schema: str, from_beginning: bool, limit: int) -> None:
    codec = SingleObjectCodec(load_schema(schema), logical_types=False)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    seen = 0
    try:
        async for record in consumer:
            try:
                value = codec.decode(record.value)
            except AvroCodecError as exc:
                value = {"undecodable": str(exc)}
            out = {"partition": record.partition, "offset": record.offset, "value": value}
            sys.stdout.write(json.dumps(out, default=str) + "\n")
            sys.stdout.flush()
            seen += 1
            if limit and seen >= limit:
                return
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m schemas.tail", description=__doc__)
    parser.add_argument("topic", nargs="?", default="qoe.events.raw")
    parser.add_argument("--schema", help="schema name (default: from the topic name)")
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="stop after N records")
    args = parser.parse_args()
    schema = args.schema or _SCHEMA_BY_TOPIC_PREFIX.get(args.topic)
    if schema is None:
        parser.error(f"no default schema for topic {args.topic}; pass --schema")
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail(servers, args.topic, schema, args.from_beginning, args.limit))


if __name__ == "__main__":
    main()
