"""docs/deploy.md names what exists: paths in the tree, the Secrets the manifests read, the Jobs and workloads."""

import re

import pytest

from tests.deploy.manifests import OVERLAYS, ROOT, of_kind, overlay
from tests.deploy.test_create_secrets import secrets_read

GUIDE = (ROOT / "docs" / "deploy.md").read_text()


def test_every_k8s_path_the_guide_names_exists():
    paths = set(re.findall(r"\bk8s/[\w./-]*\w", GUIDE))
    assert paths and all((ROOT / path).exists() for path in paths), [p for p in paths if not (ROOT / p).exists()]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_guide_lists_every_secret_and_names_every_workload(name):
    for secret, (keys, _) in secrets_read(overlay(name)).items():
        row = next((line for line in GUIDE.splitlines() if line.startswith(f"| `{secret}` |")), None)
        assert row is not None, f"{secret} is not in the Secrets table"
        assert all(f"`{key}`" in row for key in keys), f"{secret}: keys missing from its row"
    for kind in ("StatefulSet", "Deployment", "Job", "RayCluster"):
        for resource in of_kind(overlay(name), kind):
            assert f"`{resource['metadata']['name']}`" in GUIDE, resource["metadata"]["name"]
