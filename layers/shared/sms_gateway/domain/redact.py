"""Redaction for logs: a phone number or a message body never appears whole."""

from __future__ import annotations


def mask_phone(number: str | None) -> str | None:
    """Keep the country prefix and the last two digits, enough to tell numbers apart."""
    if not number:
        return number
    if len(number) <= 6:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


def describe_body(body: str | None) -> str | None:
    return None if body is None else f"<{len(body)} chars>"
