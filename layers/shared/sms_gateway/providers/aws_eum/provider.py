"""AWS End User Messaging SMS behind the provider interface. It is called with the function's own
IAM role (no secret of the use case's), from the origination identity the use case names (a
sender ID the message asks for instead, when one applies), through the use case's configuration
set or the stack's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sms_gateway.config import get_settings
from sms_gateway.domain.provider_choices import AwsEumChoice, ProviderName

if TYPE_CHECKING:
    from sms_gateway.domain.use_cases import UseCase
    from sms_gateway.providers.interface import OutboundSms
    from sms_gateway.providers.results import HandoffResult

# What credentials() answers: the function's role signs the request.
ROLE_CREDENTIALS = "iam-role"


class AwsEumProvider:
    name = ProviderName.AWS_EUM.value
    # Deliveries are reported through the configuration set's event destination, not a URL.
    callback_path: str | None = None

    def credentials(self, use_case: UseCase, *, fresh: bool = False) -> str | None:
        return ROLE_CREDENTIALS

    def send(self, sms: OutboundSms, credentials: str) -> HandoffResult:
        from sms_gateway.providers.aws_eum import client

        choice = sms.choice
        if not isinstance(choice, AwsEumChoice):
            raise TypeError(f"not an aws_eum choice: {choice!r}")
        return client.send_text_message(
            sms,
            origination_identity=sms.sender_id or choice.origination_identity,
            configuration_set=choice.configuration_set or get_settings().eum_configuration_set,
        )
