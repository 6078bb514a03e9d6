"""The Kubernetes tree as the cluster would get it: each overlay rendered by `kubectl kustomize`, read back."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
FLEET_IMAGE = "ghcr.io/swe-ai-fleet/fleet"
NAMESPACE = "swe-ai-fleet"


def tool(name: str) -> str:
    """A command installed with the dev dependencies: on PATH, or beside this interpreter."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(f"{name} is not installed; `uv sync` installs it with the dev dependencies")
    return found


def render(directory: Path) -> list[dict]:
    """`kubectl kustomize` of one kustomization directory, as a list of resources."""
    done = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@functools.cache
def overlay(name: str) -> tuple[dict, ...]:
    return tuple(render(K8S / "overlays" / name))


def find(resources, kind: str, name: str) -> dict:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} {kind} named {name!r}")
    return matches[0]


def of_kind(resources, kind: str) -> list[dict]:
    return [r for r in resources if r["kind"] == kind]


def config_map(resources, name: str) -> dict[str, str]:
    """The data of a generated ConfigMap, found by the name it was generated under (before the hash)."""
    matches = [r for r in of_kind(resources, "ConfigMap") if r["metadata"]["name"].rsplit("-", 1)[0] == name]
    assert len(matches) == 1, f"{len(matches)} ConfigMaps generated as {name!r}"
    return matches[0]["data"]


@dataclass(frozen=True)
class Pod:
    """A pod template of a workload: what runs, under which labels, in which overlay."""

    owner: str  # "<Kind>/<name>", plus "/<group>" for a RayCluster group
    labels: dict
    annotations: dict
    spec: dict

    @property
    def containers(self) -> list[dict]:
        return self.spec["containers"]

    def container(self, name: str) -> dict:
        return next(c for c in self.containers if c["name"] == name)


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "DaemonSet")


def pods(resources) -> Iterator[Pod]:
    """Every pod template, the RayCluster's head and worker groups included."""
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        if kind in WORKLOAD_KINDS:
            template = resource["spec"]["template"]
            yield Pod(f"{kind}/{name}", template["metadata"].get("labels", {}),
                      template["metadata"].get("annotations", {}), template["spec"])
        elif kind == "RayCluster":
            groups = [("head", resource["spec"]["headGroupSpec"])]
            groups += [(g["groupName"], g) for g in resource["spec"].get("workerGroupSpecs", [])]
            for group, spec in groups:
                template = spec["template"]
                labels = {**template["metadata"].get("labels", {}), "ray.io/cluster": name,
                          "ray.io/node-type": "head" if group == "head" else "worker"}
                yield Pod(f"RayCluster/{name}/{group}", labels, template["metadata"].get("annotations", {}),
                          template["spec"])


def env_of(container: dict, resources) -> dict[str, str]:
    """A container's environment as the process sees it; Secret values are stand-ins."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        source = item["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = config_map(resources, ref["name"].rsplit("-", 1)[0])[ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = f"<secret {ref['name']}/{ref['key']}>"
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            kind, resource = ref["resource"].split(".")
            env[item["name"]] = str(quantity(container["resources"][kind][resource]) // int(ref.get("divisor", 1)))
        else:
            env[item["name"]] = "<from the pod>"
    return env


UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def quantity(text: str) -> int:
    """A Kubernetes memory quantity in bytes."""
    for suffix, factor in UNITS.items():
        if text.endswith(suffix):
            return int(text.removesuffix(suffix)) * factor
    return int(text)


def port_number(container: dict, port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)
