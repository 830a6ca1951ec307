"""Forwarding a reply where the answered message asked: a signed `message.reply` webhook (queued
for the status webhooks' delivery: same signing, SSRF checks, retries and attempts), an SMS
through the same use case (a message like any other: quota, rate and opt-outs apply), an email
through SES.

Each channel's outcome is recorded on the reply once it is carried out, so a job run again (a
crash, a retry of another channel) does only what is left. The SMS is stored under an id the
reply gives it, so it is sent once even when its outcome was never recorded; the webhook's id is
the reply's, so a receiver drops a second copy; an email whose outcome was lost to a crash right
after SES took it may be sent twice: at least once, not at most once.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from sms_gateway.domain.caller_webhooks import reply_job
from sms_gateway.domain.errors import GatewayError, RateLimitExceededError, ServiceUnavailableError
from sms_gateway.domain.ids import forwarded_message_id
from sms_gateway.domain.inbound import InboundMessage, forwarded_email, forwarded_sms_body
from sms_gateway.logic import sending
from sms_gateway.logic.composing import MAX_MESSAGE_CHARS
from sms_gateway.store import caller_webhook_queue, email_sender, inbound_store, message_store

logger = Logger(child=True)


class ForwardingIncompleteError(Exception):
    """A channel failed in a way a retry may fix: the job must run again."""


def _to_webhook(reply: InboundMessage) -> str:
    caller_webhook_queue.enqueue([reply_job(reply)])
    return "queued"


def _to_sms(reply: InboundMessage) -> str:
    forwarding = reply.reply_forwarding
    assert forwarding is not None and forwarding.to_sms is not None
    # A run that sent it and died before recording it: the message is there, whatever the
    # send's checks would answer now (the colleague may have opted out since).
    existing = message_store.get_message(forwarded_message_id(reply.id))
    if existing is not None:
        return f"sent:{existing.id}"
    request = sending.SendRequest(
        use_case_id=reply.use_case_id,
        to_phone_number=forwarding.to_sms,
        message=forwarded_sms_body(reply, MAX_MESSAGE_CHARS),
    )
    try:
        message = sending.send_message(
            reply.workspace_id, request, test=reply.test, forwarded_from=reply.id
        )
    except (RateLimitExceededError, ServiceUnavailableError):
        raise
    except GatewayError as exc:
        # Refused for good (opted out, quota spent, use case inactive...): recorded, not retried.
        return f"refused:{exc.code}"
    return f"sent:{message.id}"


def _to_email(reply: InboundMessage) -> str:
    forwarding = reply.reply_forwarding
    assert forwarding is not None and forwarding.to_email is not None
    if reply.test:
        # Test mode reaches no real destination: the email is composed, never sent.
        return "simulated"
    subject, text = forwarded_email(reply)
    try:
        return "sent:" + email_sender.send_text_email(forwarding.to_email, subject, text)
    except email_sender.EmailRefusedError as exc:
        return f"refused:{exc.code}"


CHANNELS: dict[str, Callable[[InboundMessage], str]] = {
    "webhook": _to_webhook,
    "sms": _to_sms,
    "email": _to_email,
}


def forward(inbound_id: str) -> dict[str, str]:
    """Carry out what is left of a reply's forwarding; each channel's outcome, those carried out
    before included. ForwardingIncompleteError when a channel must be tried again."""
    reply = inbound_store.get_inbound(inbound_id)
    if reply is None or reply.reply_forwarding is None or not reply.forward_channels:
        return {}
    outcomes = dict(reply.forwarded or {})
    failed = []
    for channel in reply.forward_channels.split(","):
        if channel in outcomes or channel not in CHANNELS:
            continue
        try:
            outcome = CHANNELS[channel](reply)
        except (ClientError, GatewayError, caller_webhook_queue.EnqueueFailedError) as exc:
            logger.warning(
                "reply forwarding failed; it will be retried",
                extra={"inbound_id": reply.id, "channel": channel, "error": type(exc).__name__},
            )
            failed.append(channel)
            continue
        inbound_store.mark_forwarded(reply.id, channel, outcome)
        outcomes[channel] = outcome
        logger.info(
            "reply forwarded",
            extra={"inbound_id": reply.id, "channel": channel, "result": outcome},
        )
    if failed:
        raise ForwardingIncompleteError(", ".join(failed))
    return outcomes
