"""Alphanumeric sender IDs: the rule a sender ID must follow, and where carriers refuse them."""

from __future__ import annotations

import re
from typing import Final

from sms_gateway.domain.errors import SenderIdInvalidError

# 1 to 11 characters of A-Z, a-z, 0-9 and space, at least one of them a letter (GSM 03.40 allows
# 11 alphanumeric characters in the originating address).
SENDER_ID_PATTERN = r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$"
_SENDER_ID = re.compile(SENDER_ID_PATTERN)

# Destinations whose carriers do not accept an alphanumeric sender: a message with a sender ID
# to one of them is sent from the use case's pool instead (sender_id_applied: false). Source: the
# "Supported countries and regions" table of Amazon SNS / Pinpoint SMS (column "Sender IDs" = No),
# as published on 2023-04-28 (amazon-pinpoint-user-guide, channels-sms-countries.md). China is
# listed as No (only pre-registered templates); India and Belarus require registration and are
# not listed here.
NO_ALPHANUMERIC_SENDER: Final = frozenset(
    [
        "AR",
        "BS",
        "BE",
        "BR",
        "CA",
        "KY",
        "CL",
        "CN",
        "CO",
        "CR",
        "DO",
        "EC",
        "SV",
        "GU",
        "GT",
        "HU",
        "LR",
        "MY",
        "MH",
        "MX",
        "FM",
        "MC",
        "MZ",
        "NZ",
        "NI",
        "PY",
        "PE",
        "PR",
        "CG",
        "KN",
        "LC",
        "ZA",
        "KR",
        "TM",
        "US",
        "UY",
        "VE",
        "VI",
    ]
)


def is_sender_id(text: str) -> bool:
    return _SENDER_ID.fullmatch(text) is not None


def check_sender_id(sender_id: str) -> None:
    if not is_sender_id(sender_id):
        raise SenderIdInvalidError(
            "a sender ID is 1 to 11 characters of A-Z, a-z, 0-9 and space, "
            "with at least one letter",
            field="sender_id",
        )


def accepts_alphanumeric_sender(country: str | None) -> bool:
    """Whether a message to `country` may carry an alphanumeric sender. An unknown country is
    treated as refusing it: the pool's number reaches it either way."""
    return country is not None and country not in NO_ALPHANUMERIC_SENDER
