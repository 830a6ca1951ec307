"""An incoming message, once the provider has verified it: whose it is, what keyword it is,
which message it answers, and its one write.

The workspace is the one that owns the Twilio subaccount (an operator binds each subaccount to
one workspace), and the use case one of that workspace's with the receiving Messaging Service:
a number of one tenant can never file a reply with another. The message it answers is the
workspace's latest, of the same mode, from the receiving number to the person within 30 days.

The record and the keyword's opt-out change are one transaction: a redelivery of the same
message finds the record and changes nothing; a STOP and a START racing each other apply in
some order, each against the list as it then is (a list changed between its read and the write
fails the write, and is read again).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import phonenumbers
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from sms_gateway.domain.clock import iso, now_iso, utc_now
from sms_gateway.domain.errors import ServiceUnavailableError
from sms_gateway.domain.inbound import InboundMessage, Keyword, inbound_id_for, keyword_of
from sms_gateway.domain.redact import mask_phone
from sms_gateway.domain.reply_keys import reply_window_start
from sms_gateway.domain.use_cases import UseCase
from sms_gateway.providers.interface import IncomingSms
from sms_gateway.store import api_keys, inbound_store, message_store, opt_out_store, use_case_store
from sms_gateway.store.inbound_store import Stored
from sms_gateway.store.message_store import ReplyTarget

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

logger = Logger(child=True)

_E164 = re.compile(r"^\+[0-9]{8,15}$")
# Reads of the list before the write gives up: another change of the same number's list has to
# land between each read and write (or hold its item at the same moment) to use them all.
STORE_ATTEMPTS = 5
# The first pause after a contended transaction; it doubles with each attempt.
CONTENTION_PAUSE_SECONDS = 0.05


def receive(incoming: IncomingSms) -> InboundMessage | None:
    """Store one incoming message (None: it is nobody's, or a redelivery). A dependency that
    fails is a 503 (ServiceUnavailableError), never an error of Twilio's request."""
    try:
        return _receive(incoming)
    except ClientError as exc:
        logger.exception("incoming message not stored", extra={"account_sid": incoming.account_sid})
        raise ServiceUnavailableError("cannot store the message now") from exc


def _receive(incoming: IncomingSms) -> InboundMessage | None:
    log = {
        "account_sid": incoming.account_sid,
        "from_number": mask_phone(incoming.from_number),
        "to_number": mask_phone(incoming.to_number),
    }
    if incoming.messaging_service_sid is None:
        # Our senders all sit in Messaging Services: a number outside one is not ours to answer.
        logger.warning("incoming message outside a Messaging Service", extra=log)
        return None
    workspace_id = api_keys.twilio_account_owner(incoming.account_sid)
    if workspace_id is None:
        logger.warning("incoming message for an account no workspace owns", extra=log)
        return None
    candidates = _use_cases_of(workspace_id, incoming)
    person = _e164(incoming.from_number)
    if not candidates or person is None:
        logger.warning(
            "incoming message no use case receives",
            extra={**log, "use_cases": len(candidates), "valid_sender": person is not None},
        )
        return None
    received = utc_now()
    keyword = keyword_of(incoming.body)
    target = message_store.latest_sent_to(
        workspace_id=workspace_id,
        test=incoming.test,
        sender=incoming.to_number,
        person=person,
        since=reply_window_start(received),
    )
    use_case = _receiving_use_case(candidates, target, incoming.to_number)
    # A keyword is an instruction to us, not a reply to forward.
    forwarding = target.reply_forwarding if target is not None and keyword is None else None
    inbound = InboundMessage(
        id=inbound_id_for(incoming.account_sid, incoming.message_sid),
        workspace_id=workspace_id,
        use_case_id=use_case.id,
        from_number=person,
        to_number=incoming.to_number,
        body=incoming.body,
        num_segments=incoming.num_segments,
        received_at=iso(received),
        keyword=keyword,
        in_reply_to=target.message_id if target is not None else None,
        test=incoming.test,
        message_sid=incoming.message_sid,
        account_sid=incoming.account_sid,
        messaging_service_sid=incoming.messaging_service_sid,
        reply_forwarding=forwarding,
        forward_channels=",".join(forwarding.channels()) if forwarding else None,
    )
    stored = _store(inbound)
    logger.info(
        "incoming message",
        extra={
            **log,
            "inbound_id": inbound.id,
            "keyword": keyword,
            "in_reply_to": inbound.in_reply_to,
            "result": stored.value,
            "forward_channels": inbound.forward_channels,
        },
    )
    return inbound if stored is Stored.NEW else None


def _use_cases_of(workspace_id: str, incoming: IncomingSms) -> list[UseCase]:
    """The workspace's use cases behind the receiving service, oldest first."""
    found = [
        u
        for u in use_case_store.list_use_cases(workspace_id)
        if u.messaging_service_sid == incoming.messaging_service_sid
        and u.twilio_account_sid == incoming.account_sid
    ]
    return sorted(found, key=lambda u: (u.created_at, u.id))


def _receiving_use_case(
    candidates: list[UseCase], target: ReplyTarget | None, to_number: str
) -> UseCase:
    """The use case of the answered message, if it is still one of them; else the first whose
    pool holds the receiving number; else the first."""
    if target is not None:
        for use_case in candidates:
            if use_case.id == target.use_case_id:
                return use_case
    for use_case in candidates:
        if any(s.sender == to_number for s in use_case.sender_pool):
            return use_case
    return candidates[0]


def _list_writes(inbound: InboundMessage) -> list[TransactWriteItemTypeDef]:
    """What the keyword does to the service's list, as read now: the change and its record, or,
    when the list already is as the keyword wants, a check that it still is at the write."""
    if inbound.keyword not in (Keyword.STOP, Keyword.START):
        return []
    scope = opt_out_store.service_scope(inbound.messaging_service_sid, test=inbound.test)
    wants_listed = inbound.keyword is Keyword.STOP
    listed = opt_out_store.is_listed(scope, inbound.from_number)
    if listed == wants_listed:
        return [opt_out_store.state_check(scope, inbound.from_number, listed=listed)]
    change = opt_out_store.OptOutChange(
        scope=scope,
        phone_number=inbound.from_number,
        opted_out=wants_listed,
        source=opt_out_store.OptOutSource.KEYWORD,
        at=now_iso(),
        cause_id=inbound.id,
    )
    return opt_out_store.change_writes(change)


def _store(inbound: InboundMessage, *, sleep: Callable[[float], None] = time.sleep) -> Stored:
    for attempt in range(STORE_ATTEMPTS):
        stored = inbound_store.store(inbound, _list_writes(inbound))
        if stored is Stored.CONTENDED:
            # Full jitter: two racing writers must not come back together.
            sleep(random.uniform(0, CONTENTION_PAUSE_SECONDS * 2**attempt))  # noqa: S311
        elif stored is not Stored.LIST_CHANGED:
            return stored
    raise ServiceUnavailableError("the opt-out list kept changing; retry")


def _e164(number: str) -> str | None:
    """The person's number written as sends store theirs (E.164, as phonenumbers formats it),
    or None when it is not a phone number (a short code, an alphanumeric sender)."""
    if not _E164.fullmatch(number):
        return None
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
