"""Where a caller asks the replies to a message forwarded (POST /v1/sms/'s `reply_forwarding`):
a signed webhook, an SMS, an email, any subset. Pure: the shape and the formats; the URL's SSRF
check and the rules that read settings are logic.reply_forwarding_settings'."""

from __future__ import annotations

import re
from typing import Literal, Self

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from sms_gateway.domain.callback_urls import MAX_CALLBACK_URL_CHARS

# The forwarding channels, in the order they are carried out.
CHANNELS = ("webhook", "sms", "email")

# RFC 5321's limits (64-octet local part, 254 in all), ASCII only: SES takes an internationalized
# domain only in its punycode form.
MAX_EMAIL_CHARS = 254
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def is_phone_number(value: str) -> bool:
    """E.164, ASCII digits only, and a number phonenumbers knows to be valid."""
    if not _E164.fullmatch(value):
        return False
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(value)))
    except phonenumbers.NumberParseException:
        return False


def is_email_address(value: str) -> bool:
    """An address SES can send to: an ASCII local part, '@', a dotted host name."""
    return len(value) <= MAX_EMAIL_CHARS and _EMAIL.fullmatch(value) is not None


class ReplyForwarding(BaseModel):
    """Where the replies to a message go (POST /v1/sms/'s `reply_forwarding`): any subset."""

    model_config = ConfigDict(extra="forbid", strict=True)

    webhook_url: str | None = Field(
        default=None,
        description="https URL that receives each reply as a signed `message.reply` webhook "
        "(Standard Webhooks)",
        json_schema_extra={"format": "uri", "maxLength": MAX_CALLBACK_URL_CHARS},
    )
    webhook_method: Literal["POST", "GET"] | None = Field(
        default=None, description="POST (JSON body, the default) or GET (query parameters)"
    )
    to_sms: str | None = Field(
        default=None,
        description="E.164 number that receives each reply as a new SMS through the same use "
        "case (quota and opt-outs apply)",
        json_schema_extra={"pattern": r"^\+[1-9][0-9]{7,14}$"},
    )
    to_email: str | None = Field(
        default=None,
        description="Address that receives each reply by email",
        json_schema_extra={"format": "email", "maxLength": MAX_EMAIL_CHARS},
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.webhook_url is None and self.to_sms is None and self.to_email is None:
            raise PydanticCustomError(
                "reply_forwarding_empty", "name at least one of webhook_url, to_sms and to_email"
            )
        if self.webhook_method is not None and self.webhook_url is None:
            raise PydanticCustomError(
                "reply_forwarding_method", "webhook_method is only used with webhook_url"
            )
        if self.webhook_url is not None and len(self.webhook_url) > MAX_CALLBACK_URL_CHARS:
            raise PydanticCustomError(
                "url_too_long", "webhook_url is longer than {limit} characters",
                {"limit": MAX_CALLBACK_URL_CHARS},
            )  # fmt: skip
        if self.to_sms is not None and not is_phone_number(self.to_sms):
            raise PydanticCustomError("phone_invalid", "to_sms must be a valid E.164 number")
        if self.to_email is not None and not is_email_address(self.to_email):
            raise PydanticCustomError("email_invalid", "to_email must be an email address")
        return self

    def channels(self) -> list[str]:
        wanted = {
            "webhook": self.webhook_url is not None,
            "sms": self.to_sms is not None,
            "email": self.to_email is not None,
        }
        return [channel for channel in CHANNELS if wanted[channel]]
