# OpenQoE image: one image, three entry points (console scripts from pyproject.toml).
#
#   docker build -t openqoe:0.1.0 .
#   docker run --rm -p 127.0.0.1:8080:8080 -e KAFKA_BOOTSTRAP_SERVERS=... -e INGEST_API_KEYS=... openqoe:0.1.0
#   docker run ... openqoe:0.1.0 openqoe-processor      # stream processor (/metrics, /health on 6066)
#   docker run ... openqoe:0.1.0 openqoe-topics         # create / check the Kafka topics, then exit
#
# Every setting is an environment variable (README "Configuration"). The image only changes the
# listen addresses to all interfaces (a container's own network namespace) and the processor's
# RocksDB directory to /var/lib/openqoe; mount a volume there so a restarted worker only reads
# the changelog tail instead of rebuilding its state.
#
# Targets: the default (last) stage is the runtime image. "tools" adds PyYAML for the
# rule loader (deploy/mimir/load_rules.py) run by the compose stack's rules-loader service.

# Digest-free, fully versioned base tag; bump it deliberately (and rebuild) for security fixes.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build: install the project and its runtime dependencies (no dev extras) into a venv -----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/openqoe
WORKDIR /src
# Only what the wheel needs: metadata (pyproject.toml, README.md is its readme) and the packages.
COPY pyproject.toml README.md ./
COPY ingest/ ingest/
COPY openqoe_common/ openqoe_common/
COPY processors/ processors/
COPY schemas/ schemas/
RUN /opt/openqoe/bin/pip install --no-cache-dir . \
 && /opt/openqoe/bin/openqoe-topics --help >/dev/null

# --- base: the runtime filesystem, shared by the runtime and tools targets ------------------
FROM ${PYTHON_IMAGE} AS base
ENV PATH=/opt/openqoe/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INGEST_HOST=0.0.0.0 \
    PROCESSOR_WEB_HOST=0.0.0.0 \
    PROCESSOR_DATA_DIR=/var/lib/openqoe
# Non-root user with a fixed uid/gid (10001), so volumes and Kubernetes fsGroup can match it.
# /var/lib/openqoe is created owned by it: a named volume mounted there starts writable.
RUN groupadd --system --gid 10001 openqoe \
 && useradd --system --uid 10001 --gid openqoe --home-dir /var/lib/openqoe \
      --shell /usr/sbin/nologin openqoe \
 && mkdir -p /var/lib/openqoe \
 && chown openqoe:openqoe /var/lib/openqoe
COPY --from=build /opt/openqoe /opt/openqoe
WORKDIR /var/lib/openqoe
USER 10001:10001
# 8080: collector (POST /v1/events, /health, /ready, /metrics); 6066: processor (/metrics, /health).
EXPOSE 8080 6066

# --- tools: runtime + PyYAML, for deploy/mimir/load_rules.py (not needed by the services) ---
FROM base AS tools
USER root
RUN /opt/openqoe/bin/pip install --no-cache-dir "PyYAML==6.0.4"
USER 10001:10001
CMD ["python", "--version"]

# --- runtime (default target) -----------------------------------------------------------------
FROM base AS runtime
CMD ["openqoe-collector"]
