"""Every pod meets the restricted Pod Security Standard, is sized and probed; scanners and linters find nothing."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.deploy.manifests import K8S, OVERLAYS, ROOT, overlay, pods, tool

# checkov's dependency pins (packaging 23) would downgrade ray in our lock, so it runs in a tool
# environment of its own, pinned with every transitive version (tests/deploy/checkov-constraints.txt,
# from `uv pip compile --universal`).
CHECKOV = "checkov==3.3.30"
CONSTRAINTS = ROOT / "tests" / "deploy" / "checkov-constraints.txt"

# Containers allowed a writable root filesystem, and why; each also carries its checkov annotation.
WRITABLE_ROOT = {"StatefulSet/neo4j": "the image's entrypoint writes neo4j.conf from NEO4J_* variables at start"}


def all_pods():
    return [(name, pod) for name in OVERLAYS for pod in pods(overlay(name))]


@pytest.mark.parametrize(("name", "pod"), all_pods(), ids=lambda v: v if isinstance(v, str) else v.owner)
def test_every_pod_meets_the_restricted_pod_security_standard(name, pod):
    context = pod.spec.get("securityContext", {})
    assert context.get("runAsNonRoot") is True
    assert context.get("runAsUser", 0) > 0
    assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert not pod.spec.get("hostNetwork") and not pod.spec.get("hostPID") and not pod.spec.get("hostIPC")
    for container in pod.containers + pod.spec.get("initContainers", []):
        own = container.get("securityContext", {})
        assert own.get("allowPrivilegeEscalation") is False, container["name"]
        assert own.get("capabilities", {}).get("drop") == ["ALL"], container["name"]
        assert not own.get("capabilities", {}).get("add"), container["name"]
        assert not own.get("privileged"), container["name"]
        if pod.owner not in WRITABLE_ROOT:
            assert own.get("readOnlyRootFilesystem") is True, f"{pod.owner} {container['name']}"
    for volume in pod.spec.get("volumes", []):
        assert "hostPath" not in volume, pod.owner


@pytest.mark.parametrize(("name", "pod"), all_pods(), ids=lambda v: v if isinstance(v, str) else v.owner)
def test_every_container_has_requests_limits_and_probes(name, pod):
    for container in pod.containers:
        resources = container.get("resources", {})
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{pod.owner} {container['name']}"
        assert {"cpu", "memory"} <= set(resources.get("limits", {})), f"{pod.owner} {container['name']}"
        if not pod.owner.startswith("Job/"):
            assert "livenessProbe" in container and "readinessProbe" in container, f"{pod.owner} {container['name']}"


@pytest.mark.parametrize(("name", "pod"), all_pods(), ids=lambda v: v if isinstance(v, str) else v.owner)
def test_no_pod_holds_a_service_account_token_unless_it_calls_the_api(name, pod):
    # The Ray head's autoscaler sidecar scales the worker group through the API, with KubeRay's account.
    if pod.owner.endswith("/head"):
        return
    assert pod.spec.get("automountServiceAccountToken") is False, pod.owner


def checkov(rendered):
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("checkov runs through `uv tool run`, and uv is not on PATH (./dev puts it there)")
    command = [uv, "tool", "run", "--python", sys.executable, "--constraints", str(CONSTRAINTS),
               "--from", CHECKOV, "checkov", "--config-file", str(K8S / ".checkov.yaml"),
               "--file", str(rendered), "--output", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        if "error sending request" in done.stderr or "Failed to fetch" in done.stderr:
            pytest.skip(f"checkov could not be installed from PyPI: {done.stderr.strip()[-300:]}")
        raise AssertionError(f"checkov printed no report (exit {done.returncode}):\n{done.stderr[-2000:]}") from None
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize("name", OVERLAYS)
def test_checkov_finds_nothing_that_is_not_excepted_with_its_reason(name, tmp_path):
    rendered = tmp_path / f"{name}.yaml"
    rendered.write_text(yaml.safe_dump_all(overlay(name), sort_keys=False))
    report = checkov(rendered)
    failed = report["results"].get("failed_checks", [])
    assert [f"{f['check_id']} {f['check_name']}: {f['resource']}" for f in failed] == []
    assert report["summary"]["passed"] > 500 and report["summary"]["parsing_errors"] == 0
    # Every exception annotated on a resource says why.
    for resource in overlay(name):
        for key, value in resource["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert check.startswith("CKV_") and len(reason) > 30, value


def test_the_dockerfile_passes_hadolint():
    dockerfile = ROOT / "Dockerfile"
    assert dockerfile.exists(), "the one production image is built from ./Dockerfile"
    done = subprocess.run([tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_secrets_script_passes_shellcheck():
    done = subprocess.run([tool("shellcheck"), str(K8S / "create-secrets.sh")], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
