"""One sandbox: a worker process that runs one function's handler, one event at a time, as a
Lambda sandbox does. It enters the function's environment and role and imports the handler once
(its cold start), then answers the events its pool sends it until the pool closes the pipe.

The protocol over the pipe: the worker sends ("ready", pid) once the handler is loaded, or
("init_error", text) if it could not be; then, for each event, ("ok", result) or ("error", text)
when the handler raised (the sandbox goes on, as Lambda's Python runtime does). A worker that
dies mid-event sends nothing: its pool sees the pipe close.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from sms_local.template import FunctionSpec

# Loggers that would drown the handlers' lines at INFO.
NOISY_LOGGERS = ("werkzeug", "botocore", "urllib3")


@dataclass(frozen=True)
class WorkerSetup:
    """What a sandbox of one function needs, sent to the worker process (so: picklable).

    `environment` is the function's own variables (template.yaml's Globals and its own) plus
    what the local stack adds; `unset` the other functions' variables, which the worker
    inherited from the front's environment and must not see. `iam_environment` is every
    function's variables, which say what the ${...} in the roles' grants are. Without an
    `endpoint_url` the worker touches no AWS setup (tests' probe functions)."""

    function: FunctionSpec
    endpoint_url: str | None
    environment: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    iam_environment: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)


def serve(connection: Connection) -> None:
    """The worker process's main function: the setup first, then events."""
    # Ctrl-C goes to the whole process group: the front stops its sandboxes itself, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        setup: WorkerSetup = connection.recv()
    except (EOFError, OSError):
        return
    try:
        handler = _initialise(setup)
    except BaseException:
        connection.send(("init_error", traceback.format_exc()))
        return
    from sms_local.lambda_runtime import LambdaContext

    connection.send(("ready", os.getpid()))
    name, timeout = setup.function.name, setup.function.timeout
    while True:
        try:
            event = connection.recv()
        except (EOFError, OSError):
            return  # the pool is gone
        if event is None:
            return
        try:
            result = handler(event, LambdaContext(function_name=name, timeout_seconds=timeout))
        except Exception as error:
            # Lambda writes an unhandled error to the function's log and reports it.
            traceback.print_exc(file=sys.stderr)
            connection.send(("error", f"{type(error).__name__}: {error}"))
            continue
        connection.send(("ok", result))


def _initialise(setup: WorkerSetup) -> Any:
    from sms_local.handler_logs import compact_handler_logs
    from sms_local.lambda_runtime import load_handler, use_local_aws

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)-16s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stdout)  # fmt: skip
    warnings.filterwarnings("ignore", "No application metrics to publish")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in setup.unset:
        os.environ.pop(name, None)
    os.environ.update(setup.environment)
    if setup.endpoint_url is not None:
        use_local_aws(
            setup.endpoint_url,
            setup.environment,
            setup.parameters,
            iam_environment=setup.iam_environment or setup.environment,
        )
    handler = load_handler(setup.function)
    compact_handler_logs(setup.function.name)
    return handler


if __name__ == "__main__":
    # The front passes its end of a socket pair as the only argument.
    serve(Connection(int(sys.argv[1])))
