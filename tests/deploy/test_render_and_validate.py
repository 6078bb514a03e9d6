"""Each overlay renders, and what it renders is valid Kubernetes, for the oldest and newest supported versions."""

import re
import tomllib

import kubernetes_validate
import pytest

from tests.deploy.manifests import FLEET_IMAGE, NAMESPACE, OVERLAYS, ROOT, find, of_kind, overlay, pods

# The oldest Kubernetes the tree is written for (topologySpreadConstraints.matchLabelKeys, PSA labels),
# and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_each_overlay_renders_the_whole_fleet_into_one_namespace(name):
    resources = overlay(name)
    kinds = {r["kind"] for r in resources}
    assert {"Namespace", "StatefulSet", "Deployment", "Job", "RayCluster", "NetworkPolicy", "Service"} <= kinds
    assert {r["metadata"]["name"] for r in of_kind(resources, "StatefulSet")} == {"nats", "valkey", "neo4j", "vllm"}
    namespaced = [r for r in resources if r["kind"] != "Namespace"]
    assert {r["metadata"].get("namespace") for r in namespaced} == {NAMESPACE}


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_resource_is_labelled_by_the_app_kubernetes_io_conventions(name):
    for resource in overlay(name):
        labels = resource["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "swe-ai-fleet", resource["metadata"]["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "kustomize", resource["metadata"]["name"]
    wanted = {"app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of"}
    for pod in pods(overlay(name)):
        assert wanted <= set(pod.labels), pod.owner


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_fleet_image_runs_the_project_version_everywhere_it_runs(name):
    images = {c["image"] for pod in pods(overlay(name)) for c in pod.containers if c["image"].startswith(FLEET_IMAGE)}
    assert images == {f"{FLEET_IMAGE}:{PROJECT_VERSION}"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", OVERLAYS)
def test_core_resources_validate_strictly_against_the_kubernetes_schema(name, version):
    for resource in overlay(name):
        if resource["apiVersion"].startswith("ray.io/"):
            continue
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_ray_pod_templates_are_valid_pods(name):
    """No schema of the KubeRay CRD ships here, but its pod templates are core PodSpecs: check those."""
    ray = [pod for pod in pods(overlay(name)) if pod.owner.startswith("RayCluster/")]
    assert {pod.owner.rsplit("/", 1)[1] for pod in ray} == {"head", "agents"}
    for pod in ray:
        as_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": pod.labels}, "spec": pod.spec}
        kubernetes_validate.validate(as_pod, KUBERNETES_VERSIONS[-1], strict=True)


def test_a_broken_manifest_is_caught_by_the_validation():
    deployment = find(overlay("dev"), "Deployment", "planning")
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


# registry (a host: it has a dot or a port) / repository : tag, optionally @digest. CRI-O and Podman refuse
# short names such as `nats:2.15` under `short-name-mode = "enforcing"`, so nothing may rely on a default registry.
FULLY_QUALIFIED = re.compile(
    r"(?P<registry>[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?|[a-z0-9-]+:\d+)/(?P<repository>[a-z0-9._-]+(/[a-z0-9._-]+)*)"
    r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(@sha256:[0-9a-f]{64})?"
)


def images_in(value) -> list[str]:
    """Every `image` string anywhere in a resource: containers, init containers, the Ray autoscaler."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "image" and isinstance(v, str)]
        return found + [image for v in value.values() for image in images_in(v)]
    if isinstance(value, list):
        return [image for item in value for image in images_in(item)]
    return []


def unpullable(image: str) -> str | None:
    """Why a runtime that resolves no short names could not pull `image`, or None."""
    match = FULLY_QUALIFIED.fullmatch(image)
    if match is None:
        return "not registry/repository:tag"
    if match["tag"] == "latest":
        return "the tag `latest` is not pinned"
    return None


@pytest.mark.parametrize("image", ["nats:2.15.1-alpine", "natsio/prometheus-nats-exporter:0.16.0",
                                   "docker.io/library/nats", "docker.io/library/nats:latest",
                                   "localhost/fleet:0.1.0"])
def test_a_short_untagged_or_floating_image_name_is_caught(image):
    assert unpullable(image) is not None


@pytest.mark.parametrize("image", ["docker.io/library/nats:2.15.1-alpine", "ghcr.io/swe-ai-fleet/fleet:0.1.0",
                                   "registry.local:5000/fleet:0.1.0", "localhost:5000/fleet:0.1.0",
                                   f"quay.io/a/b:1@sha256:{'0' * 64}"])
def test_a_fully_qualified_pinned_image_name_passes(image):
    assert unpullable(image) is None


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_image_names_its_registry_and_a_pinned_tag(name):
    images = {image for resource in overlay(name) for image in images_in(resource)}
    assert len(images) >= 7, images
    assert {image: why for image in images if (why := unpullable(image))} == {}


def test_the_dockerfile_pulls_its_base_images_by_full_name():
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^ARG \w+_IMAGE=(\S+)", dockerfile, re.M)
    bases += [ref for ref in re.findall(r"^(?:FROM|COPY --from=)(\S+)", dockerfile, re.M)
              if "/" in ref or ":" in ref]
    assert bases and {image: why for image in bases if (why := unpullable(image))} == {}
