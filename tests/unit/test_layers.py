"""The layers: imports run one way (contracts → streams → services/mesh → services → tools), the domains
are pure in what they import, and only services/mesh publishes to NATS or subscribes to it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What talks to a server: none of it may be imported by a domain.
IO_PACKAGES = {"nats", "faststream", "ray", "aiohttp", "valkey", "redis", "neo4j", "falkordb", "prometheus_client"}
PURE_MODULES = [
    "contracts.events", "contracts.catalog", "contracts.queries", "streams.definitions", "streams.subjects",
    "streams.permissions", "services.mesh.messages", "services.mesh.decoding", "services.mesh.outbox",
    "services.mesh.deadletters", "services.planning.domain",
    "services.planning.plan_outcomes", "services.dispatch.domain", "services.collector.domain",
    "services.collector.scoring", "services.collector.replay", "services.agents.domain", "services.agents.outcomes",
    "services.agents.prompts", "services.agents.structured", "services.agents.adapters.wire",
    "services.councils.domain", "services.monitor.domain", "services.projection.fold",
    "services.projection.graph_model", "services.projection.kv_model", "services.projection.vocabulary",
]
# Publishing and subscribing outside services/mesh: the upstream client's result waiter, a core subscription.
TALKS_TO_NATS_OUTSIDE_MESH = {"services/planning/client.py"}
NATS_CALL = re.compile(r"\.(subscribe|pull_subscribe|publish_async)\(|\b(js|client|nc|jetstream\(\))\.publish\(")


def imported_top_packages(module: str) -> set[str]:
    """Every top-level package loaded by importing `module` in a fresh interpreter."""
    code = f"import sys, {module}; print(' '.join(sorted({{name.split('.')[0] for name in sys.modules}})))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(loaded.stdout.split())


@pytest.mark.parametrize("module", PURE_MODULES)
def test_a_domain_module_loads_nothing_that_talks_to_a_server(module):
    assert imported_top_packages(module) & IO_PACKAGES == set()


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(("layer", "may_not_import"), [
    ("contracts", ("streams", "services", "eval", "bench", "tests")),
    ("streams", ("services", "eval", "bench", "tests")),
    ("services/mesh", tuple(f"services.{name}" for name in ("agents", "cli", "collector", "councils", "dispatch",
                                                            "embedded", "monitor", "planning", "projection"))),
    ("services", ("eval", "bench", "tests")),
])
def test_no_import_runs_back_up_the_layers(layer, may_not_import):
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files
    upward = {str(path.relative_to(ROOT)): sorted(name for name in imports_of(path)
                                                  if name.startswith(tuple(f"{m}." for m in may_not_import))
                                                  or name in may_not_import)
              for path in files}
    assert {path: names for path, names in upward.items() if names} == {}


def test_only_services_mesh_publishes_to_nats_or_subscribes_to_it():
    files = sorted((ROOT / "services").rglob("*.py"))
    assert files
    outside = {str(path.relative_to(ROOT)) for path in files
               if not path.is_relative_to(ROOT / "services" / "mesh") and NATS_CALL.search(path.read_text())}
    assert outside == TALKS_TO_NATS_OUTSIDE_MESH
