"""Domain errors. Each carries its HTTP status and stable error code; the API maps them in one
place (sms_gateway.api.http), never by matching on message text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import ValidationError as PydanticValidationError


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        # Response headers the answer carries besides the body (Retry-After, RateLimit-*).
        self.headers: dict[str, str] = {}


class UnauthorizedError(GatewayError):
    status = 401
    code = "unauthorized"


class ForbiddenError(GatewayError):
    status = 403
    code = "forbidden"


class UseCaseNotFoundError(GatewayError):
    status = 404
    code = "use_case_not_found"


class MessageNotFoundError(GatewayError):
    status = 404
    code = "message_not_found"


class InboundMessageNotFoundError(GatewayError):
    status = 404
    code = "inbound_message_not_found"


class TemplateNotFoundError(GatewayError):
    status = 404
    code = "template_not_found"


class SenderIdNotFoundError(GatewayError):
    status = 404
    code = "sender_id_not_found"


class TemplateSlugTakenError(GatewayError):
    status = 409
    code = "template_slug_taken"


class SenderIdAlreadyRegisteredError(GatewayError):
    status = 409
    code = "sender_id_already_registered"


class NotCancelableError(GatewayError):
    status = 409
    code = "not_cancelable"


class IdempotencyKeyInUseError(GatewayError):
    status = 409
    code = "idempotency_key_in_use"


class UseCaseInactiveError(GatewayError):
    status = 422
    code = "use_case_inactive"


class NoSenderInPoolError(GatewayError):
    status = 422
    code = "no_sender_in_pool"


class A2pCampaignNotVerifiedError(GatewayError):
    status = 422
    code = "a2p_campaign_not_verified"


class BrandSuspendedError(GatewayError):
    status = 422
    code = "brand_suspended"


class PhoneInvalidError(GatewayError):
    status = 422
    code = "phone_invalid"


class PhoneLandlineError(GatewayError):
    status = 422
    code = "phone_landline"


class RecipientOptedOutError(GatewayError):
    status = 422
    code = "recipient_opted_out"


class RegionNotPermittedError(GatewayError):
    status = 422
    code = "region_not_permitted"


class ValidationError(GatewayError):
    status = 422
    code = "validation_error"

    @classmethod
    def from_pydantic(cls, message: str, exc: PydanticValidationError) -> ValidationError:
        """Each problem as {field, issue}, without echoing the input back."""
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or None,
                "code": err["type"],
                "issue": err["msg"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        return cls(message, errors=errors)


def refuse_unknown_fields(data: dict[str, Any], known: set[str] | frozenset[str]) -> None:
    """A body's fields outside `known` are a validation_error naming each (as pydantic's
    extra="forbid" would), for the bodies checked field by field (PATCH, registrations)."""
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(
            "unknown fields",
            errors=[{"field": f, "code": "extra_forbidden", "issue": "unknown"} for f in unknown],
        )


class TemplateVariableMissingError(GatewayError):
    status = 422
    code = "template_variable_missing"


class TemplateVariableUnknownError(GatewayError):
    status = 422
    code = "template_variable_unknown"


class SenderIdInvalidError(GatewayError):
    status = 422
    code = "sender_id_invalid"


class IdempotencyKeyReusedError(GatewayError):
    status = 422
    code = "idempotency_key_reused"


class SendAtOutOfRangeError(GatewayError):
    status = 422
    code = "send_at_out_of_range"


class CallbackUrlInvalidError(GatewayError):
    """A status_callback_url we will not call: not https, or a literal private, loopback,
    link-local or cloud metadata address."""

    status = 422
    code = "callback_url_invalid"


class QuotaExceededError(GatewayError):
    """Neither the monthly quota nor the wallet covers the send: nothing was stored or sent."""

    status = 402
    code = "sms_quota_exceeded"


class RateLimitExceededError(GatewayError):
    """The workspace's send rate is used up for now: nothing was stored; retry after
    `retry_after` seconds (also the Retry-After header)."""

    status = 429
    code = "rate_limit_exceeded"


class ServiceUnavailableError(GatewayError):
    """A dependency failed; nothing was left half-done, so the caller may retry."""

    status = 503
    code = "service_unavailable"


# The order in which the send API checks a request: documented, and asserted by the tests. The
# body's shape (fields, types, ranges) is checked before all of them (validation_error).
SEND_ERRORS: tuple[type[GatewayError], ...] = (
    UseCaseNotFoundError,
    UseCaseInactiveError,
    NoSenderInPoolError,
    A2pCampaignNotVerifiedError,
    BrandSuspendedError,
    PhoneInvalidError,
    PhoneLandlineError,
    RecipientOptedOutError,
    RegionNotPermittedError,
    TemplateNotFoundError,
    TemplateVariableMissingError,
    TemplateVariableUnknownError,
    ValidationError,
    SenderIdInvalidError,
    SendAtOutOfRangeError,
    CallbackUrlInvalidError,
)
