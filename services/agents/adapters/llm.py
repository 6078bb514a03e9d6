"""OpenAI-compatible chat completions over aiohttp, with every failure typed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import msgspec

from services.agents.domain import ChatRequest, Completion


class LlmError(Exception):
    """Base of the typed LLM errors; the class name is reported as `error_class`."""


class LlmConnectionRefused(LlmError):
    pass


class LlmTimeout(LlmError):
    pass


class LlmHttpError(LlmError):
    pass


class LlmBadResponse(LlmError):
    pass


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _ChatResponse(msgspec.Struct):
    choices: list[_Choice]
    model: str = ""
    usage: _Usage | None = None


_response_decoder = msgspec.json.Decoder(_ChatResponse)


def parse_completion(body: bytes, *, requested_model: str, latency_ms: int) -> Completion:
    """Read a chat completion; an empty or malformed answer is an error, never a proposal."""
    try:
        response = _response_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise LlmBadResponse(f"malformed chat completion: {exc}") from None
    if not response.choices:
        raise LlmBadResponse("chat completion has no choices")
    content = (response.choices[0].message.content or "").strip()
    if not content:
        raise LlmBadResponse("chat completion content is empty")
    usage = response.usage or _Usage()
    return Completion(
        content=content,
        model=response.model or requested_model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        latency_ms=latency_ms,
    )


@dataclass(frozen=True)
class LlmConfig:
    base_url: str
    timeout_s: float = 60.0
    api_key: str | None = field(default=None, repr=False)


class LlmClient:
    def __init__(self, config: LlmConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._config.api_key:
            headers["Authorization"] = f"Bearer {self._config.api_key}"
        return headers

    async def complete(self, request: ChatRequest) -> Completion:
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
            snippet = body[:300].decode("utf-8", "replace")
            raise LlmHttpError(f"HTTP {reply.status} from {url}: {snippet}")
        latency_ms = int((time.monotonic() - began) * 1000)
        return parse_completion(body, requested_model=request.model, latency_ms=latency_ms)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
