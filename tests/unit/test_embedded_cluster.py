"""`fleet up --cluster`: what production runs (k8s/overlays/prod), laid out on one machine."""

from pathlib import Path

import pytest

from contracts import catalog
from services.embedded.servers import nats_cluster_plans, ray_worker_plan
from services.embedded.stack import EmbeddedStack, instance_names, plans_for, served_endpoints
from services.mesh.settings import SettingsError, nats_servers

DATA = Path("/tmp/fleet-cluster-spec")


def cluster(**options) -> EmbeddedStack:
    return EmbeddedStack(DATA, env={}, report=lambda line: None, cluster=True, **options)


def test_every_service_runs_twice_under_its_own_instance_name():
    assert cluster().instances == {f"{name}-{i}": name for name in catalog.SERVICES for i in (1, 2)}
    assert EmbeddedStack(DATA, env={}, report=lambda line: None).instances == {n: n for n in catalog.SERVICES}
    assert instance_names("agents", 1) == ["agents"]


def test_three_nats_servers_each_route_to_all_three_with_a_store_of_its_own():
    plans = nats_cluster_plans(DATA)
    assert [p.name for p in plans] == ["nats-1", "nats-2", "nats-3"]
    routes = {p.argv[p.argv.index("--routes") + 1] for p in plans}
    assert len(routes) == 1
    own_routes = {p.argv[p.argv.index("--cluster") + 1] for p in plans}
    assert set(routes.pop().split(",")) == own_routes
    assert len({p.argv[p.argv.index("-sd") + 1] for p in plans}) == 3
    assert len({p.argv[p.argv.index("-n") + 1] for p in plans}) == 3
    # Ready only once JetStream has a meta leader: before that no stream can be created.
    assert all(p.ready_url.endswith("/healthz") for p in plans)


def test_clients_get_every_node_and_each_node_is_listed_under_its_name():
    nats = nats_cluster_plans(DATA)
    endpoints = served_endpoints([*nats, ray_worker_plan(DATA, "127.0.0.1:6379", cpus=2, index=1)])
    assert nats_servers(endpoints["nats_url"]) == [endpoints[f"nats_{i}_url"] for i in (1, 2, 3)]
    assert endpoints["nats_monitor_url"] == endpoints["nats_1_monitor_url"]
    assert "ray_worker_1_address" in endpoints


def test_the_cluster_is_started_only_where_no_external_nats_is_given():
    names = [p.name for p in plans_for(DATA, {}, cpus=2, cluster=True)]
    assert names[:3] == ["nats-1", "nats-2", "nats-3"]
    # As KubeRay's head (num-cpus "0"), the head hosts no actor: they go to the worker nodes.
    [head] = [p for p in plans_for(DATA, {}, cpus=2, cluster=True) if p.name == "ray"]
    assert head.argv[head.argv.index("--num-cpus") + 1] == "0"
    assert not [p for p in plans_for(DATA, {"nats_url": "nats://x:4222"}, cpus=2, cluster=True)
                if p.name.startswith("nats")]


def test_the_ray_nodes_may_form_a_cluster_while_the_services_stay_on_loopback():
    stack = cluster()
    assert stack._ray_node_env()["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "1"
    assert stack.service_environment()["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert stack.service_environment()["FLEET_STREAM_REPLICAS"] == "3"


def test_a_nats_url_may_list_a_clusters_servers():
    assert nats_servers("nats://a:4222") == ["nats://a:4222"]
    assert nats_servers("nats://a:4222, nats://b:4222,") == ["nats://a:4222", "nats://b:4222"]
    with pytest.raises(SettingsError, match="names no server"):
        nats_servers(" , ")
