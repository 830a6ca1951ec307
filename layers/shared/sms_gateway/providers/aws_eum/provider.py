"""AWS End User Messaging SMS behind the provider interface. It is called with the function's own
IAM role (no secret of the use case's), from the origination identity the use case names, an
operator assigned to its workspace, through the use case's configuration set or the stack's.

A message asking for an alphanumeric sender ID is refused here (21606, a refusal of the
provider's, so the next provider is tried): sending it from the use case's identity would drop
the sender the caller asked for, and sending from the sender ID would need that sender ID to be
the workspace's at AWS, which nothing assigns (a caller's registered sender ID is not exclusive
to it, and the role may send from every identity the operator listed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sms_gateway.config import get_settings
from sms_gateway.domain.provider_choices import AwsEumChoice, ProviderName
from sms_gateway.providers.results import Rejected

if TYPE_CHECKING:
    from sms_gateway.domain.use_cases import UseCase
    from sms_gateway.providers.interface import OutboundSms
    from sms_gateway.providers.results import HandoffResult

# What credentials() answers: the function's role signs the request.
ROLE_CREDENTIALS = "iam-role"
# Twilio's 21606: the From is not a valid sender for this account.
SENDER_ID_REFUSED = 21606


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
        if sms.sender_id is not None:
            return Rejected(SENDER_ID_REFUSED, 0)
        return client.send_text_message(
            sms,
            origination_identity=choice.origination_identity,
            configuration_set=choice.configuration_set or get_settings().eum_configuration_set,
        )
