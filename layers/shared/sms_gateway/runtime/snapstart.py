"""Lambda SnapStart (template.yaml, parameter SnapStart): the init phase runs once, when a version
is published, and every new execution environment resumes from its snapshot.

With SnapStart on (SMS_GATEWAY_SNAPSTART=true, set by the template), `prepare()` (called by
startup.finish() at the end of a function's import) does in the init phase what a first request
would otherwise do: settings read and validated, the AWS clients made (their service models,
endpoint rules and HTTP set-up), so that the snapshot holds them. It registers `after_restore`
with Lambda's runtime hooks (the snapshot_restore_py module of Lambda's Python runtime; absent
elsewhere, where nothing is registered), which resets what must not be shared by every
environment resumed from one snapshot:

- Python's `random`, reseeded from the OS (the snapshot holds one state of it; `secrets` and
  uuid4 read the OS and need nothing);
- the AWS clients, their connections and the credentials they hold, made again from the
  snapshot's already parsed service models (their loader is kept: a model does not change);
- cached secrets (Twilio auth tokens can be rotated while a snapshot lives on), the idempotency
  layer's and the provider clients' connections, and the caches of use cases, prices and
  provider health, as a new environment would start.
"""

from __future__ import annotations

import importlib
import os
import random

ENABLED_VARIABLE = "SMS_GATEWAY_SNAPSTART"


# Lambda's own variable: "snap-start" only in the init phase of a version being snapshotted
# ("on-demand" for a plain cold start, e.g. of a function invoked on $LATEST).
INITIALIZATION_TYPE_VARIABLE = "AWS_LAMBDA_INITIALIZATION_TYPE"


def enabled() -> bool:
    """SnapStart is on for the stack and this init phase is the one a snapshot keeps: a plain
    cold start must not pay for a warm-up it would not keep."""
    return (
        os.environ.get(ENABLED_VARIABLE, "").lower() == "true"
        and os.environ.get(INITIALIZATION_TYPE_VARIABLE) == "snap-start"
    )


def prepare() -> bool:
    """With SnapStart on and Lambda's hooks at hand: warm up in the init phase and register
    `after_restore`. Whether it did."""
    if not enabled():
        return False
    try:
        hooks = importlib.import_module("snapshot_restore_py")  # Lambda's Python runtime has it
    except ImportError:  # not Lambda's runtime: there is no snapshot to prepare
        return False
    warm_up()
    hooks.register_after_restore(after_restore)
    return True


def warm_up() -> None:
    """What every function's first request does anyway, done where the snapshot keeps it."""
    from sms_gateway.config import get_settings
    from sms_gateway.store import aws_clients

    get_settings()
    aws_clients.dynamodb()
    aws_clients.sqs()
    aws_clients.secretsmanager()


def after_restore() -> None:
    """Reset what each resumed environment must have of its own."""
    from sms_gateway.runtime import cached_state

    random.seed()
    cached_state.forget(settings=False, client_models=False)
