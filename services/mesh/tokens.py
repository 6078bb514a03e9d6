"""How many tokens a text takes, estimated without the model's tokenizer. Pure: no I/O.

Two estimates, both upper bounds for what they cover:
- ordinary: three ASCII characters a token, a digit or a byte of any other character a token each. Measured
  with SmolLM2's tokenizer (docs/operations.md): English prose, Markdown, code and JSON take 3.1 to 3.7
  characters a token, digits one each, Chinese 1.5 bytes a token. Random letters or whitespace runs can take
  more tokens than this says; the model's server refuses those, and the agents then ask again, strictly.
- strict: a token per byte. No tokenizer's token is shorter than a byte, so it always holds.
"""

from __future__ import annotations

ASCII_CHARACTERS_PER_TOKEN = 3


def _thirds(text: str, strict: bool) -> int:
    """The estimate in thirds of a token, so that the sums stay whole numbers."""
    size = len(text.encode())
    if strict:
        return size * ASCII_CHARACTERS_PER_TOKEN
    ascii_count = len(text.encode("ascii", "ignore"))
    digits = sum(map(text.count, "0123456789"))
    other_bytes = size - ascii_count
    return (ascii_count - digits) + ASCII_CHARACTERS_PER_TOKEN * (digits + other_bytes)


def estimate_tokens(text: str, *, strict: bool = False) -> int:
    """At most this many tokens, for ordinary text (strict: for any text)."""
    return -(-_thirds(text, strict) // ASCII_CHARACTERS_PER_TOKEN)


def cut_to_tokens(text: str, tokens: int, *, strict: bool = False) -> str:
    """The longest beginning of `text` estimated at no more than `tokens`."""
    if estimate_tokens(text, strict=strict) <= tokens:
        return text
    low, high = 0, len(text)  # estimate(text[:low]) fits; estimate(text[:high]) does not
    while high - low > 1:
        middle = (low + high) // 2
        if estimate_tokens(text[:middle], strict=strict) <= tokens:
            low = middle
        else:
            high = middle
    return text[:low]
