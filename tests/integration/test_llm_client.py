"""The LLM client against a real llama.cpp server, and every way a call can fail, typed."""

import asyncio
import dataclasses
import os
import uuid

import pytest

from services.agents.adapters.llm import LlmClient, LlmConfig
from services.agents.adapters.wire import LlmConnectionRefused, LlmContextExceeded, LlmHttpError, LlmTimeout
from services.agents.domain import Prompt
from services.embedded.servers import free_port, llm_plan, running_server
from services.mesh.settings import load_settings

pytestmark = pytest.mark.integration


def request(model: str, **changes) -> Prompt:
    fields = {"model": model, "system": "You are a QA engineer.", "user": "Name one edge case of sorting.",
              "temperature": 0.7, "max_tokens": 24}
    return Prompt(**{**fields, **changes})


async def test_a_real_model_answers_with_text_and_token_counts(llm_endpoints):
    client = LlmClient(LlmConfig(base_url=llm_endpoints["llm_base_url"]))
    try:
        completion = await client.complete(request(llm_endpoints["llm_model"]))
    finally:
        await client.close()
    assert completion.content.strip()
    assert completion.completion_tokens > 0 and completion.prompt_tokens > 0
    assert completion.model


async def test_a_request_the_server_cannot_serve_is_an_http_error(llm_endpoints):
    client = LlmClient(LlmConfig(base_url=llm_endpoints["llm_base_url"]))
    try:
        with pytest.raises(LlmContextExceeded, match="HTTP 400"):
            # A prompt past the model's context window: typed, so the agents can cut it more and ask again.
            await client.complete(request(llm_endpoints["llm_model"], user="word " * 20_000))
    finally:
        await client.close()


async def test_nobody_listening_is_connection_refused():
    client = LlmClient(LlmConfig(base_url=f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(LlmConnectionRefused, match="cannot connect"):
        await client.complete(request("m"))
    await client.close()


async def test_a_server_that_never_answers_is_a_timeout():
    async def accept_and_stall(reader, writer):
        await asyncio.sleep(30)

    server = await asyncio.start_server(accept_and_stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = LlmClient(LlmConfig(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=0.5))
    try:
        with pytest.raises(LlmTimeout, match="within 0.5s"):
            await client.complete(request("m"))
    finally:
        await client.close()
        server.close()


@pytest.fixture(scope="module")
async def keyed_llm(tmp_path_factory):
    """A second real llama.cpp server that refuses requests without its API key."""
    key = "sk-fleet-" + uuid.uuid4().hex
    plan = llm_plan(threads=os.cpu_count() or 2)
    # Its /health is public, so readiness is still the model loaded.
    plan = dataclasses.replace(plan, argv=[*plan.argv, "--api-key", key])
    async with running_server(plan, tmp_path_factory.mktemp("logs")) as endpoints:
        yield endpoints, key


async def test_the_api_key_from_a_file_is_sent_and_never_appears_in_errors(keyed_llm, tmp_path):
    endpoints, key = keyed_llm
    key_file = tmp_path / "llm-api-key"
    key_file.write_text(key + "\n")
    settings = load_settings({"FLEET_DATA_DIR": str(tmp_path), "FLEET_NATS_URL": "nats://127.0.0.1:1",
                              "FLEET_LLM_BASE_URL": endpoints["llm_base_url"], "FLEET_LLM_API_KEY_FILE": str(key_file)})
    keyed = LlmClient(LlmConfig(base_url=settings.require_llm(), api_key=settings.llm_api_key))
    wrong = LlmClient(LlmConfig(base_url=settings.require_llm(), api_key=key[::-1]))
    try:
        completion = await keyed.complete(request(endpoints["llm_model"]))
        with pytest.raises(LlmHttpError, match="HTTP 401") as refused:
            await wrong.complete(request(endpoints["llm_model"]))
    finally:
        await keyed.close()
        await wrong.close()
    assert completion.content.strip()
    assert key not in repr(keyed._config) and key not in repr(settings)
    assert key[::-1] not in str(refused.value)
