"""Who may call the API: a workspace's API key, its scopes and its mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SCOPE_SEND = "messages:send"
SCOPE_READ = "messages:read"
SCOPE_MANAGE = "use_cases:manage"
SCOPE_TEMPLATES = "templates:manage"
ALL_SCOPES = (SCOPE_SEND, SCOPE_READ, SCOPE_MANAGE, SCOPE_TEMPLATES)

# A test key's messages are never handed to a provider, and it never sees live data.
KeyMode = Literal["live", "test"]


def mode_of(test: bool) -> KeyMode:
    """The mode a message or a key's request is in."""
    return "test" if test else "live"


@dataclass(frozen=True, slots=True)
class Caller:
    workspace_id: str
    scopes: frozenset[str]
    key_id: str | None = None
    mode: str = "live"

    @property
    def is_test(self) -> bool:
        """A test key: it sends, reads and cancels test messages only."""
        return self.mode == "test"
