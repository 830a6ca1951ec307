"""One try of one provider to take a message, as GET /v1/sms/{id} shows it in
`provider_attempts`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# Attempts kept on a message: a message tries each of its (at most two) providers on each of the
# handoff's deliveries, so this holds every attempt of a message that ends after retries; past
# it the item would only grow.
MAX_PROVIDER_ATTEMPTS = 40


class AttemptOutcome(StrEnum):
    # The provider took the message.
    ACCEPTED = "accepted"
    # It refused it for good: an account, route or recipient error (error_code says which).
    REFUSED = "refused"
    # It certainly did not take it, and may later: connection refused, 429, 503.
    RETRY_LATER = "retry_later"
    # It may have taken it (no answer after the request left): never resent.
    UNKNOWN = "unknown"


class ProviderAttempt(BaseModel):
    model_config = ConfigDict(extra="ignore")

    provider: str = Field(description="twilio or aws_eum")
    at: str = Field(description="ISO 8601 UTC, when the provider answered (or did not)")
    outcome: AttemptOutcome
    error_code: int | None = Field(
        default=None, description="Why it refused, in the error codes of error_code"
    )
    provider_message_id: str | None = Field(
        default=None, description="The provider's id for the message, when it took it"
    )

    def to_item(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)
