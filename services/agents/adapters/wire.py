"""The LLM servers' wire: OpenAI-compatible chat completions in the dialects the agents speak. Pure: no I/O.

vLLM, OpenAI and llama.cpp's llama-server take a schema as `json_schema`; llama.cpp's Python server
as `json_object`. vLLM also takes switches for the model's chat template.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import msgspec

from services.agents.domain import Completion, Prompt


class LlmError(Exception):
    """Base of the typed LLM errors; the class name is reported as `error_class`."""


class LlmConnectionRefused(LlmError):
    pass


class LlmTimeout(LlmError):
    pass


class LlmHttpError(LlmError):
    pass


class LlmContextExceeded(LlmHttpError):
    """The server counted more tokens than its context holds: the agents ask again with a stricter cut."""


class LlmBadResponse(LlmError):
    pass


# How llama-server, vLLM and OpenAI say that a prompt and its answer do not fit the model's context.
_CONTEXT_EXCEEDED = re.compile(rb"exceed_context_size|context_length_exceeded|maximum context length", re.IGNORECASE)


def http_error(status: int, body: bytes, url: str) -> LlmHttpError:
    """The typed error for an HTTP error reply."""
    snippet = body[:300].decode("utf-8", "replace")
    kind = LlmContextExceeded if status == 400 and _CONTEXT_EXCEEDED.search(body) else LlmHttpError
    return kind(f"HTTP {status} from {url}: {snippet}")


class ResponseFormat(enum.StrEnum):
    """How the LLM server is asked for JSON that follows a schema."""

    # OpenAI, vLLM and llama.cpp's llama-server: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}
    JSON_SCHEMA = "json_schema"
    # llama.cpp's Python server: {"type": "json_object", "schema": ...}
    JSON_OBJECT = "json_object"


class ChatMessage(msgspec.Struct, frozen=True):
    role: str
    content: str


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An OpenAI-compatible /v1/chat/completions request body."""

    model: str
    messages: list[ChatMessage]
    temperature: float
    max_tokens: int
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    # vLLM's hook into the model's chat template, e.g. to switch Qwen3's thinking off.
    chat_template_kwargs: dict[str, Any] | None = None


def response_format(name: str, schema: dict[str, Any], dialect: ResponseFormat) -> dict[str, Any]:
    if dialect == ResponseFormat.JSON_OBJECT:
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def chat_request(prompt: Prompt, dialect: ResponseFormat, *, thinking: bool = True) -> ChatRequest:
    """The request body for a prompt, in the server's dialect."""
    return ChatRequest(
        model=prompt.model,
        messages=[ChatMessage("system", prompt.system), ChatMessage("user", prompt.user)],
        temperature=prompt.temperature,
        max_tokens=prompt.max_tokens,
        seed=prompt.seed,
        response_format=(response_format(prompt.answer_name or "answer", prompt.answer_schema, dialect)
                         if prompt.answer_schema is not None else None),
        # Thinking tokens count against max_tokens and are not the answer; a hybrid model can skip them.
        chat_template_kwargs=None if thinking else {"enable_thinking": False},
    )


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
