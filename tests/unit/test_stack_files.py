"""Structural checks of the deployment files: compose stack, configs, image, Kubernetes examples.

No Docker needed: the files are parsed and cross-checked against each other and against the
code. The variables an OpenQoE service may be given are derived from the code itself (the
``from_env`` constructors, called with a Mapping that records every name they look up, plus
the ``os.environ.get`` calls of the entry points), so a renamed or removed setting fails here.
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ingest.config import IngestConfig
from ingest.errors import ConfigError as IngestConfigError
from ingest.topics import TopicsConfig
from processors.config import ProcessorConfig
from processors.errors import ConfigError as ProcessorConfigError

ROOT = Path(__file__).resolve().parents[2]
# The order of `docker compose -f docker-compose.kafka.yml -f deploy/compose/docker-compose.yml`:
# Compose resolves every relative path against the first file's directory, the repository root.
COMPOSE_FILES = (ROOT / "docker-compose.kafka.yml", ROOT / "deploy/compose/docker-compose.yml")
STACK_DIR = ROOT / "deploy/compose"
DASHBOARDS_DIR = ROOT / "deploy/grafana/dashboards"
K8S_FILES = (ROOT / "deploy/k8s/collector.yaml", ROOT / "deploy/k8s/processor.yaml")
CLOUD_ENV = ROOT / "deploy/grafana-cloud.env.example"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]

LOOPBACK = "127.0.0.1"
PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+(-[\w.]+)?$")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?]([^}]*))?\}")


# --- what the code reads ------------------------------------------------------------------


class _RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every variable looked up in it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _read_by(from_env: Callable[[Mapping[str, str]], object]) -> set[str]:
    environ = _RecordingEnv()
    # The collector refuses to start without keys: by then every name has been read.
    with contextlib.suppress(IngestConfigError, ProcessorConfigError):
        from_env(environ)
    return environ.names


def _read_by_module(relative: str) -> set[str]:
    source = (ROOT / relative).read_text()
    return set(re.findall(r"os\.environ\.get\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


COLLECTOR_VARS = _read_by(IngestConfig.from_env) | _read_by_module("ingest/__main__.py")
PROCESSOR_VARS = _read_by(ProcessorConfig.from_env) | _read_by_module("processors/__main__.py")
TOPICS_VARS = _read_by(TopicsConfig.from_env) | _read_by_module("ingest/topics.py")
ENTRY_POINTS: dict[str, set[str]] = {
    "openqoe-collector": COLLECTOR_VARS,
    "openqoe-processor": PROCESSOR_VARS,
    "openqoe-topics": TOPICS_VARS,
}


def test_the_variables_are_derived_from_the_code() -> None:
    assert set(ENTRY_POINTS) <= set(PYPROJECT["project"]["scripts"])
    assert {"KAFKA_BOOTSTRAP_SERVERS", "INGEST_API_KEYS", "INGEST_HOST", "LOG_LEVEL"} <= (
        COLLECTOR_VARS
    )
    assert {"PROCESSOR_REMOTE_WRITE_URL", "PROCESSOR_LOKI_TENANT_PER_ORG", "LOG_LEVEL"} <= (
        PROCESSOR_VARS
    )
    assert {"OPENQOE_RAW_PARTITIONS", "OPENQOE_MIN_INSYNC_REPLICAS"} <= TOPICS_VARS
    assert "PROCESSOR_GROUP_INSTANCE_ID" in PROCESSOR_VARS


# --- helpers ------------------------------------------------------------------------------


def _resolve(value: object) -> str:
    """A compose value with ``${VAR:-default}`` replaced by its default (``$$`` is ``$``)."""
    text = str(value).replace("$$", "\0")
    text = INTERPOLATION.sub(lambda m: m.group(2) or "", text)
    return text.replace("\0", "$")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _compose_documents() -> list[dict[str, Any]]:
    return [_yaml(path) for path in COMPOSE_FILES]


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = {}
    for document in _compose_documents():
        for name, service in document["services"].items():
            assert name not in services, f"service {name} is defined in two compose files"
            services[name] = service
    return services


def _named_volumes() -> set[str]:
    names: set[str] = set()
    for document in _compose_documents():
        names |= set(document.get("volumes") or {})
    return names


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.partition("=") for item in raw)
        return {key: _resolve(value) for key, _, value in pairs}
    return {key: _resolve(value) for key, value in raw.items()}


def _command(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume entry, short or long syntax."""
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            source, _, rest = _resolve(entry).partition(":")
            mounts.append((source, rest.split(":")[0]))
        else:
            mounts.append((_resolve(entry["source"]), entry["target"]))
    return mounts


