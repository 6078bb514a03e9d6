"""How many tokens a text takes, estimated without the model's tokenizer. Pure: no I/O.

Two estimates, both upper bounds for what they cover:
- ordinary: three ASCII characters a token; a token each for a digit, a letter in a word with digits (hex
  ids, base64) and a byte of any other character. Measured with SmolLM2's tokenizer (docs/operations.md):
  English prose, Markdown, code and JSON take 3.1 to 3.7 characters a token, digits one each, hex 1.1,
  Chinese 1.5 bytes a token. Random letters or long runs of whitespace can take more tokens than this
  says; the model's server refuses those, and the agents then ask again, strictly.
- strict: a token per byte. No tokenizer's token is shorter than a byte, so it always holds.
"""

from __future__ import annotations

import re

ASCII_CHARACTERS_PER_TOKEN = 3
# A word with a digit in it (an id, a hash, base64) is cut into tokens of a character or two.
# Matched from a word's start, letters never given back: linear, where a plain pattern is quadratic in a long word.
_WORD_WITH_DIGITS = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]*+[0-9][A-Za-z0-9]*+")


def _thirds(text: str, strict: bool) -> int:
    """The estimate in thirds of a token, so that the sums stay whole numbers."""
    size = len(text.encode())
    if strict:
        return size * ASCII_CHARACTERS_PER_TOKEN
    ascii_count = len(text.encode("ascii", "ignore"))
    # Every character of a word with digits, the digits themselves among them, costs a whole token.
    in_words_with_digits = sum(len(word) for word in _WORD_WITH_DIGITS.findall(text))
    other_bytes = size - ascii_count
    return ((ascii_count - in_words_with_digits)
            + ASCII_CHARACTERS_PER_TOKEN * (in_words_with_digits + other_bytes))


def estimate_tokens(text: str, *, strict: bool = False) -> int:
    """At most this many tokens, for ordinary text (strict: for any text)."""
    return -(-_thirds(text, strict) // ASCII_CHARACTERS_PER_TOKEN)


def cut_to_tokens(text: str, tokens: int, *, strict: bool = False) -> str:
    """The longest beginning of `text` estimated at no more than `tokens`."""
    if estimate_tokens(text, strict=strict) <= tokens:
        return text
    # No character costs less than a third of a token, so no more than 3 * tokens of them fit.
    low, high = 0, min(len(text), ASCII_CHARACTERS_PER_TOKEN * max(tokens, 0) + 1)
    # estimate(text[:low]) fits; estimate(text[:high]) does not.
    while high - low > 1:
        middle = (low + high) // 2
        if estimate_tokens(text[:middle], strict=strict) <= tokens:
            low = middle
        else:
            high = middle
    return text[:low]
