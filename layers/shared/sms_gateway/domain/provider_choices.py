"""Which providers a use case sends through, in the order they are tried.

Twilio needs nothing more than the use case's own fields (subaccount, token, Messaging Service);
AWS End User Messaging SMS needs the origination identity to send from and may name the
configuration set whose event destination reports deliveries (the stack's own when it names
none).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class ProviderName(StrEnum):
    TWILIO = "twilio"
    AWS_EUM = "aws_eum"


# The shapes of pinpoint-sms-voice-v2's SendTextMessage members (its service model): a phone
# number, a pool, phone number or sender ID id, or one of their ARNs.
OriginationIdentity = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_:/+-]+$")
]
ConfigurationSetName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_:/-]+$")
]


class TwilioChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal[ProviderName.TWILIO] = ProviderName.TWILIO


class AwsEumChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal[ProviderName.AWS_EUM] = ProviderName.AWS_EUM
    origination_identity: OriginationIdentity = Field(
        description="The pool, phone number or sender ID to send from (id, number or ARN); an "
        "operator assigns it to the workspace (sms-gateway-admin eum-identity bind)"
    )
    configuration_set: ConfigurationSetName | None = Field(
        default=None,
        description="Configuration set whose event destination reports deliveries to the "
        "gateway; null: the stack's own (EumConfigurationSetName)",
    )


ProviderChoice = Annotated[TwilioChoice | AwsEumChoice, Field(discriminator="name")]

DEFAULT_PROVIDERS: tuple[ProviderChoice, ...] = (TwilioChoice(),)
