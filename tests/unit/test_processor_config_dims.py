"""Processor settings and metric label caps."""

from __future__ import annotations

import pytest

from processors.config import ProcessorConfig
from processors.dims import LABELS, OTHER, DimensionCaps
from processors.errors import ConfigError


def test_from_env_reads_settings() -> None:
    config = ProcessorConfig.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "OPENQOE_RAW_PARTITIONS": "6",
            "PROCESSOR_VIEW_TIMEOUT_S": "120",
            "PROCESSOR_CLOSED_VIEW_RETENTION_S": "240",
            "PROCESSOR_REMOTE_WRITE_URL": "http://mimir/api/v1/push",
            "PROCESSOR_REMOTE_WRITE_TENANT_PER_ORG": "true",
            "PROCESSOR_REMOTE_WRITE_PASSWORD": "s3cret",
            "PROCESSOR_DIMENSION_CAPS": "cdn=5, app=3",
        }
    )
    assert config.partitions == 6
    assert config.view_timeout_s == 120
    assert config.remote_write_tenant_per_org is True
    assert dict(config.dimension_caps) == {"cdn": 5, "app": 3}
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OPENQOE_RAW_PARTITIONS": "many"}, "'OPENQOE_RAW_PARTITIONS' has value 'many'"),
        (
            {"PROCESSOR_VIEW_TIMEOUT_S": "600", "PROCESSOR_CLOSED_VIEW_RETENTION_S": "60"},
            "RETENTION",
        ),
        ({"PROCESSOR_STORE": "redis://"}, "PROCESSOR_STORE"),
        ({"PROCESSOR_DIMENSION_CAPS": "cdn"}, "label=number"),
        ({"PROCESSOR_FLUSH_INTERVAL_S": "120"}, "PROCESSOR_FLUSH_INTERVAL_S"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ProcessorConfig.from_env(environ)
    assert message in str(info.value)


def event(**fields: object) -> dict[str, object]:
    return {"org_id": "Acme", "env": "prod", **fields}


def test_labels_are_the_whitelist_and_never_ids() -> None:
    labels = DimensionCaps().labels(
        event(
            view_id="v-123",
            video={"id": "video_1", "title": "Big Buck Bunny", "stream_type": "live"},
            device={"category": "Mobile"},
            network={"country_code": "DE"},
            cdn={"provider": "Akamai"},
            player={"name": "hlsjs"},
        )
    )
    assert tuple(labels) == LABELS
    assert labels["org"] == "acme"
    assert labels["device"] == "mobile"
    assert labels["country"] == "de"
    assert labels["stream_type"] == "live"
    assert labels["cdn"] == "akamai"
    assert labels["app"] == "unknown"
    assert "v-123" not in labels.values()
    assert "video_1" not in labels.values()


def test_caps_fold_overflow_into_other_and_unknown_categories_too() -> None:
    caps = DimensionCaps({"cdn": 2})
    seen = [caps.labels(event(cdn={"provider": f"cdn{i}"}))["cdn"] for i in range(4)]
    assert seen == ["cdn0", "cdn1", OTHER, OTHER]
    assert caps.labels(event(cdn={"provider": "cdn1"}))["cdn"] == "cdn1"  # known values stay
    assert caps.labels(event(device={"category": "fridge"}))["device"] == OTHER
    assert caps.labels(event(video={"stream_type": "dvr"}))["stream_type"] == OTHER
