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


CLIENTS = (ROOT / "docs" / "clients.md").read_text()
EXAMPLES = {"python": ROOT / "docs" / "examples" / "upstream.py", "js": ROOT / "docs" / "examples" / "upstream.mjs"}


@pytest.mark.parametrize("language", EXAMPLES)
def test_the_client_guide_quotes_its_examples_as_they_run(language):
    """tests/e2e/test_clients.py runs the example files; the guide's snippets must be lines of them."""
    example = {line.strip() for line in EXAMPLES[language].read_text().splitlines()}
    snippets = re.findall(rf"```{language}\n(.*?)```", CLIENTS, re.S)
    assert snippets
    for snippet in snippets:
        for line in filter(None, (line.strip() for line in snippet.splitlines())):
            assert line in example, f"docs/clients.md quotes a line {EXAMPLES[language].name} lacks: {line}"


def test_every_file_the_client_guide_links_exists():
    links = re.findall(r"\]\(((?:examples|contracts)/[^)#]+)\)", CLIENTS)
    assert links and all((ROOT / "docs" / link).exists() for link in links), links
