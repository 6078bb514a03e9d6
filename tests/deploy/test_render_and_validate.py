"""Each overlay renders, and what it renders is valid Kubernetes, for the oldest and newest supported versions."""

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
