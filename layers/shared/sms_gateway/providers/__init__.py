"""SMS providers behind one interface (interface.py); everything one provider knows lives in its
own folder: Twilio, and AWS End User Messaging SMS (aws_eum)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sms_gateway.providers.aws_eum.provider import AwsEumProvider
from sms_gateway.providers.twilio.provider import TwilioProvider

if TYPE_CHECKING:
    from sms_gateway.providers.interface import CallbackProvider, Provider

TWILIO: CallbackProvider = TwilioProvider()
AWS_EUM: Provider = AwsEumProvider()
BY_NAME: dict[str, Provider] = {provider.name: provider for provider in (TWILIO, AWS_EUM)}