def _is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _openqoe_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _services().items()
        if _resolve(service.get("image", "")).split(":")[0] == "openqoe"
    }


def _mount_target(service_name: str, source: str) -> str:
    targets = [t for s, t in _mounts(_services()[service_name]) if s == source]
    assert targets, f"{service_name} does not mount {source}"
    return targets[0]


# --- compose ------------------------------------------------------------------------------


def test_compose_files_define_the_stack() -> None:
    services = _services()
    assert {"kafka", "kafka-init", "topics", "collector", "processor", "mimir", "loki"} <= set(
        services
    )
    assert {"grafana", "rules-loader", "prometheus-agent"} <= set(services)


def test_every_image_is_pinned_to_a_version() -> None:
    for name, service in _services().items():
        image = _resolve(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: image {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if "build" in service:
            # Built here: tagged with the project's version.
            assert repository in ("openqoe", "openqoe-tools"), f"{name}: {image}"
            assert tag == VERSION, f"{name}: {image} should be tagged {VERSION} (pyproject.toml)"
        else:
            assert PINNED_TAG.match(tag), f"{name}: {image} is not pinned to a version"


def test_the_image_builds_from_a_pinned_python_without_dev_extras() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert base, "the Python base image is an ARG with a default"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base.group(1)), base.group(1)
    assert "[dev]" not in dockerfile
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", dockerfile)
    runtime = dockerfile.rsplit("\nFROM ", 1)[1]
    assert runtime.startswith("base AS runtime"), "the runtime image is the default (last) target"
    assert 'CMD ["openqoe-collector"]' in runtime
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users, "the image sets a user"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^EXPOSE 8080 6066$", dockerfile, re.MULTILINE)
    assert "PROCESSOR_DATA_DIR=/var/lib/openqoe" in dockerfile
    assert "chown openqoe:openqoe /var/lib/openqoe" in dockerfile
    for target in ("runtime", "tools"):
        assert f" AS {target}\n" in dockerfile
    for service in _services().values():
        if "build" in service:
            assert service["build"]["target"] in ("runtime", "tools")
            context = ROOT / service["build"]["context"]
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file()


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".venv", ".local", ".git", "**/node_modules", "**/__pycache__"):
        assert pattern in patterns
    for cache in (".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert cache in patterns


def test_openqoe_services_set_only_variables_the_code_reads() -> None:
    services = _openqoe_services()
    assert {"topics", "collector", "processor"} <= set(services)
    for name, service in services.items():
        command = _command(service)
        assert command, f"{name}: say which entry point runs (command)"
        assert command[0] in ENTRY_POINTS, f"{name}: {command[0]} is not an entry point"
        unknown = set(_environment(service)) - ENTRY_POINTS[command[0]]
        assert not unknown, f"{name} ({command[0]}) sets variables nothing reads: {unknown}"


def test_openqoe_services_reach_the_broker_at_an_advertised_address() -> None:
    services = _services()
    kafka = _environment(services["kafka"])
    advertised = {
        listener.split("://", 1)[1] for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    # The host's loopback listener stays as it was for clients on the host.
    assert f"{LOOPBACK}:9092" in advertised
    for name, service in _openqoe_services().items():
        servers = _environment(service)["KAFKA_BOOTSTRAP_SERVERS"].split(",")
        for server in servers:
            host = server.rsplit(":", 1)[0]
            assert host in services, f"{name}: {server} is not a compose service"
            assert server in advertised, f"{name}: the broker does not advertise {server}"


def test_kafka_listeners_are_consistent() -> None:
    kafka = _environment(_services()["kafka"])
    names = {p.split(":")[0] for p in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")}
    listeners = {p.split("://")[0] for p in kafka["KAFKA_LISTENERS"].split(",")}
    advertised = {p.split("://")[0] for p in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert listeners <= names
    assert advertised <= listeners - {kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]}
    assert kafka["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised


def test_mounted_files_and_named_volumes_exist() -> None:
    named = _named_volumes()
    for name, service in _services().items():
        for source, target in _mounts(service):
            assert target.startswith("/"), f"{name}: {target}"
            if _is_bind(source):
                assert (ROOT / source).exists(), f"{name} mounts {source}, missing in the repo"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    # The dashboards directory is provisioned as a whole (it may hold no file yet).
    assert DASHBOARDS_DIR.is_dir()
    assert any(s == "./deploy/grafana/dashboards" for s, _ in _mounts(_services()["grafana"]))


def test_dependencies_refer_to_existing_services() -> None:
    services = _services()
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dep: {"condition": "service_started"} for dep in depends}
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            condition = spec.get("condition", "service_started")
            assert condition in conditions, f"{name}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dependency].get("restart", "no") == "no", dependency
        network_mode = service.get("network_mode", "")
        if network_mode.startswith("service:"):
            assert network_mode.split(":", 1)[1] in services


def test_published_ports_are_bound_to_loopback() -> None:
    published = 0
    for name, service in _services().items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                host_ip = port.get("host_ip", "")
            else:
                parts = _resolve(port).split(":")
                assert len(parts) == 3, f"{name}: {port} does not name the host address"
                host_ip = parts[0]
            assert host_ip == LOOPBACK, f"{name}: {port} is published beyond the loopback"
            published += 1
    assert published >= 6


def test_processor_pushes_to_the_stack_by_default_with_tenants_off() -> None:
    services = _services()
    env = _environment(services["processor"])
    remote_write = urlsplit(env["PROCESSOR_REMOTE_WRITE_URL"])
    loki = urlsplit(env["PROCESSOR_LOKI_URL"])
    assert remote_write.hostname == "mimir"
    assert remote_write.path == "/api/v1/push"
    assert loki.hostname == "loki"
    assert loki.path == "/loki/api/v1/push"
    assert remote_write.port == _yaml(STACK_DIR / "mimir.yaml")["server"]["http_listen_port"]
    assert loki.port == _yaml(STACK_DIR / "loki.yaml")["server"]["http_listen_port"]
    assert env["PROCESSOR_REMOTE_WRITE_TENANT_PER_ORG"] == "false"
    assert env["PROCESSOR_LOKI_TENANT_PER_ORG"] == "false"
    assert env["PROCESSOR_DATA_DIR"] == "/var/lib/openqoe"
    assert _mount_target("processor", "processor-data") == env["PROCESSOR_DATA_DIR"]
    # Partition counts: the processor, the topics check and kafka-init read the same variable.
    raw = "${OPENQOE_RAW_PARTITIONS:-12}"
    assert services["processor"]["environment"]["OPENQOE_RAW_PARTITIONS"] == raw
    assert services["topics"]["environment"]["OPENQOE_RAW_PARTITIONS"] == raw
    assert raw in "\n".join(services["kafka-init"]["command"])


def test_rules_loader_runs_the_loader_on_the_rule_files() -> None:
    service = _services()["rules-loader"]
    script = "\n".join(_command(service))
    assert "deploy/mimir/load_rules.py --url http://mimir:9009 --tenant anonymous" in script
    assert "deploy/prometheus/rules/*.yml" in script
    workdir = Path(service["working_dir"])
    deploy_target = _mount_target("rules-loader", "./deploy")
    assert Path(deploy_target) == workdir / "deploy"
    assert (ROOT / "deploy/mimir/load_rules.py").is_file()
    assert list((ROOT / "deploy/prometheus/rules").glob("*.yml"))
    assert service["build"]["target"] == "tools"  # PyYAML for the loader


def test_metrics_agent_scrapes_the_jobs_the_alerts_use() -> None:
    services = _services()
    config = _yaml(STACK_DIR / "prometheus-agent.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    rules = "\n".join(p.read_text() for p in (ROOT / "deploy/prometheus/rules").glob("*.yml"))
    for job in set(re.findall(r'job="([^"]+)"', rules)):
        assert job in jobs, f"the rules use job={job!r}, which nothing scrapes"
    ports = {"collector": "8080", "processor": "6066"}
    for job in jobs.values():
        for target in job["static_configs"][0]["targets"]:
            host, port = target.rsplit(":", 1)
            assert host in services
            assert ports.get(host) == port, target
    assert [urlsplit(w["url"]).hostname for w in config["remote_write"]] == ["mimir"]
    command = _command(services["prometheus-agent"])
    assert "--agent" in command
    config_target = _mount_target("prometheus-agent", "./deploy/compose/prometheus-agent.yml")
    assert f"--config.file={config_target}" in command


# --- Grafana provisioning -----------------------------------------------------------------


def _datasources() -> list[dict[str, Any]]:
    path = STACK_DIR / "grafana/provisioning/datasources/openqoe.yaml"
    document = _yaml(path)
    assert document["apiVersion"] == 1
    return list(document["datasources"])


def _datasource_refs(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        reference = node.get("datasource")
        if isinstance(reference, dict):
            yield reference
        for value in node.values():
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def test_grafana_datasources_are_mimir_and_loki() -> None:
    datasources = _datasources()
    by_type = {d["type"]: d for d in datasources}
    assert len(by_type) == len(datasources), "one data source per type"
    assert len({d["uid"] for d in datasources}) == len(datasources)
    mimir, loki = by_type["prometheus"], by_type["loki"]
    assert urlsplit(mimir["url"]).hostname == "mimir"
    assert urlsplit(mimir["url"]).path == "/prometheus"
    assert urlsplit(loki["url"]).hostname == "loki"
    # A datasource variable without a saved value selects the default of its type.
    assert mimir["isDefault"] is True
    assert all(d["access"] == "proxy" for d in datasources)


def test_dashboard_datasource_variables_resolve_to_provisioned_datasources() -> None:
    datasources = _datasources()
    types = {d["type"] for d in datasources}
    known = {d["uid"] for d in datasources} | {d["name"] for d in datasources}
    builtin = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}
    expected = {"DS_PROMETHEUS": "prometheus", "DS_LOKI": "loki"}
    dashboards = sorted(DASHBOARDS_DIR.glob("*.json"))
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        variables = {
            v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "datasource"
        }
        for name, variable in variables.items():
            assert name in expected, f"{path.name}: unexpected datasource variable {name}"
            assert variable["query"] == expected[name], f"{path.name}: {name}"
            assert variable["query"] in types, f"{path.name}: no {variable['query']} data source"
            current = (variable.get("current") or {}).get("value")
            if current:
                assert current in known, f"{path.name}: {name} defaults to unknown {current}"
            if variable.get("regex"):
                pattern = re.compile(variable["regex"].strip("/"))
                assert any(pattern.search(d["name"]) for d in datasources), path.name
        for reference in _datasource_refs(dashboard):
            uid = reference.get("uid")
            if uid is None or uid in builtin or uid in known:
                continue
            match = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", uid)
            assert match, f"{path.name}: datasource uid {uid} is not provisioned"
            variable_name = match.group(1) or match.group(2)
            assert variable_name in variables, f"{path.name}: {uid} is not a variable"
            if "type" in reference:
                assert reference["type"] == variables[variable_name]["query"], path.name


def test_grafana_loads_the_dashboards_directory() -> None:
    document = _yaml(STACK_DIR / "grafana/provisioning/dashboards/openqoe.yaml")
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == _mount_target("grafana", "./deploy/grafana/dashboards")
    mounted = dict(_mounts(_services()["grafana"]))
    assert mounted["./deploy/compose/grafana/provisioning/datasources"] == (
        "/etc/grafana/provisioning/datasources"
    )
    assert mounted["./deploy/compose/grafana/provisioning/dashboards"] == (
        "/etc/grafana/provisioning/dashboards"
    )


# --- Mimir and Loki -----------------------------------------------------------------------


def _paths(node: object, keys: tuple[str, ...]) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                yield value
            else:
                yield from _paths(value, keys)


def test_mimir_runs_monolithic_with_a_writable_ruler_store() -> None:
    config = _yaml(STACK_DIR / "mimir.yaml")
    assert config["target"] == "all"
    # Single tenant by default, matching the processor (tenant per org off) and the loader.
    assert config["multitenancy_enabled"] is False
    assert config["blocks_storage"]["backend"] == "filesystem"
    # The ruler's configuration API needs object storage; "local" is read-only.
    assert config["ruler_storage"]["backend"] in ("filesystem", "s3", "gcs", "azure", "swift")
    assert config["ruler"].get("enable_api", True) is True
    assert config["server"]["http_listen_port"] == 9009
    # Every directory Mimir writes is on its volume.
    data = _mount_target("mimir", "mimir-data")
    paths = list(_paths(config, ("dir", "data_dir", "sync_dir", "rule_path", "filepath")))
    assert len(paths) >= 7
    for path in paths:
        assert path.startswith(data + "/"), path
    assert (
        config["ruler_storage"]["filesystem"]["dir"]
        != config["blocks_storage"]["filesystem"]["dir"]
    )
    config_target = _mount_target("mimir", "./deploy/compose/mimir.yaml")
    assert _command(_services()["mimir"]) == [f"-config.file={config_target}"]


def test_loki_allows_structured_metadata_on_schema_v13() -> None:
    config = _yaml(STACK_DIR / "loki.yaml")
    assert config["auth_enabled"] is False
    assert config["limits_config"]["allow_structured_metadata"] is True
    periods = config["schema_config"]["configs"]
    # Structured metadata needs the TSDB index and schema v13 (the current period is the last).
    assert periods[-1]["schema"] == "v13"
    assert periods[-1]["store"] == "tsdb"
    assert periods[-1]["object_store"] == "filesystem"
    if config["compactor"].get("retention_enabled"):
        assert config["compactor"]["delete_request_store"]
        assert config["limits_config"]["retention_period"]
    data = _mount_target("loki", "loki-data")
    paths = list(
        _paths(config, ("path_prefix", "chunks_directory", "rules_directory", "working_directory"))
    )
    assert len(paths) == 4
    for path in paths:
        assert path == data or path.startswith(data + "/"), path
    config_target = _mount_target("loki", "./deploy/compose/loki.yaml")
    assert _command(_services()["loki"]) == [f"-config.file={config_target}"]


# --- Grafana Cloud ------------------------------------------------------------------------


def test_grafana_cloud_env_example_sets_processor_variables() -> None:
    pairs = [
        line.split("=", 1)
        for line in CLOUD_ENV.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    env = dict(pairs)
    assert len(env) == len(pairs)
    assert set(env) <= PROCESSOR_VARS
    remote_write = urlsplit(env["PROCESSOR_REMOTE_WRITE_URL"])
    assert remote_write.scheme == "https"
    assert remote_write.hostname.startswith("prometheus-prod-")
    assert remote_write.hostname.endswith(".grafana.net")
    assert remote_write.path == "/api/prom/push"
    loki = urlsplit(env["PROCESSOR_LOKI_URL"])
    assert loki.scheme == "https"
    assert loki.hostname.startswith("logs-prod-")
    assert loki.hostname.endswith(".grafana.net")
    assert loki.path == "/loki/api/v1/push"
    for key in ("REMOTE_WRITE", "LOKI"):
        assert env[f"PROCESSOR_{key}_USERNAME"].isdigit()
        assert env[f"PROCESSOR_{key}_PASSWORD"]
        assert env[f"PROCESSOR_{key}_TENANT_PER_ORG"] == "false"
    # The compose processor takes these from --env-file, with the self-hosted defaults.
    processor = _services()["processor"]["environment"]
    for key in env:
        assert processor[key].startswith(f"${{{key}:-"), key


# --- Kubernetes ---------------------------------------------------------------------------


def _k8s() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in K8S_FILES:
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def _workloads() -> list[dict[str, Any]]:
    return [d for d in _k8s() if d["kind"] in ("Deployment", "StatefulSet")]


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_k8s_manifests_are_valid_yaml_with_kinds(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents
    for document in documents:
        assert document["apiVersion"]
        assert document["kind"]
        assert document["metadata"]["name"]
        assert document["metadata"]["namespace"] == "openqoe"


def test_k8s_containers_set_only_variables_the_code_reads() -> None:
    kinds = {w["kind"]: w for w in _workloads()}
    assert set(kinds) == {"Deployment", "StatefulSet"}
    for workload in kinds.values():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"openqoe:{VERSION}"
        entry_point = container["args"][0]
        allowed = ENTRY_POINTS[entry_point]
        names = [e["name"] for e in container["env"]]
        assert len(names) == len(set(names))
        unknown = set(names) - allowed
        assert not unknown, f"{workload['metadata']['name']}: nothing reads {unknown}"


def test_k8s_collector_is_a_deployment_scaled_on_cpu() -> None:
    documents = _k8s()
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    (hpa,) = [d for d in documents if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["openqoe-collector"]
    assert container["resources"]["requests"]["cpu"], "CPU utilization needs a CPU request"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert 0 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_k8s_processor_is_a_statefulset_with_volume_and_static_membership() -> None:
    documents = _k8s()
    (statefulset,) = [d for d in documents if d["kind"] == "StatefulSet"]
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert container["args"] == ["openqoe-processor"]
    # Never more workers than partitions: the extra ones would own nothing.
    assert spec["replicas"] <= int(env["OPENQOE_RAW_PARTITIONS"]["value"])
    # Static membership: the stable pod name is the group instance id.
    assert env["PROCESSOR_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.name"
    )
    # A static member must come back within the session timeout; the config accepts it.
    ProcessorConfig(session_timeout_s=float(env["PROCESSOR_SESSION_TIMEOUT_S"]["value"]))
    assert pod["enableServiceLinks"] is False
    # RocksDB on the pod's own persistent volume.
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env["PROCESSOR_DATA_DIR"]["value"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
    (service,) = [
        d
        for d in documents
        if d["kind"] == "Service" and d["metadata"]["name"] == spec["serviceName"]
    ]
    assert service["spec"]["clusterIP"] == "None"


def test_k8s_references_are_consistent() -> None:
    documents = _k8s()
    for workload in _workloads():
        spec = workload["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        pod = spec["template"]["spec"]
        volumes = {v["name"] for v in pod.get("volumes", [])}
        volumes |= {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        for container in pod["containers"]:
            assert pod["securityContext"]["runAsNonRoot"] is True
            ports = {p["name"] for p in container["ports"]}
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["port"] in ports
        services = [
            d
            for d in documents
            if d["kind"] == "Service" and d["spec"]["selector"].items() <= labels.items()
        ]
        assert services, f"no Service selects {workload['metadata']['name']}"
        for service in services:
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in ports
        budgets = [
            d
            for d in documents
            if d["kind"] == "PodDisruptionBudget"
            and d["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert budgets, f"no PodDisruptionBudget for {workload['metadata']['name']}"
