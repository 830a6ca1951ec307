"""SMS providers behind one interface (interface.py); everything one provider knows lives in its
own folder. Twilio is the only one today."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sms_gateway.providers.twilio.provider import TwilioProvider

if TYPE_CHECKING:
    from sms_gateway.providers.interface import Provider

TWILIO: Provider = TwilioProvider()
