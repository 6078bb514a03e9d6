"""The JSON answers of judge and select turns: their types, schemas, token bounds and parsing. Pure: no I/O.

An answer is valid by construction when the server enforces its schema as a grammar. For that the schema
uses only what every grammar builder expresses (objects with fixed keys, enums, strings of bounded
length), and the turn is given enough tokens for the longest answer the schema admits.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Annotated, Any, Literal

import msgspec

from contracts.events import Choice, Phase, TurnRequested, Verdict

STRUCTURED_PHASES = frozenset({Phase.JUDGE, Phase.SELECT})
JUSTIFICATION_MAX_CHARS = 240
RATIONALE_MAX_CHARS = 240
# A score is one of these integers, as an enum: every grammar builder (llama.cpp's, vLLM's, OpenAI's strict
# mode) expresses an enum, while some ignore `minimum`/`maximum` and let a model write 11 or 85.
SCORES = tuple(range(11))
Score = Literal[SCORES]  # type: ignore[valid-type]

# No token is shorter than one byte, and a JSON string's character is at most 6 bytes (a \uXXXX escape).
TOKENS_PER_STRING_CHAR = 6
# llama.cpp's grammar allows up to 22 characters of whitespace (a space, or newlines and an indent of at
# most 20) wherever JSON allows any; other builders allow less.
WHITESPACE_TOKENS = 22
END_OF_ANSWER_TOKENS = 1


class StructuredOutputInvalid(ValueError):
    """The answer does not match the schema it was asked to follow."""


class UnboundedSchema(ValueError):
    """A schema that admits answers of any length: no token budget is sure to hold them."""


# Answer types are built from the request, but the same rubric or candidates give the same type: cached,
# so that msgspec builds each type's decoder and JSON schema once, not on every judge and select turn.
ANSWER_TYPES_CACHED = 256


def verdict_type(rubric: dict[str, str]) -> type[msgspec.Struct]:
    """The judge's answer for this rubric: one 0-10 score per criterion, under the rubric's own keys, then why."""
    return _verdict_type(tuple(rubric))


@functools.lru_cache(maxsize=ANSWER_TYPES_CACHED)
def _verdict_type(criteria: tuple[str, ...]) -> type[msgspec.Struct]:
    # Field names must be identifiers; a rubric's keys may be any text, so each is the JSON name of one.
    names = {f"criterion_{index}": criterion for index, criterion in enumerate(criteria)}
    criteria = msgspec.defstruct(
        "Criteria",
        [(name, Score) for name in names],
        rename=names,
        forbid_unknown_fields=True,
    )
    return msgspec.defstruct(
        "JudgeAnswer",
        [
            ("criteria", criteria),
            ("justification", Annotated[str, msgspec.Meta(min_length=1, max_length=JUSTIFICATION_MAX_CHARS)]),
        ],
        forbid_unknown_fields=True,
    )


def choice_type(candidates: list[str]) -> type[msgspec.Struct]:
    """The architect's answer: one of the candidates' ids, and why."""
    return _choice_type(tuple(candidates))


@functools.lru_cache(maxsize=ANSWER_TYPES_CACHED)
def _choice_type(candidates: tuple[str, ...]) -> type[msgspec.Struct]:
    return msgspec.defstruct(
        "ArchitectAnswer",
        [
            ("winner_id", Literal[tuple(candidates)]),  # type: ignore[valid-type]
            ("rationale", Annotated[str, msgspec.Meta(min_length=1, max_length=RATIONALE_MAX_CHARS)]),
        ],
        forbid_unknown_fields=True,
    )


def answer_type(request: TurnRequested) -> type[msgspec.Struct] | None:
    if request.turn.phase == Phase.JUDGE:
        return verdict_type(request.brief.rubric)
    if request.turn.phase == Phase.SELECT:
        return choice_type([c.agent_id for c in request.input.candidates])
    return None


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec puts nested types under $defs; some servers' grammar builders only take inline schemas."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if isinstance(ref := node.get("$ref"), str):
                return resolve(definitions[ref.rsplit("/", 1)[1]])
            # Under `properties` the keys are names (a rubric may have a criterion called "$ref"), not keywords.
            return {key: {name: resolve(sub) for name, sub in value.items()} if key == "properties" else resolve(value)
                    for key, value in node.items() if key != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


@functools.lru_cache(maxsize=ANSWER_TYPES_CACHED)
def answer_schema(kind: type[msgspec.Struct]) -> dict[str, Any]:
    # Shared by every request of this kind: it is only ever encoded, never changed.
    return inline_refs(msgspec.json.schema(kind))


def schema_token_bound(schema: dict[str, Any]) -> int:
    """The most tokens any JSON text that matches `schema` can take, whatever the tokenizer."""
    if "enum" in schema:
        # json.dumps escapes every non-ASCII character: its bytes bound any way of writing the value.
        return max(len(json.dumps(value)) for value in schema["enum"]) + WHITESPACE_TOKENS
    kind = schema.get("type")
    if kind == "object" and schema.get("additionalProperties") is False:
        members = sum(
            # "name" : value , with whitespace after the name, the colon and the comma
            len(json.dumps(name)) + 2 + 3 * WHITESPACE_TOKENS + schema_token_bound(value)
            for name, value in schema.get("properties", {}).items()
        )
        return 2 + 2 * WHITESPACE_TOKENS + members
    if kind == "string" and "maxLength" in schema and not {"pattern", "format"} & schema.keys():
        return 2 + schema["maxLength"] * TOKENS_PER_STRING_CHAR + WHITESPACE_TOKENS
    raise UnboundedSchema(f"no bound on the length of {json.dumps(schema)[:200]}")


@functools.lru_cache(maxsize=ANSWER_TYPES_CACHED)
def answer_token_bound(kind: type[msgspec.Struct]) -> int:
    """Tokens enough for the longest answer of this kind: given these, no valid answer is ever cut off."""
    return schema_token_bound(answer_schema(kind)) + END_OF_ANSWER_TOKENS


def _json_text(content: str) -> str:
    """The JSON object in an answer, without the code fence some models wrap it in."""
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", content, re.DOTALL)
    return fenced.group(1) if fenced else content.strip()


def parse_structured(request: TurnRequested, content: str) -> Verdict | Choice:
    kind = answer_type(request)
    assert kind is not None, "only judge and select turns are structured"
    try:
        answer = msgspec.json.decode(_json_text(content), type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise StructuredOutputInvalid(f"{kind.__name__} does not match its schema: {exc}") from None
    if request.turn.phase == Phase.JUDGE:
        criteria = msgspec.structs.asdict(answer.criteria)
        names = list(request.brief.rubric)
        return Verdict(criteria={names[i]: criteria[f"criterion_{i}"] for i in range(len(names))},
                       justification=answer.justification)
    return Choice(winner_id=answer.winner_id, rationale=answer.rationale)
