# syntax=docker/dockerfile:1
# One image for every OrderHub process: the hub (`orderhub up`), one-shot commands
# (`orderhub db upgrade`, `orderhub token create`), and the Ray head and workers, whose
# actors import the same `hub`/`actors` packages and must run the same Ray and Python.
#
#   docker build -t orderhub:0.1.0 .
#
# Ray is installed with its `default` extra: the dashboard and the per-node agent, which
# KubeRay's health probes and `ray status`/the dashboard need. RAY_VERSION must match
# `rayVersion` in deploy/k8s/raycluster.yaml (a unit test checks it).
#
# Everything goes into the image's own Python (/usr/local), not a virtualenv: KubeRay starts
# Ray through a login shell, which resets PATH, and `ray`, `orderhub` and `python` must be
# the same installation whichever way a process is started.

ARG PYTHON_IMAGE=python:3.11-slim
ARG RAY_VERSION=2.60.0

FROM ${PYTHON_IMAGE} AS build
ARG RAY_VERSION
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY clients/python clients/python
COPY pyproject.toml README.md ./
COPY hub hub
COPY actors actors
COPY adapters adapters
# Wheels of the client SDK (orderhub-client), the server (orderhub, no test extras) and
# everything they need.
RUN pip wheel --wheel-dir /wheels ./clients/python . "ray[default]==${RAY_VERSION}"

FROM ${PYTHON_IMAGE}
ARG RAY_VERSION
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 orderhub \
 && useradd --system --uid 10001 --gid orderhub --home-dir /home/orderhub --create-home \
        --shell /usr/sbin/nologin orderhub \
 && install -d -o orderhub -g orderhub /var/lib/orderhub
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels orderhub orderhub-client "ray[default]==${RAY_VERSION}"
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/orderhub-entrypoint
ENV PYTHONUNBUFFERED=1 \
    ORDERHUB_DATA_DIR=/var/lib/orderhub \
    ORDERHUB_GRPC_ADDR=0.0.0.0:50051 \
    ORDERHUB_HTTP_ADDR=0.0.0.0:8080 \
    ORDERHUB_LOG_FORMAT=json \
    RAY_USAGE_STATS_ENABLED=0
USER 10001:10001
WORKDIR /var/lib/orderhub
# gRPC (every service, health and reflection); HTTP: webhooks (and /metrics, /ops unless
# ORDERHUB_METRICS_ADDR gives them their own port, 9464 in deploy/).
EXPOSE 50051 8080 9464
ENTRYPOINT ["/usr/bin/tini", "--", "orderhub-entrypoint"]
CMD ["up"]
