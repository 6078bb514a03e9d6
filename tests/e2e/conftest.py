"""One embedded mesh for every end-to-end module: each service its own process, the LLM a real llama.cpp server."""

from __future__ import annotations

import pytest

from contracts import catalog
from contracts.events import Role
from services.councils.directory import CouncilDirectory
from services.embedded.stack import EmbeddedStack
from tests.e2e.flows import as_operator, put_back_councils
from tests.support import wait_for


def pytest_collection_modifyitems(config, items):
    """Specs that need the mesh as it started (`@pytest.mark.fresh_mesh`) run first; specs that leave it
    broken (`@pytest.mark.breaks_mesh`) run after all the others."""

    def order(item) -> int:
        return -1 if item.get_closest_marker("fresh_mesh") else int(item.get_closest_marker("breaks_mesh") is not None)

    items.sort(key=order)


@pytest.fixture(scope="session")
async def mesh(tmp_path_factory):
    stack = EmbeddedStack(
        tmp_path_factory.mktemp("fleet"),
        report=lambda line: print(line),
        # Short answers keep the suite quick on 2 cores; the model and the path are the real ones.
        service_env={"FLEET_LLM_MAX_TOKENS": "48"},
        # Every service as its own NATS user, with the permissions it has in a cluster: a permission
        # the catalog forgot shows up here as a deliberation that never finishes.
        auth=True,
    )
    endpoints = await stack.start()
    # Planning seeds the default councils on its first start, unless some council exists by then.
    client = await as_operator(stack)
    await wait_for(client.jetstream(), catalog.COUNCIL_CREATED.subject, lambda m: True, len(Role), timeout_s=60)
    await client.close()
    yield stack, endpoints
    await stack.stop()


@pytest.fixture
async def js(mesh):
    stack, _ = mesh
    client = await as_operator(stack)
    yield client.jetstream()
    await client.drain()


@pytest.fixture
async def councils_put_back(js):
    """The councils as the spec found them, put back after it: a spec that deletes or changes one leaves
    the next the mesh it found, whether it passed or failed."""
    before = await CouncilDirectory(js).councils()
    yield
    await put_back_councils(js, before)
