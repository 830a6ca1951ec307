"""The SMS use case: a sender pool behind a Twilio Messaging Service, with its compliance state.

`UseCaseSpec` is what an operator or a caller writes (validated); `UseCase` is the stored record.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal, Self

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from sms_gateway.domain.callback_urls import MAX_CALLBACK_URL_CHARS
from sms_gateway.domain.provider_choices import DEFAULT_PROVIDERS, ProviderChoice, ProviderName
from sms_gateway.domain.sender_ids import is_sender_id


class SenderKind(StrEnum):
    LONG_CODE = "long_code"
    TOLL_FREE = "toll_free"
    SHORT_CODE = "short_code"
    ALPHANUMERIC = "alphanumeric"


class A2pCampaignStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"


class BrandStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


# ASCII digits only ([0-9], not \d): a full-width digit (U+FF11) is a digit to Python and to
# phonenumbers, and would let a pool hold one number in two spellings.
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_SHORT_CODE = re.compile(r"^[0-9]{3,8}$")
_COUNTRY_CODES = frozenset(phonenumbers.SUPPORTED_REGIONS)


def _twilio_sid(prefix: str) -> tuple[AfterValidator, FieldInfo]:
    """Twilio SIDs are a two-letter prefix and 32 lower-case hex digits: the check, with its own
    error, and the same pattern for the API reference (json_schema_extra checks nothing)."""
    pattern = rf"^{prefix}[0-9a-f]{{32}}$"
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError(
                "twilio_sid_invalid", f"must be '{prefix}' followed by 32 lower-case hex digits"
            )
        return value

    return AfterValidator(check), Field(json_schema_extra={"pattern": pattern})


def is_country_code(value: str) -> bool:
    """An ISO 3166-1 alpha-2 code, in capitals, that phonenumbers knows as a region."""
    return value in _COUNTRY_CODES


def _country(value: str) -> str:
    if not is_country_code(value):
        raise PydanticCustomError(
            "country_invalid", "must be an ISO 3166-1 alpha-2 country code, e.g. US"
        )
    return value


AccountSid = Annotated[str, *_twilio_sid("AC")]
MessagingServiceSid = Annotated[str, *_twilio_sid("MG")]
# json_schema_extra only tells the API reference what the validator next to it checks.
CountryCode = Annotated[
    str, AfterValidator(_country), Field(json_schema_extra={"pattern": "^[A-Z]{2}$"})
]
SecretName = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9/_+=.@-]+$")
]


class Sender(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: str
    kind: SenderKind

    @model_validator(mode="after")
    def _check_sender_matches_kind(self) -> Self:
        if self.kind is SenderKind.ALPHANUMERIC:
            if not is_sender_id(self.sender):
                raise PydanticCustomError(
                    "sender_invalid",
                    "an alphanumeric sender ID has 1 to 11 letters, digits or spaces, "
                    "with at least one letter",
                )
        elif self.kind is SenderKind.SHORT_CODE:
            if not _SHORT_CODE.fullmatch(self.sender):
                raise PydanticCustomError("sender_invalid", "a short code is 3 to 8 digits")
        elif not _E164.fullmatch(self.sender) or not _is_valid_number(self.sender):
            raise PydanticCustomError(
                "sender_invalid",
                "a {kind} sender must be a valid E.164 number",
                {"kind": self.kind.value},
            )
        elif (canonical := _e164(self.sender)) != self.sender:
            # Stored as written (it is what Twilio sends from), so only one spelling is taken:
            # '+4407400123456' (a trunk 0 kept) is the same number as '+447400123456'.
            raise PydanticCustomError(
                "sender_invalid",
                "a {kind} sender must be written in E.164 as {canonical}",
                {"kind": self.kind.value, "canonical": canonical},
            )
        elif (self.kind is SenderKind.TOLL_FREE) != _is_toll_free(self.sender):
            raise PydanticCustomError(
                "sender_kind_mismatch",
                "{sender_kind} does not match the number's type",
                {"sender_kind": self.kind.value},
            )
        return self

    @property
    def is_us_long_code(self) -> bool:
        return self.kind is SenderKind.LONG_CODE and _region_of(self.sender) == "US"


def _is_valid_number(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return False


def _e164(number: str) -> str:
    return phonenumbers.format_number(
        phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.E164
    )


def _is_toll_free(number: str) -> bool:
    parsed = phonenumbers.parse(number)
    return phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.TOLL_FREE


def _region_of(number: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return None


class UseCaseSpec(BaseModel):
    """A use case as its owner writes it (POST body; PATCH takes any subset)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    active: bool = True
    twilio_account_sid: AccountSid
    twilio_auth_token_secret: SecretName
    messaging_service_sid: MessagingServiceSid
    sender_pool: list[Sender] = Field(default_factory=list, max_length=400)
    sticky_sender: bool = True
    area_code_geomatch: bool = True
    a2p_campaign_status: A2pCampaignStatus = A2pCampaignStatus.NONE
    brand_status: BrandStatus = BrandStatus.ACTIVE
    allowed_countries: list[CountryCode] = Field(
        default_factory=list, max_length=250, json_schema_extra={"uniqueItems": True}
    )
    # The default destination of its messages' status webhooks (checked against SSRF by
    # logic.caller_webhook_settings, with its own error code).
    status_callback_url: str | None = Field(
        default=None,
        max_length=MAX_CALLBACK_URL_CHARS,
        description="https URL that receives the status webhooks of this use case's messages "
        "whose send names none",
        json_schema_extra={"format": "uri"},
    )
    status_callback_method: Literal["POST", "GET"] = Field(
        default="POST", description="How status_callback_url is called: POST (JSON) or GET"
    )
    providers: list[ProviderChoice] = Field(
        default_factory=lambda: list(DEFAULT_PROVIDERS),
        min_length=1,
        max_length=len(ProviderName),
        description="The providers tried, in order: the next one only when the one before "
        "certainly did not take the message",
    )

    @model_validator(mode="after")
    def _no_duplicates(self) -> Self:
        senders = [s.sender for s in self.sender_pool]
        if len(set(senders)) != len(senders):
            raise PydanticCustomError("sender_duplicate", "sender_pool lists a sender twice")
        if len(set(self.allowed_countries)) != len(self.allowed_countries):
            raise PydanticCustomError(
                "country_duplicate", "allowed_countries lists a country twice"
            )
        names = [choice.name for choice in self.providers]
        if len(set(names)) != len(names):
            raise PydanticCustomError("provider_duplicate", "providers lists a provider twice")
        return self


class UseCase(UseCaseSpec):
    """The stored record: the spec plus identity, tenancy and lifecycle."""

    model_config = ConfigDict(extra="ignore")

    id: str
    workspace_id: str
    deleted: bool = False
    created_at: str
    updated_at: str

    @property
    def has_us_long_code(self) -> bool:
        return any(sender.is_us_long_code for sender in self.sender_pool)

    def to_api(self) -> dict[str, object]:
        """The resource as callers read it: tenancy and soft-delete flags stay internal."""
        return self.model_dump(mode="json", exclude={"workspace_id", "deleted"})
