"""Where an outbound message sits in the reply index, and how far back a reply looks: kept apart
from the inbound message's model so that the send path, which writes the key, loads no more
than these few functions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sms_gateway.domain.callers import mode_of
from sms_gateway.domain.clock import iso

# A reply answers the latest message sent to that person from that number within this window.
REPLY_WINDOW = timedelta(days=30)


def reply_prefix(workspace_id: str, test: bool, to_number: str) -> str:
    """Where one workspace's messages of one mode to one person start in the reply index."""
    return f"{workspace_id}#{mode_of(test)}#{to_number}#"


def reply_sort(workspace_id: str, test: bool, to_number: str, sent_at: str, id_: str) -> str:
    """The reply index's sort key of an outbound message. The index's partition is the sender
    (from_number, set when the provider chose it); workspace, mode and recipient come first
    here, so one sender's messages to one person of one workspace and mode are one range of the
    partition, oldest first (`sent_at`, ISO 8601 UTC, sorts in time order)."""
    return f"{reply_prefix(workspace_id, test, to_number)}{sent_at}#{id_}"


def reply_window_start(received_at: datetime) -> str:
    """The oldest creation time a message may have and still be answered by this reply."""
    return iso(received_at - REPLY_WINDOW)
