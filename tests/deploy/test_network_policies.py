"""Only what must talk can talk: the NetworkPolicies, evaluated over every pair of pods and declared ports.

A small evaluator of the NetworkPolicy semantics (a pod selected by a policy of a type is isolated for
that direction; traffic passes when the sender's egress and the receiver's ingress both allow it)
runs over the rendered overlays, and the connections it allows must be exactly the expected ones.
"""

import ipaddress
from dataclasses import dataclass

import pytest

from tests.deploy.manifests import NAMESPACE, OVERLAYS, of_kind, overlay, pods

SERVICES = ("planning", "dispatch", "agents", "collector", "projection", "monitor")
JOBS = ("fleet-streams-apply", "fleet-council-seed")
RAY = ("ray-head", "ray-worker")
CLUSTER_IP = "10.1.2.3"
# Clients outside the mesh reach NATS when both they and their namespace carry these labels (docs/deploy.md).
NATS_CLIENT = ("swe-ai-fleet.io/nats-client", "true")
CLIENTS_ALLOWED = ("swe-ai-fleet.io/clients", "allowed")


@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str | None  # None: outside the cluster
    labels: tuple
    ports: tuple  # (port, protocol) it listens on
    ip: str = CLUSTER_IP
    namespace_labels: tuple = ()

    @property
    def label_map(self) -> dict:
        return dict(self.labels)


def endpoint_name(owner: str) -> str:
    kind, _, rest = owner.partition("/")
    if kind == "RayCluster":
        return "ray-head" if rest.endswith("/head") else "ray-worker"
    return rest


def endpoints(name) -> list[Endpoint]:
    inside = []
    for pod in pods(overlay(name)):
        declared = [port for container in pod.containers for port in container.get("ports", [])]
        ports = tuple((p["containerPort"], p.get("protocol", "TCP")) for p in declared)
        inside.append(Endpoint(endpoint_name(pod.owner), NAMESPACE, tuple(sorted(pod.labels.items())), ports))
    outside = [
        Endpoint("prometheus", "monitoring", (("app.kubernetes.io/name", "prometheus"),), ((9090, "TCP"),)),
        Endpoint("kube-dns", "kube-system", (("k8s-app", "kube-dns"),), ((53, "UDP"), (53, "TCP"))),
        Endpoint("stranger", "elsewhere", (("app", "curious"),), ((8080, "TCP"),)),
        # An upstream planner as the docs say to run one, and two that miss one of the two labels.
        Endpoint("planner", "upstream", (NATS_CLIENT,), ((8080, "TCP"),), namespace_labels=(CLIENTS_ALLOWED,)),
        Endpoint("unlabelled-pod", "upstream", (("app", "curious"),), ((8080, "TCP"),),
                 namespace_labels=(CLIENTS_ALLOWED,)),
        Endpoint("unlabelled-namespace", "elsewhere", (NATS_CLIENT,), ((8080, "TCP"),)),
        Endpoint("internet", None, (), ((443, "TCP"),), ip="93.184.216.34"),
    ]
    return inside + outside


def selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_matches(peer: dict, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace, **dict(other.namespace_labels)}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != NAMESPACE:
        return False
    return selects(peer.get("podSelector", {}), other.label_map)


def rule_allows(rule: dict, peers_key: str, other: Endpoint, port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports):
        return False
    peers = rule.get(peers_key)
    return not peers or any(peer_matches(peer, other) for peer in peers)


def direction_allows(policies, pod: Endpoint, other: Endpoint, port: int, protocol: str, kind: str) -> bool:
    if pod.namespace != NAMESPACE:
        return True  # outside this namespace, nothing here isolates it
    mine = [p["spec"] for p in policies if selects(p["spec"]["podSelector"], pod.label_map)
            and kind in p["spec"]["policyTypes"]]
    if not mine:
        return True
    rules_key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    return any(rule_allows(rule, peers_key, other, port, protocol) for spec in mine for rule in spec.get(rules_key, []))


def allowed_connections(name) -> set[tuple[str, str, int, str]]:
    policies = of_kind(overlay(name), "NetworkPolicy")
    everyone = endpoints(name)
    allowed = set()
    for source in everyone:
        if source.name == "internet":
            continue
        for target in everyone:
            for port, protocol in target.ports:
                if (direction_allows(policies, source, target, port, protocol, "Egress")
                        and direction_allows(policies, target, source, port, protocol, "Ingress")):
                    allowed.add((source.name, target.name, port, protocol))
    return allowed


