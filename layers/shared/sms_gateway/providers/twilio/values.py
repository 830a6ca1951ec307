"""Twilio's numbers and words, read so that no value can break what stores them."""

from __future__ import annotations

# Twilio's counts and error codes have a few digits; ten is far beyond any of them, and keeps
# an int that DynamoDB (38 digits) and Python's int() (4,300 digits) both take.
MAX_DIGITS = 10
# Twilio's status words are short ("undelivered"); a longer one is cut, not stored whole.
MAX_WORD_CHARS = 32
# Its SIDs are 34 characters, numbers at most 16: anything longer is not Twilio's.
MAX_ID_CHARS = 64


def small_int(value: object) -> int | None:
    """A count or code as Twilio writes it ("2", 2), or None: an absurd value is not a reason
    to refuse a callback Twilio signed (it would retry it forever)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 10**MAX_DIGITS else None
    if not isinstance(value, str):
        return None
    # isascii: str.isdigit() also accepts digits such as '²' that int() refuses.
    if value and len(value) <= MAX_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    return None


def word(value: str) -> str:
    return value[:MAX_WORD_CHARS]


def identifier(value: str | None) -> str | None:
    """A SID or a number, or None if it cannot be one."""
    return value if value and len(value) <= MAX_ID_CHARS else None
