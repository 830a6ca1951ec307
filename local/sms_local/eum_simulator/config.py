"""The simulator's configuration: origination identities, configuration sets, where events go, and
the behaviour knobs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EumSimulatorConfig:
    # Every spelling of an OriginationIdentity the account owns (pool id, pool ARN, phone number,
    # phone number id or ARN, sender ID...) -> the E.164 number the message is sent from.
    origination_identities: dict[str, str]
    # Configuration set name (and ARN) -> the SNS topic ARN of its event destination (None: the
    # set has no event destination, so its messages' events go nowhere).
    configuration_sets: dict[str, str | None] = field(default_factory=dict)
    # Where the events are published with an SNS client (moto's server in the local stack);
    # None: they are only logged.
    sns_endpoint_url: str | None = None
    region: str = "us-east-1"
    # acceptance -> first event, first event -> second event (seconds)
    event_delays: tuple[float, float] = (0.05, 0.05)
    # Every API request answers 503 ServiceUnavailableException (counted, nothing else done).
    outage: bool = False
    duplicate_events: bool = False
    reorder_events: bool = False
