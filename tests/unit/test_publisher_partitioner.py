"""The collector's partitioner puts every key on the partition aiokafka's default would."""

from __future__ import annotations

import random
import uuid

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from ingest.publisher import KeyPartitioner, murmur2


def test_murmur2_equals_aiokafkas_for_every_length_and_byte() -> None:
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(200) for _ in range(20)]
    keys += [b"\xff" * n for n in range(16)] + [b"\x00" * n for n in range(16)]
    keys += [str(uuid.uuid4()).encode() for _ in range(2000)]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key


def test_murmur2_matches_the_java_clients_reference_values() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed ints there).
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, expected in cases.items():
        assert murmur2(key) == expected & 0xFFFFFFFF, key


def test_keyed_messages_land_where_the_default_partitioner_puts_them() -> None:
    default = DefaultPartitioner()
    ours = KeyPartitioner()
    for count in (1, 3, 12, 50):
        partitions = list(range(count))
        for _ in range(500):
            key = str(uuid.uuid4()).encode()
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)


def test_unkeyed_messages_go_to_some_available_partition() -> None:
    assert KeyPartitioner()(None, [0, 1, 2], [1]) == 1
    assert KeyPartitioner()(None, [0, 1, 2], []) in (0, 1, 2)
