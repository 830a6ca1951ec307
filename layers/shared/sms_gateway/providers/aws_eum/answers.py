"""What SendTextMessage's answer means for the handoff.

Sources: the service model's errors of SendTextMessage (ThrottlingException,
ServiceQuotaExceededException, AccessDeniedException, ResourceNotFoundException,
ValidationException and ConflictException with their `Reason` enums, InternalServerException),
botocore's exceptions, and the AWS End User Messaging SMS user guide. Error codes are ours
(Twilio's numbering where one says the same, domain.error_codes otherwise).

Whether a failed call could have created a message decides everything. store.sms_voice says
when an exception came before the request was sent (NotSentError: a parameter botocore refuses,
no region, no credentials); botocore raises EndpointConnectionError or ConnectTimeoutError only
while connecting, before a byte of the request is sent; after that (a read timeout, a closed
connection, an unparseable answer, a 5xx) AWS may have taken the message.

A throttle says the account is sending faster than its rate allows, not that AWS is down: it is
retried (the next provider at once, this one later) but does not count against AWS's health.
A refusal by the account's own protect configuration of a whole country fails over (another
provider may be allowed there); of one number, it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from sms_gateway.domain import error_codes
from sms_gateway.providers.results import HandoffResult, OutcomeUnknown, Rejected, RetryLater
from sms_gateway.store.sms_voice import NotSentError

# Raised once the request was on its way but before a connection carried it: nothing was
# created.
NOT_SENT = (EndpointConnectionError, ConnectTimeoutError)
CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)

# Twilio's codes for the same answers: 429 "Too Many Requests", 503 "Service Unavailable".
TOO_MANY_REQUESTS = 20429
SERVICE_UNAVAILABLE = 20503

# Refusals about the recipient: the message fails, no other provider is tried.
RECIPIENT_CONFLICTS: Mapping[str, int] = {
    "DESTINATION_PHONE_NUMBER_OPTED_OUT": error_codes.RECIPIENT_UNSUBSCRIBED,
    # The operator's protect configuration blocks this number: another provider must not
    # send around it.
    "DESTINATION_PHONE_NUMBER_BLOCKED_BY_PROTECT_NUMBER_OVERRIDE": 30004,
}
# Twilio's 21211: "Invalid 'To' Phone Number".
INVALID_DESTINATION = 21211
DESTINATION_FIELD = "DestinationPhoneNumber"

# Refusals of this account or route (not the recipient's): the next provider may take it.
ROUTE_VALIDATIONS: Mapping[str, int] = {
    # 21408: "Permission to send an SMS has not been enabled for the region".
    "DESTINATION_COUNTRY_BLOCKED": 21408,
    "COUNTRY_NOT_ENABLED": 21408,
    "INTERNATIONAL_SENDING_NOT_SUPPORTED": 21408,
    "INVALID_IDENTITY_FOR_DESTINATION_COUNTRY": 21408,
    # 21606: "The From phone number is not a valid, SMS-capable number for your account".
    "SENDER_ID_NOT_REGISTERED": 21606,
    "SENDER_ID_NOT_SUPPORTED": 21606,
    "SENDER_ID_REQUIRES_REGISTRATION": 21606,
}
ACCESS_DENIED = 20003  # Twilio's "Permission Denied"
IDENTITY_NOT_FOUND = 21606
IDENTITY_TYPES = frozenset({"phone-number", "pool", "sender-id"})


def from_error(exc: Exception) -> HandoffResult:
    """The meaning of an exception SendTextMessage raised."""
    if isinstance(exc, ClientError):
        return from_client_error(exc.response)
    if isinstance(exc, NotSentError):
        # Nothing reached AWS. Credentials may come back; a parameter botocore refuses or a
        # missing region is this stack's configuration: refused here, the next provider may
        # take the message.
        if isinstance(exc.__cause__, CREDENTIAL_ERRORS):
            return RetryLater(f"not sent: {exc}", provider_unavailable=False)
        return Rejected(error_codes.PROVIDER_REFUSED, 0)
    if isinstance(exc, NOT_SENT):
        return RetryLater(f"not sent: {type(exc).__name__}")
    return OutcomeUnknown(f"no answer after sending: {type(exc).__name__}")


def from_client_error(response: Mapping[str, Any]) -> HandoffResult:
    error = response.get("Error") or {}
    code = str(error.get("Code", ""))
    reason = str(response.get("Reason", ""))
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    if code in ("ThrottlingException", "TooManyRequestsException") or status == 429:
        return RetryLater("throttled", TOO_MANY_REQUESTS, provider_unavailable=False)
    if status == 503 or code == "ServiceUnavailableException":
        return RetryLater("HTTP 503", SERVICE_UNAVAILABLE)
    if status >= 500 or code == "InternalServerException":
        # The request reached AWS, which may have created the message before failing.
        return OutcomeUnknown(f"HTTP {status} {code}")
    if code == "ConflictException" and reason in RECIPIENT_CONFLICTS:
        return Rejected(RECIPIENT_CONFLICTS[reason], status, recipient=True)
    if code == "ValidationException":
        if reason in ROUTE_VALIDATIONS:
            return Rejected(ROUTE_VALIDATIONS[reason], status)
        if DESTINATION_FIELD in _field_names(response):
            return Rejected(INVALID_DESTINATION, status, recipient=True)
    if code == "AccessDeniedException":
        return Rejected(ACCESS_DENIED, status)
    if code == "ResourceNotFoundException" and response.get("ResourceType") in IDENTITY_TYPES:
        return Rejected(IDENTITY_NOT_FOUND, status)
    return Rejected(error_codes.PROVIDER_REFUSED, status)


def _field_names(response: Mapping[str, Any]) -> set[str]:
    fields = response.get("Fields")
    if not isinstance(fields, list):
        return set()
    return {str(f.get("Name")) for f in fields if isinstance(f, dict)}
