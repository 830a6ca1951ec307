"""AWS End User Messaging SMS's SendTextMessage, called once (botocore's retries are off for this
client: a retry after the request left could text a person twice). What an answer or an
exception means is the provider's business (providers/aws_eum/answers.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sms_gateway.store import aws_clients

if TYPE_CHECKING:
    from mypy_boto3_pinpoint_sms_voice_v2.type_defs import SendTextMessageResultTypeDef


def send_text_message(params: dict[str, Any]) -> SendTextMessageResultTypeDef:
    return aws_clients.sms_voice().send_text_message(**params)
