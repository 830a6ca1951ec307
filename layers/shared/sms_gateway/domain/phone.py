"""Destination number checks: E.164 shape, a real number (phonenumbers), not a landline."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

from sms_gateway.domain.errors import PhoneInvalidError, PhoneLandlineError

# ASCII digits only: Python's \d also takes full-width and other digits, which the documented
# pattern (and E.164) does not.
_E164 = re.compile(r"^\+[0-9]{8,15}$")


@dataclass(frozen=True, slots=True)
class Destination:
    e164: str
    region: str | None


def check_destination(raw: str) -> Destination:
    """Raise PhoneInvalidError or PhoneLandlineError; return the number and its country."""
    if not _E164.fullmatch(raw):
        raise PhoneInvalidError(
            "to_phone_number must be in E.164 format: '+' followed by 8 to 15 digits",
            field="to_phone_number",
        )
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise PhoneInvalidError(
            "to_phone_number is not a valid phone number", field="to_phone_number"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneInvalidError(
            "to_phone_number is not a valid phone number", field="to_phone_number"
        )
    if phonenumbers.number_type(number) == PhoneNumberType.FIXED_LINE:
        raise PhoneLandlineError(
            "to_phone_number is a landline and cannot receive SMS", field="to_phone_number"
        )
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Destination(e164=e164, region=phonenumbers.region_code_for_number(number))
