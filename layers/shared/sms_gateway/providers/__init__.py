"""SMS providers behind one interface (interface.py); everything one provider knows lives in its
own folder. A use case's messages go through the provider `for_use_case` names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sms_gateway.providers.twilio.provider import TwilioProvider

if TYPE_CHECKING:
    from sms_gateway.domain.use_cases import UseCase
    from sms_gateway.providers.interface import Provider

TWILIO: Provider = TwilioProvider()


def for_use_case(use_case: UseCase) -> Provider:
    """The provider that sends this use case's messages (Twilio is the only one today)."""
    del use_case
    return TWILIO
