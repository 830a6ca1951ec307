"""Email through Amazon SES (SESv2 SendEmail), from the address the operator configured and
verified (ReplyEmailFrom)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from sms_gateway.config import get_settings
from sms_gateway.store import aws_clients

# SES's answers that no retry changes: the address or the content refused, the sender not
# verified, the account's sending paused or not allowed.
PERMANENT_ERRORS = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "AccountSuspendedException",
        "SendingPausedException",
        "BadRequestException",
        "NotFoundException",
    }
)


class EmailRefusedError(Exception):
    """SES refused the email for good; `code` is its error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def send_text_email(to: str, subject: str, text: str) -> str:
    """Send a plain-text email; SES's message id. EmailRefusedError when SES refuses it for
    good; any other ClientError may pass with a retry."""
    try:
        response = aws_clients.sesv2().send_email(
            FromEmailAddress=get_settings().reply_email_from,
            Destination={"ToAddresses": [to]},
            Content={
                "Simple": {
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": text, "Charset": "UTF-8"}},
                }
            },
        )
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in PERMANENT_ERRORS:
            raise EmailRefusedError(code) from exc
        raise
    return str(response["MessageId"])
