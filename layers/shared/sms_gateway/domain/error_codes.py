"""Our error codes, as a message's `error_code` reports them.

The API reports the error codes of Twilio's numbering (the reference API's), so a provider's
codes are mapped to these; the 99xxx codes are our own, outside Twilio's ranges, for what
happened before or around the provider (documented in the README and the API reference).
"""

# The recipient answered STOP: Twilio's 21610, "attempt to send to unsubscribed recipient".
RECIPIENT_UNSUBSCRIBED = 21610

# The handoff claimed the message and then lost track of the provider's answer: it may or may not
# have been sent, and is never resent.
OUTCOME_UNKNOWN = 99001
# The use case's provider credentials do not exist.
CREDENTIALS_UNAVAILABLE = 99002
# The provider or a dependency stayed unavailable through every delivery of the handoff.
PROVIDER_UNAVAILABLE = 99003
# The use case was deleted, deactivated, suspended or moved to another account before handoff.
USE_CASE_CHANGED = 99004
# The message's validity_period ran out before it could be handed to the provider.
VALIDITY_PERIOD_EXPIRED = 99005
# A provider refused the message for a reason of its own account or configuration that no code
# of Twilio's numbering names (e.g. AWS End User Messaging SMS's spend limit reached).
PROVIDER_REFUSED = 99006
