"""The handoff's idea of the queue must match the queue's."""

from __future__ import annotations

from pathlib import Path

import pytest

from sms_gateway.logic import handoff_deliveries
from sms_gateway.logic.handoff import ANSWER_RECORDING_SECONDS
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


def test_a_record_always_fits_in_a_fresh_invocation() -> None:
    # Otherwise every record would be handed back for lack of time, delivery after delivery,
    # and end as given up (99003) on the queue's last one
    resources = tpl.project_template()["Resources"]
    timeout = resources["HandoffFunction"]["Properties"]["Timeout"]
    from sms_gateway.config import Settings

    defaults = Settings.model_fields
    call = (
        float(defaults["provider_connect_timeout_seconds"].default)
        + float(defaults["provider_read_timeout_seconds"].default)
        + ANSWER_RECORDING_SECONDS
    )
    # The reads before the call (message, use case, opt-out list, secret) and the claim also
    # take their time: leave them a few seconds
    assert timeout >= call + 5


def test_the_readme_states_how_long_the_handoff_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The backoff before each delivery but the first, up to the queue's last delivery, with
    # the default settings (the tables and queues they also name do not matter here).
    from sms_gateway.config import Settings

    monkeypatch.setattr(handoff_deliveries, "get_settings", Settings.model_construct)
    backoff_seconds = handoff_deliveries.backoff_seconds
    resources = tpl.project_template()["Resources"]
    deliveries = resources["HandoffQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    assert Settings.model_fields["handoff_retry_base_seconds"].default == 10
    total = sum(backoff_seconds(receive) for receive in range(1, deliveries))
    hours, minutes = divmod(round(total / 60), 60)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"{deliveries} deliveries over about {hours} h {minutes} min" in readme
