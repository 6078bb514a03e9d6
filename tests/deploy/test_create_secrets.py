"""k8s/create-secrets.sh creates every Secret key the manifests read, with random values, and never replaces one.

It runs against a stand-in kubectl that keeps the cluster's namespaces and Secrets in a JSON file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from streams.permissions import CLIENT_USERS, inbox_prefix
from tests.deploy.manifests import K8S, NAMESPACE, OVERLAYS, find, overlay, pods, render

FAKE_KUBECTL = '''#!{python}
import json, os, sys
state_path = os.environ["FAKE_CLUSTER"]
state = json.load(open(state_path)) if os.path.exists(state_path) else {{"namespaces": [], "secrets": {{}}}}
args = sys.argv[1:]
namespace = None
if args[:1] == ["-n"]:
    namespace, args = args[1], args[2:]
if args[:2] == ["get", "namespace"]:
    sys.exit(0 if args[2] in state["namespaces"] else 1)
if args[:2] == ["create", "namespace"]:
    state["namespaces"].append(args[2])
elif args[:2] == ["get", "secret"]:
    sys.exit(0 if f"{{namespace}}/{{args[2]}}" in state["secrets"] else 1)
elif args[:3] == ["create", "secret", "generic"]:
    name = f"{{namespace}}/{{args[3]}}"
    assert namespace in state["namespaces"] and name not in state["secrets"], name
    data = {{}}
    for arg in args[4:]:
        assert arg.startswith("--from-file="), arg
        key, path = arg.removeprefix("--from-file=").split("=", 1)
        data[key] = open(path).read()
    state["secrets"][name] = data
else:
    sys.exit(f"unexpected kubectl {{sys.argv[1:]}}")
json.dump(state, open(state_path, "w"))
'''


def run_script(tmp_path: Path, **env) -> dict:
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable))
    kubectl.chmod(0o755)
    state = tmp_path / "cluster.json"
    environment = {"PATH": os.environ["PATH"], "KUBECTL": str(kubectl), "FAKE_CLUSTER": str(state), **env}
    done = subprocess.run(["bash", str(K8S / "create-secrets.sh")], env=environment, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stand-in" not in done.stdout + done.stderr, "a secret value was printed"
    return {name.split("/", 1)[1]: data for name, data in json.loads(state.read_text())["secrets"].items()}


def secrets_read(resources) -> dict[str, tuple[set[str], bool]]:
    """Secret name -> (the keys the pods read, whether every reference is optional)."""
    read: dict[str, tuple[set[str], bool]] = {}

    def note(name, keys, optional):
        known, was_optional = read.get(name, (set(), True))
        read[name] = (known | set(keys), was_optional and bool(optional))

    for pod in pods(resources):
        for volume in pod.spec.get("volumes", []):
            if "secret" in volume:
                secret = volume["secret"]
                note(secret["secretName"], [item["key"] for item in secret.get("items", [])], secret.get("optional"))
        for container in pod.containers:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    note(ref["name"], [ref["key"]], ref.get("optional"))
    return read


def with_external_components(tmp_path: Path) -> list[dict]:
    """The prod overlay with both components/, as docs/deploy.md shows an operator writing it."""
    site = tmp_path / "site"
    site.mkdir()
    relative = os.path.relpath(K8S, site)
    (site / "kustomization.yaml").write_text(f"""
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [{relative}/overlays/prod]
components: [{relative}/components/external-llm, {relative}/components/external-neo4j]
configMapGenerator:
  - {{name: fleet-llm, behavior: merge, literals: [base-url=https://llm.example.com/v1, model=some-model]}}
  - {{name: fleet-graph, behavior: merge, literals: [uri=neo4j+s://graph.example.com]}}
""")
    return render(site)


@pytest.fixture(scope="module")
def created(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("secrets")
    return run_script(tmp_path, HF_TOKEN="hf_stand-in", FLEET_LLM_API_KEY="sk-stand-in")


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_secret_key_an_overlay_reads_is_created(name, created):
    for secret, (keys, _) in secrets_read(overlay(name)).items():
        assert secret in created, secret
        assert keys <= set(created[secret]), f"{secret}: {keys - set(created[secret])} missing"


def test_the_external_components_read_only_secrets_the_script_creates(created, tmp_path):
    resources = with_external_components(tmp_path)
    assert not [pod for pod in pods(resources) if pod.owner in ("StatefulSet/vllm", "StatefulSet/neo4j")]
    for secret, (keys, _) in secrets_read(resources).items():
        assert keys <= set(created.get(secret, {})), secret
    agents = find(resources, "Deployment", "agents")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "FLEET_LLM_API_KEY_FILE", "value": "/var/run/secrets/fleet/llm/api-key"} in agents["env"]


def test_passwords_are_random_distinct_and_consistent_between_server_and_client(created):
    users = created["fleet-nats-users"]
    clients = [created[f"fleet-nats-{user}"]["password"] for user in CLIENT_USERS]
    passwords = [*users.values(), *clients, created["fleet-valkey"]["password"], created["fleet-neo4j"]["password"],
                 created["fleet-ray-auth"]["auth_token"]]
    assert len(set(passwords)) == len(passwords) and all(len(p) >= 32 for p in passwords)
    valkey = created["fleet-valkey"]
    assert valkey["auth.conf"] == f"requirepass {valkey['password']}\n"
    url = urlsplit(valkey["url"])
    service = find(overlay("prod"), "Service", "valkey")
    assert (url.hostname, url.port, url.password) == ("valkey", service["spec"]["ports"][0]["port"], valkey["password"])
    assert created["fleet-neo4j"]["NEO4J_AUTH"] == f"neo4j/{created['fleet-neo4j']['password']}"


def test_optional_secrets_are_made_only_when_given_and_only_optional_ones_may_be_missing(tmp_path):
    created = run_script(tmp_path)
    assert "fleet-huggingface" not in created and "fleet-llm-api-key" not in created
    for secret, (_, optional) in secrets_read(overlay("prod")).items():
        assert secret in created or optional, secret


def test_running_it_again_replaces_nothing(tmp_path):
    first = run_script(tmp_path)
    second = run_script(tmp_path)
    assert second == first


def test_an_existing_neo4j_password_is_used_as_given(tmp_path):
    created = run_script(tmp_path, NEO4J_PASSWORD="the-databases-own")
    assert created["fleet-neo4j"] == {"password": "the-databases-own", "NEO4J_AUTH": "neo4j/the-databases-own"}


def test_the_namespace_is_the_one_the_manifests_use():
    assert 'namespace=swe-ai-fleet' in (K8S / "create-secrets.sh").read_text()
    assert NAMESPACE == "swe-ai-fleet"


@pytest.mark.parametrize("user", CLIENT_USERS)
def test_each_client_outside_the_mesh_gets_a_secret_with_all_it_needs_to_connect_and_nothing_else(created, user):
    assert created[f"fleet-nats-{user}"] == {"user": user, "password": created[f"fleet-nats-{user}"]["password"],
                                             "inbox-prefix": inbox_prefix(user)}
    assert user not in created["fleet-nats-users"]