def expected_connections(name) -> set[tuple[str, str, int, str]]:
    inside = {e for e in endpoints(name) if e.namespace == NAMESPACE}
    ports = {e.name: e.ports for e in inside}
    expected = set()
    for e in inside:
        expected |= {(e.name, "kube-dns", 53, "UDP"), (e.name, "kube-dns", 53, "TCP")}
    expected |= {(s, "nats", 4222, "TCP") for s in SERVICES + JOBS + ("planner",)}
    expected.add(("nats", "nats", 6222, "TCP"))
    expected |= {("prometheus", s, 9090, "TCP") for s in SERVICES}
    expected |= {("prometheus", "nats", 7777, "TCP"), ("prometheus", "vllm", 8000, "TCP")}
    outside = {e.name for e in endpoints(name) if e.namespace not in (NAMESPACE, None)}
    expected |= {(outsider, "monitor", 8470, "TCP") for outsider in outside}
    expected |= {("projection", "valkey", 6379, "TCP"), ("projection", "neo4j", 7687, "TCP")}
    expected.add(("agents", "ray-head", 10001, "TCP"))
    expected |= {(a, b, port, protocol) for a in RAY for b in RAY for port, protocol in ports[b]}
    expected |= {(r, "vllm", 8000, "TCP") for r in RAY}
    expected |= {("vllm", "internet", 443, "TCP"), ("ray-head", "internet", 443, "TCP")}
    # Outside the namespace nothing is isolated by these policies; only what they reach inside counts.
    expected |= {(a, b, port, protocol) for a in outside for b in outside | {"internet"}
                 for port, protocol in next(e.ports for e in endpoints(name) if e.name == b)}
    return expected


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_pod_is_isolated_both_ways_by_default(name):
    deny = [p for p in of_kind(overlay(name), "NetworkPolicy") if p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not p["spec"].get("ingress")
            and not p["spec"].get("egress")]
    assert len(deny) == 1


@pytest.mark.parametrize("name", OVERLAYS)
def test_exactly_the_connections_the_fleet_needs_are_allowed(name):
    allowed, expected = allowed_connections(name), expected_connections(name)
    assert sorted(allowed - expected) == [], "allowed, but nothing needs it"
    assert sorted(expected - allowed) == [], "needed, but not allowed"


@pytest.mark.parametrize("name", OVERLAYS)
def test_none_but_the_projection_reaches_the_read_models_and_only_ray_reaches_vllm(name):
    allowed = allowed_connections(name)
    assert {s for s, t, _, _ in allowed if t in ("valkey", "neo4j")} == {"projection"}
    assert {s for s, t, _, _ in allowed if t == "vllm"} == {"ray-head", "ray-worker", "prometheus"}
    assert {s for s, t, port, _ in allowed if t == "nats" and port == 4222} == {*SERVICES, *JOBS, "planner"}
    assert ("stranger", "nats", 4222, "TCP") not in allowed and ("stranger", "ray-head", 10001, "TCP") not in allowed


def test_the_evaluator_sees_a_policy_that_opens_too_much():
    wide_open = {"kind": "NetworkPolicy", "metadata": {"name": "oops"},
                 "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "valkey"}},
                          "policyTypes": ["Ingress"], "ingress": [{}]}}
    valkey = next(e for e in endpoints("dev") if e.name == "valkey")
    stranger = next(e for e in endpoints("dev") if e.name == "stranger")
    policies = [*of_kind(overlay("dev"), "NetworkPolicy"), wide_open]
    assert direction_allows(policies, valkey, stranger, 6379, "TCP", "Ingress")
    assert not direction_allows(of_kind(overlay("dev"), "NetworkPolicy"), valkey, stranger, 6379, "TCP", "Ingress")


@pytest.mark.parametrize("name", OVERLAYS)
def test_a_client_outside_the_mesh_reaches_the_nats_client_port_only_with_both_labels(name):
    allowed = allowed_connections(name)

    assert {(t, port) for s, t, port, _ in allowed if s == "planner" and t in ("nats", "planner")} == {
        ("nats", 4222), ("planner", 8080)}
    assert not {t for s, t, _, _ in allowed if s in ("unlabelled-pod", "unlabelled-namespace") and t == "nats"}
