"""What `fleet up` hands its services and servers, whatever shell or runner started it."""

from pathlib import Path

import yaml

from services.embedded.servers import nats_cluster_plans, nats_plan
from services.embedded.stack import EmbeddedStack

DEV_OVERLAY_NATS = Path(__file__).parents[2] / "k8s" / "overlays" / "dev" / "small.yaml"


def stack_started_by(env: dict[str, str]) -> EmbeddedStack:
    return EmbeddedStack(Path("/tmp/fleet-env-spec"), env=env, report=lambda line: None)


def test_ray_never_starts_its_workers_with_uv_run_even_when_fleet_up_runs_under_it():
    # `just up` is `uv run fleet up`: Ray finds `uv run` among the agents' ancestors and, unless told
    # not to, builds an environment for every actor, which outlasted the agents' handler deadline.
    env = stack_started_by({"PATH": "/usr/bin", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "1"}).service_environment()
    assert env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] == "0"


def test_a_one_node_ray_stays_on_loopback_unless_an_address_is_given():
    assert stack_started_by({})._server_env()["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in stack_started_by({"RAY_ADDRESS": "ray://h:10001"})._server_env()


def test_ray_remembers_a_bounded_number_of_actor_calls_unless_told_another():
    # Ray's default (100,000 calls of about 1 KB in the GCS) grew the head's memory for hours in the soak.
    assert stack_started_by({})._ray_node_env()["RAY_task_events_max_num_task_in_gcs"] == "10000"
    told = stack_started_by({"RAY_task_events_max_num_task_in_gcs": "2000"})._ray_node_env()
    assert told["RAY_task_events_max_num_task_in_gcs"] == "2000"


def test_the_ray_head_declares_a_lost_node_dead_within_seconds_unless_told_otherwise():
    env = stack_started_by({})._ray_node_env()
    assert int(env["RAY_health_check_period_ms"]) * int(env["RAY_health_check_failure_threshold"]) <= 3000
    told = stack_started_by({"RAY_health_check_period_ms": "5000"})._ray_node_env()
    assert told["RAY_health_check_period_ms"] == "5000"


def test_nats_server_runs_under_the_memory_limit_the_dev_overlay_gives_its_pod_unless_told_another():
    # k8s sets GOMEMLIMIT from the pod's limit; without one, Go keeps the highest heap it ever reached.
    [nats] = [doc for doc in yaml.safe_load_all(DEV_OVERLAY_NATS.read_text()) if doc["metadata"]["name"] == "nats"]
    limit = nats["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    for plan in [nats_plan(Path("/tmp/fleet-env-spec")), *nats_cluster_plans(Path("/tmp/fleet-env-spec"))]:
        assert plan.environment({})["GOMEMLIMIT"] == limit.replace("Mi", "MiB")
        assert plan.environment({"GOMEMLIMIT": "96MiB"})["GOMEMLIMIT"] == "96MiB"
