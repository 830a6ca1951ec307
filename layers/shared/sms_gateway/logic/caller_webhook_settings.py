"""Where a message's status webhooks go: the send's own URL and method, else its use case's;
each URL checked against SSRF before anything is stored (and again, resolved, at each attempt)."""

from __future__ import annotations

from dataclasses import dataclass

from sms_gateway.config import get_settings
from sms_gateway.domain.callback_urls import callback_url_problem
from sms_gateway.domain.caller_webhooks import CallbackMethod
from sms_gateway.domain.errors import CallbackUrlInvalidError
from sms_gateway.domain.use_cases import UseCase


@dataclass(frozen=True, slots=True)
class Receipts:
    """What the message stores. POST, the default, is stored as no method (an absent
    attribute: no write bytes for it)."""

    url: str | None
    method: CallbackMethod | None
    delivery_receipt: bool


NO_RECEIPTS = Receipts(url=None, method=None, delivery_receipt=True)


def require_callable_url(url: str, field: str = "status_callback_url") -> None:
    problem = callback_url_problem(
        url, allow_loopback_http=get_settings().caller_webhook_allow_loopback_http
    )
    if problem is not None:
        raise CallbackUrlInvalidError(
            f"{field} cannot be called: {problem}",
            errors=[{"field": field, "code": "callback_url_invalid", "issue": problem}],
        )


def receipts_for(
    use_case: UseCase,
    url: str | None,
    method: CallbackMethod | None,
    *,
    delivery_receipt: bool,
) -> Receipts:
    if url is not None:
        require_callable_url(url)
        chosen_method = method
    else:
        # The use case's URL comes with its method, unless the send names one.
        url = use_case.status_callback_url
        chosen_method = method or use_case.status_callback_method
    if url is None:
        chosen_method = None
    return Receipts(
        url=url,
        method=chosen_method if chosen_method == "GET" else None,
        delivery_receipt=delivery_receipt,
    )
