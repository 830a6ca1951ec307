"""The handoff's idea of the queue must match the queue's."""

from __future__ import annotations

from sms_local import template as tpl


def test_the_handoff_knows_the_queues_last_delivery() -> None:
    resources = tpl.project_template()["Resources"]
    redrive = resources["HandoffQueue"]["Properties"]["RedrivePolicy"]
    environment = resources["HandoffFunction"]["Properties"]["Environment"]["Variables"]
    assert int(environment["HANDOFF_MAX_RECEIVES"]) == redrive["maxReceiveCount"]


def test_a_stale_claim_is_found_before_the_message_is_redelivered() -> None:
    resources = tpl.project_template()["Resources"]
    visibility = resources["HandoffQueue"]["Properties"]["VisibilityTimeout"]
    timeout = resources["HandoffFunction"]["Properties"]["Timeout"]
    from sms_gateway.config import Settings

    claim_timeout = Settings.model_fields["handoff_claim_timeout_seconds"].default
    # A live worker's claim is never taken for a dead one, and a redelivery resolves a dead one.
    assert timeout < claim_timeout < visibility
