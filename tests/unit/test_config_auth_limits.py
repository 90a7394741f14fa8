"""Collector settings, ingest keys and back-pressure, without I/O."""

from __future__ import annotations

import pytest

from ingest.auth import KeyRing
from ingest.config import IngestConfig, Secret
from ingest.errors import ConfigError, OverloadedError, RateLimitedError, UnauthorizedError
from ingest.limits import InFlightLimit, OrgRateLimit


def test_from_env_reads_every_setting() -> None:
    config = IngestConfig.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "INGEST_PORT": "9000",
            "INGEST_API_KEYS": "org_a:key-1, org_b:key-2,org_a:key-3",
            "INGEST_CORS_ORIGINS": "https://a.example, https://b.example",
            "INGEST_MAX_BODY_BYTES": "2048",
            "INGEST_MAX_DECOMPRESSED_BYTES": "4096",
            "INGEST_MAX_EVENTS_PER_BATCH": "10",
            "INGEST_ORG_RATE_LIMIT_EPS": "12.5",
            "INGEST_COMPRESSION_TYPE": "none",
            "INGEST_PROCESSES": "4",
        }
    )
    assert config.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert config.port == 9000
    assert dict(config.api_keys) == {"key-1": "org_a", "key-2": "org_b", "key-3": "org_a"}
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert (config.max_body_bytes, config.max_decompressed_bytes) == (2048, 4096)
    assert config.org_rate_limit_eps == 12.5
    assert config.compression_type is None
    assert config.auth_disabled is False
    assert config.processes == 4


def test_keys_file_is_merged(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "keys"  # type: ignore[operator]
    path.write_text("# comment\norg_c:key-c\n")
    config = IngestConfig.from_env({"INGEST_API_KEYS_FILE": str(path)})
    assert dict(config.api_keys) == {"key-c": "org_c"}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "No ingest keys are configured"),
        (
            {"INGEST_AUTH_DISABLED": "true", "INGEST_PORT": "eighty"},
            "'INGEST_PORT' has value 'eighty'. Not a valid int.",
        ),
        (
            {"INGEST_AUTH_DISABLED": "maybe"},
            "'INGEST_AUTH_DISABLED' has value 'maybe'. Not a valid bool.",
        ),
        ({"INGEST_API_KEYS": "no-colon-secret"}, "entry 1 is not of the form org_id:key"),
        (
            {"INGEST_AUTH_DISABLED": "1", "INGEST_MAX_IN_FLIGHT_EVENTS": "10"},
            "INGEST_MAX_IN_FLIGHT_EVENTS must be >= INGEST_MAX_EVENTS_PER_BATCH",
        ),
        ({"INGEST_AUTH_DISABLED": "1", "INGEST_CORS_ORIGINS": "*,https://a"}, "either '*'"),
        ({"INGEST_API_KEYS_FILE": "/does/not/exist"}, "cannot read /does/not/exist"),
        ({"INGEST_AUTH_DISABLED": "1", "INGEST_PROCESSES": "0"}, "INGEST_PROCESSES must be"),
    ],
)
def test_bad_settings_fail_with_a_message_naming_the_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        IngestConfig.from_env(environ)
    assert message in str(info.value)


def test_secrets_never_show() -> None:
    with pytest.raises(ConfigError) as info:
        IngestConfig.from_env({"INGEST_API_KEYS": "topsecretvalue"})
    assert "topsecretvalue" not in str(info.value)
    config = IngestConfig(api_keys={Secret("topsecretvalue"): "org"})
    assert "topsecretvalue" not in repr(config)


def test_key_ring_maps_keys_to_orgs_from_either_header() -> None:
    ring = KeyRing({Secret("k-a"): "org_a", Secret("k-b"): "org_b"})
    assert ring.org_for({"X-API-Key": "k-a"}) == "org_a"
    assert ring.org_for({"Authorization": "Bearer k-b"}) == "org_b"
    assert ring.org_for({"Authorization": "bearer  k-b "}) == "org_b"
    for headers in (
        {},
        {"X-API-Key": "k-c"},
        {"Authorization": "Basic k-a"},
        {"Authorization": "Bearer "},
    ):
        with pytest.raises(UnauthorizedError):
            ring.org_for(headers)


def test_in_flight_limit_refuses_past_the_bound_and_recovers() -> None:
    limit = InFlightLimit(100)
    limit.acquire(60)
    with pytest.raises(OverloadedError):
        limit.acquire(41)
    limit.acquire(40)
    limit.release(60)
    limit.acquire(60)
    assert limit.current == 100


def test_rate_limit_is_a_token_bucket_per_org() -> None:
    now = [0.0]
    limit = OrgRateLimit(rate=10.0, burst=20, clock=lambda: now[0])
    limit.take("a", 20)
    with pytest.raises(RateLimitedError) as info:
        limit.take("a", 5)
    assert info.value.retry_after_s == 1
    limit.take("b", 20)  # another org is unaffected
    now[0] = 0.5  # 5 tokens refilled
    limit.take("a", 5)
    with pytest.raises(RateLimitedError) as info:
        limit.take("a", 15)
    assert info.value.retry_after_s == 2
    now[0] = 100.0  # never more than the burst
    limit.take("a", 20)
    with pytest.raises(RateLimitedError):
        limit.take("a", 1)


def test_rate_limit_zero_means_off() -> None:
    limit = OrgRateLimit(rate=0, burst=0, clock=lambda: 0.0)
    limit.take("a", 10**9)


def test_topics_settings_use_the_same_checks() -> None:
    from ingest.topics import TopicsConfig

    assert TopicsConfig.from_env({"OPENQOE_RAW_PARTITIONS": "24"}).raw_partitions == 24
    with pytest.raises(ConfigError) as info:
        TopicsConfig.from_env({"OPENQOE_RAW_PARTITIONS": "lots"})
    assert "'OPENQOE_RAW_PARTITIONS' has value 'lots'. Not a valid int." in str(info.value)
