"""OpenAI-compatible chat completions over aiohttp, with every failure typed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import msgspec

from services.agents.adapters.wire import (
    LlmConnectionRefused,
    LlmTimeout,
    ResponseFormat,
    chat_request,
    http_error,
    parse_completion,
)
from services.agents.domain import Completion, Prompt
from services.mesh.settings import Settings


@dataclass(frozen=True)
class LlmConfig:
    base_url: str
    timeout_s: float = 60.0
    api_key: str | None = field(default=None, repr=False)
    # How the server is asked for a schema-following answer.
    dialect: ResponseFormat = ResponseFormat.JSON_SCHEMA
    # False asks a hybrid reasoning model (Qwen3 on vLLM) to answer without thinking first.
    thinking: bool = True


def llm_config(settings: Settings) -> LlmConfig:
    """The LLM server the settings name, and how to speak to it."""
    return LlmConfig(
        base_url=settings.require_llm(), timeout_s=settings.llm_timeout_s, api_key=settings.llm_api_key,
        dialect=ResponseFormat(settings.llm_response_format), thinking=settings.llm_thinking,
    )


class LlmClient:
    def __init__(self, config: LlmConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._config.api_key:
            headers["Authorization"] = f"Bearer {self._config.api_key}"
        return headers

    async def complete(self, prompt: Prompt) -> Completion:
        request = chat_request(prompt, self._config.dialect, thinking=self._config.thinking)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._config.timeout_s))
        url = self._config.base_url.rstrip("/") + "/chat/completions"
        began = time.monotonic()
        try:
            async with self._session.post(url, data=msgspec.json.encode(request), headers=self._headers()) as reply:
                body = await reply.read()
        except aiohttp.ClientConnectorError as exc:
            raise LlmConnectionRefused(f"cannot connect to {url}: {exc.os_error or exc}") from None
        except TimeoutError:
            raise LlmTimeout(f"no answer from {url} within {self._config.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise LlmConnectionRefused(f"connection to {url} failed: {type(exc).__name__}: {exc}") from None
        if reply.status >= 400:
            raise http_error(reply.status, body, url)
        latency_ms = int((time.monotonic() - began) * 1000)
        return parse_completion(body, requested_model=request.model, latency_ms=latency_ms)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
