"""Clients outside the mesh, run as docs/clients.md and the README show them: their own processes, their own
NATS users (`upstream` publishes, `subscriber` follows), the answers in the log's order."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from contracts.events import Role
from services.embedded.stack import password_file_endpoint
from services.planning.domain import deliberation_id
from streams.permissions import SUBSCRIBER_USER, UPSTREAM_USER
from tests.e2e.flows import RESULT_TIMEOUT_S, with_default_councils
from tests.support import fleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
README = (ROOT / "README.md").read_text()
# The approval, then one result per deliberation, then the plan's conclusion: never more than this.
FOLLOW_TIMEOUT_S = 2 * RESULT_TIMEOUT_S


def client_env(endpoints) -> dict[str, str]:
    """What a client is given to connect: the URL and its users' passwords, where `fleet endpoints` lists them."""
    def password(user: str) -> str:
        return Path(endpoints[password_file_endpoint(user)]).read_text().strip()

    return {
        **os.environ,
        "NATS_URL": endpoints["nats_url"],
        "NATS_UPSTREAM_PASSWORD": password(UPSTREAM_USER),
        "NATS_SUBSCRIBER_PASSWORD": password(SUBSCRIBER_USER),
        "FOLLOW_TIMEOUT_S": str(FOLLOW_TIMEOUT_S),
        "PYTHONPATH": str(ROOT),
    }


def example_plan(folder: Path, roles: list[Role]) -> tuple[Path, dict]:
    """docs/examples/plan.json under ids of its own, so each spec's plan is a new one."""
    plan = json.loads((EXAMPLES / "plan.json").read_text())
    suffix = uuid.uuid4().hex[:8]
    plan |= {"story_id": f"{plan['story_id']}-{suffix}", "plan_id": f"{plan['plan_id']}-{suffix}",
             "roles": [role.value for role in roles]}
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    return path, plan


def ids_of(plan: dict) -> set[str]:
    return {deliberation_id(plan["story_id"], plan["plan_id"], task["task_id"], Role(role))
            for task in plan["tasks"] for role in plan["roles"]}


async def run_client(*command: str, env: dict[str, str]) -> tuple[int, list[str]]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=EXAMPLES)
    out, _ = await asyncio.wait_for(process.communicate(), FOLLOW_TIMEOUT_S + 60)
    return process.returncode, out.decode().splitlines()


def assert_answered_in_order(lines: list[str], plan: dict, returncode: int) -> None:
    """publishing, accepted, one result per deliberation (any order among them), concluded; exit 0 iff all completed."""
    kinds = [line.split()[0] for line in lines]
    assert kinds[:2] == ["publishing", "accepted"], lines
    # The ids the client computed before publishing (the Node example derives them by hand) are ingress's.
    assert set(lines[0].split(": deliberations ", 1)[1].split(", ")) == ids_of(plan), lines
    assert kinds[-1] == "concluded", lines
    results = [line.split() for line in lines[2:-1]]
    assert {kind for kind, *_ in results} <= {"completed", "failed"}, lines
    assert sorted(words[1] for words in results) == sorted(ids_of(plan)), lines
    completed = sum(kind == "completed" for kind, *_ in results)
    assert lines[-1] == f"concluded {completed} completed {len(results) - completed} not", lines
    all_completed = completed == len(results)
    assert (returncode == 0) == all_completed, (returncode, lines)


async def test_a_python_service_approves_as_upstream_and_follows_as_subscriber(mesh, js, tmp_path):
    _, endpoints = mesh
    await with_default_councils(js, [Role.DEV, Role.QA])
    path, plan = example_plan(tmp_path, [Role.DEV, Role.QA])

    returncode, lines = await run_client(sys.executable, str(EXAMPLES / "upstream.py"), str(path),
                                         env=client_env(endpoints))

    assert_answered_in_order(lines, plan, returncode)


@pytest.fixture(scope="module")
def node_example():
    """The Node.js example's packages, installed from the lock file as its guide says (`npm ci`)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js is not installed: the Node.js client example cannot run")
    if not (EXAMPLES / "node_modules" / "@nats-io" / "jetstream").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=EXAMPLES, check=True, timeout=300,
                       capture_output=True)
    return EXAMPLES / "upstream.mjs"


async def test_a_node_service_approves_as_upstream_and_follows_as_subscriber(mesh, js, tmp_path, node_example):
    _, endpoints = mesh
    await with_default_councils(js, [Role.QA])
    path, plan = example_plan(tmp_path, [Role.QA])

    returncode, lines = await run_client("node", str(node_example), str(path), env=client_env(endpoints))

    assert_answered_in_order(lines, plan, returncode)


async def test_plan_approve_wait_runs_as_the_readme_shows_it(mesh, js):
    """The README's command, word for word after `./dev fleet`, on its example plan."""
    stack, endpoints = mesh
    [command] = [line for line in README.splitlines() if line.startswith("./dev fleet plan approve")]
    args = command.removeprefix("./dev fleet ").split()
    args[2] = str(ROOT / args[2])
    plan = json.loads(Path(args[2]).read_text())
    await with_default_councils(js, [Role(role) for role in plan["roles"]])

    returncode, out = await fleet(endpoints["nats_url"], stack.data_dir, *args, "--timeout", str(FOLLOW_TIMEOUT_S),
                                  timeout_s=FOLLOW_TIMEOUT_S + 60)

    lines = out.splitlines()
    assert lines[0].startswith(f"published plan {plan['plan_id']} of story {plan['story_id']}"), out
    assert {line.split()[0] for line in lines[1:1 + len(ids_of(plan))]} == ids_of(plan), out
    assert any(line.startswith("accepted: ") for line in lines), out
    results = [line for line in lines if line.startswith("[")]
    assert len(results) == len(ids_of(plan)), out
    assert lines[-1].startswith(f"plan {plan['plan_id']} concluded: ") or "did not complete" in lines[-1], out
    assert (returncode == 0) == all(" completed " in line for line in results), out
