"""Twilio behind the provider interface: the use case names the subaccount, its auth token's
secret and the Messaging Service that picks the sender."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sms_gateway.providers.twilio import callbacks
from sms_gateway.providers.twilio import credentials as auth_tokens

if TYPE_CHECKING:
    from sms_gateway.domain.use_cases import UseCase
    from sms_gateway.providers.interface import CallbackRequest, OutboundSms, StatusReport
    from sms_gateway.providers.results import HandoffResult


class TwilioProvider:
    name = "twilio"
    callback_path = callbacks.CALLBACK_PATH

    def credentials(self, use_case: UseCase, *, fresh: bool = False) -> str | None:
        return auth_tokens.auth_token(use_case.twilio_auth_token_secret, fresh=fresh)

    def send(self, sms: OutboundSms, credentials: str) -> HandoffResult:
        # Imported here: the status callback's function never sends, and should not pay for the
        # HTTP client at its cold start.
        from sms_gateway.providers.twilio import client

        if sms.status_callback_url is None:
            raise ValueError("Twilio reports deliveries to a status callback URL")
        return client.create_message(
            account_sid=sms.use_case.twilio_account_sid,
            auth_token=credentials,
            to=sms.to,
            body=sms.body,
            messaging_service_sid=sms.use_case.messaging_service_sid,
            status_callback=sms.status_callback_url,
            sender_id=sms.sender_id,
            validity_period=sms.validity_seconds,
        )

    def read_status_callback(self, request: CallbackRequest) -> StatusReport:
        return callbacks.read_status_callback(request)
