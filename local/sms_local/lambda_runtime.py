"""Runs the functions of template.yaml in this process the way Lambda would: the handler named in
the template, the template's environment, a context object, and the function's role: every AWS
call a handler makes is checked against what template.yaml grants that function
(sms_local.iam), since moto enforces no IAM.

The running stack (`make dev`, the end-to-end benchmark) runs each function in worker processes
of its own (sms_local.sandboxes), each of which loads its handler through this module; the
integration tests call `invoke` here, in their own process, so that they can patch handlers."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from types import ModuleType
from typing import Any

from sms_local import iam
from sms_local.template import PROJECT_ROOT, FunctionSpec, project_template

Handler = Callable[[dict[str, Any], Any], Any]
# How the front and the event sources run a function on an event: `invoke` below (in this
# process), or sms_local.sandboxes.Sandboxes.invoke (in a worker process of the function's).
Invoke = Callable[[FunctionSpec, dict[str, Any]], Any]


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that Powertools and our code read."""

    function_name: str
    timeout_seconds: int
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        )
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


_modules: dict[str, ModuleType] = {}
_load_lock = threading.Lock()


def load_handler(spec: FunctionSpec) -> Handler:
    """Import functions/<name>/app.py under a name of its own (every function has an app.py);
    the handler returned makes its AWS calls as that function (its role's grants apply)."""
    module_name, _, attribute = spec.handler.rpartition(".")
    path = PROJECT_ROOT / spec.code_uri / f"{module_name.replace('.', '/')}.py"
    unique = f"lambda_{spec.name}_{module_name}"
    with _load_lock:
        module = _modules.get(unique)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(unique, path)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[unique] = module
            loader_spec.loader.exec_module(module)
            _modules[unique] = module
    handler: Handler = getattr(module, attribute)
    return as_function(spec.name, handler)


def as_function(name: str, handler: Handler) -> Handler:
    """`handler`, making its AWS calls as function `name` while it runs."""

    @wraps(handler)
    def run(event: dict[str, Any], context: Any) -> Any:
        with iam.running_as(name):
            return handler(event, context)

    return run


def merged_environment(
    specs: dict[str, FunctionSpec], resolve: Callable[[dict[str, Any]], dict[str, str]]
) -> dict[str, str]:
    """In-process, all functions share one process, so they share one environment: refuse a
    template in which two functions give one variable different values (they would see the wrong
    one). Sandboxes each get their function's own variables; this is also what resolves the
    roles' ${...} and what the info file's settings list."""
    merged: dict[str, str] = {}
    for spec in specs.values():
        for name, value in resolve(spec.environment).items():
            if merged.setdefault(name, value) != value:
                raise ValueError(
                    f"{name} differs between functions; the local stack needs one value"
                )
    return merged


def invoke(spec: FunctionSpec, event: dict[str, Any]) -> Any:
    handler = load_handler(spec)
    context = LambdaContext(function_name=spec.name, timeout_seconds=spec.timeout)
    return handler(event, context)


def reset_cached_state() -> None:
    """Forget everything the shared package derived from the environment (settings, clients,
    cached secrets, use cases and providers' health), as a new Lambda sandbox would start."""
    from sms_gateway.runtime import cached_state

    cached_state.forget(settings=True, client_models=True)


def use_local_aws(
    endpoint_url: str,
    environment: dict[str, str],
    parameters: dict[str, Any] | None = None,
    *,
    iam_environment: dict[str, str] | None = None,
) -> None:
    """Point this process's functions at an AWS endpoint on this machine (moto), with moto's
    fake credentials, give them the template's environment, and hold each to its role's grants
    (`iam_environment`, by default `environment`, says what the grants' ${TwilioSecretPrefix}
    and the like are here: a sandbox has only its function's variables, the grants need all)."""
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            **environment,
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    reset_cached_state()
    template = project_template()
    values = iam.environment_values(
        template, environment if iam_environment is None else iam_environment, parameters
    )
    iam.enforce(iam.Policy(template, values))
