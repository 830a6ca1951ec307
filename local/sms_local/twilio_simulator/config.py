"""The simulator's configuration: accounts, Messaging Service pools and the behaviour knobs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SimulatorConfig:
    accounts: dict[str, str]  # AccountSid -> auth token
    services: dict[str, list[str]]  # MessagingServiceSid -> sender pool, in priority order
    sticky_sender: bool = True
    area_code_geomatch: bool = True
    callback_delays: tuple[float, float] = (0.05, 0.05)  # queued->sent, sent->final (seconds)
    duplicate_callbacks: bool = False
    reorder_callbacks: bool = False
    reject_unsubscribed_synchronously: bool = False
    # Every create answers 503 20503 (counted, nothing authenticated or stored) while it is on.
    outage: bool = False
    # The Messaging Services' "Inbound Request URL": where POST /_simulator/inbound posts the
    # incoming message (None: incoming messages are refused).
    inbound_url: str | None = None
    # MessagingServiceSid -> AccountSid that owns it; its token signs the incoming-message webhook.
    service_accounts: dict[str, str] = field(default_factory=dict)
