"""Composing a message: its body (a template rendered, look-alikes replaced), its encoding and
segments, its sender (an alphanumeric sender ID, where the destination accepts one) and its cost.
The send and the preview both compose through here, so a preview answers what a send stores."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sms_gateway.domain.errors import SenderIdInvalidError, TemplateNotFoundError, ValidationError
from sms_gateway.domain.ids import is_uuid
from sms_gateway.domain.pricing import Cost, cost_of
from sms_gateway.domain.segments import SegmentCount, count_segments
from sms_gateway.domain.sender_ids import accepts_alphanumeric_sender, check_sender_id
from sms_gateway.store import price_store, sender_id_store

if TYPE_CHECKING:
    from sms_gateway.domain.templates import Template

MAX_MESSAGE_CHARS = 1600


@dataclass(frozen=True, slots=True)
class Body:
    text: str
    template_id: str | None


def find_template(workspace_id: str, id_or_slug: str) -> Template:
    """A template of the workspace, named by its id or its slug (a slug is never a UUID)."""
    # Imported here: most sends name no template, and should not build its models at cold start
    # (nor the smart encoding table, below, unless asked for).
    from sms_gateway.domain.templates import is_slug
    from sms_gateway.store import template_store

    if is_uuid(id_or_slug):
        template = template_store.get_by_id(workspace_id, str(uuid.UUID(id_or_slug)))
    elif is_slug(id_or_slug):
        template = template_store.get_by_slug(workspace_id, id_or_slug)
    else:
        # No template can have this name: nothing to read (and nothing DynamoDB would refuse).
        template = None
    if template is None:
        raise TemplateNotFoundError("template not found", template=id_or_slug)
    return template


def compose_body(
    workspace_id: str,
    *,
    message: str | None,
    template: str | None,
    variables: Mapping[str, str] | None,
    smart_encoding: bool,
) -> Body:
    """The text to send: the message, or the template rendered with its variables; then, with
    smart_encoding, look-alikes replaced. Its length is checked last, as it will be sent."""
    if template is not None:
        from sms_gateway.domain.templates import render

        found = find_template(workspace_id, template)
        text, template_id = render(found.body, variables or {}), found.id
    else:
        assert message is not None
        text, template_id = message, None
    if smart_encoding:
        from sms_gateway.domain.smart_encoding import smart_encode

        text = smart_encode(text)
    if not 1 <= len(text) <= MAX_MESSAGE_CHARS:
        raise ValidationError(
            f"message must be 1 to {MAX_MESSAGE_CHARS} characters",
            errors=[
                {
                    "field": "message" if template is None else "template",
                    "issue": "length out of range",
                }
            ],
        )
    return Body(text, template_id)


@dataclass(frozen=True, slots=True)
class SenderDecision:
    sender_id: str | None
    applied: bool | None  # None: no sender ID was asked for


def decide_sender(workspace_id: str, sender_id: str | None, country: str | None) -> SenderDecision:
    """A sender ID must follow the rule and be the workspace's; it is used where the destination
    country accepts alphanumeric senders, and otherwise the use case's pool sends."""
    if sender_id is None:
        return SenderDecision(None, None)
    check_sender_id(sender_id)
    if not sender_id_store.is_registered(workspace_id, sender_id):
        raise SenderIdInvalidError(
            "this sender ID is not registered to the workspace (POST /v1/sms/sender-ids)",
            field="sender_id",
        )
    return SenderDecision(sender_id, accepts_alphanumeric_sender(country))


@dataclass(frozen=True, slots=True)
class Pricing:
    count: SegmentCount
    cost: Cost | None


def price(text: str, country: str | None, *, test: bool) -> Pricing:
    count = count_segments(text)
    return Pricing(count, cost_of(price_store.price_for(country), count.segments, test=test))
