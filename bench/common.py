"""What the benchmark sections share: the functions' environment, quiet stdout, statistics."""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sms_local import template as tpl
from sms_local.aws_resources import ACCOUNT_ID, REGION, LocalStack, parameter_defaults

# Nothing listens on the discard port: an AWS call that was meant to be answered in-process but
# was not fails at once instead of reaching anything.
UNREACHABLE_ENDPOINT = "http://127.0.0.1:9"
PUBLIC_BASE_URL = "https://sms.example.test"


def aws_environment(endpoint_url: str = UNREACHABLE_ENDPOINT) -> dict[str, str]:
    """Fake credentials, a fixed region and an endpoint: a benchmark can never reach AWS."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def fake_stack(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> LocalStack:
    """Resolves the template's references as the local stack does, to names of resources that
    do not exist: enough for the functions' Settings, which only read names at import."""
    stack = LocalStack(
        UNREACHABLE_ENDPOINT,
        {**parameter_defaults(template), "PublicBaseUrl": PUBLIC_BASE_URL, **(parameters or {})},
        conditions=template.get("Conditions", {}),
    )
    for name, resource in template.get("Resources", {}).items():
        kind = str(resource.get("Type", ""))
        service = kind.split("::")[1].lower() if kind.count("::") == 2 else "resource"
        ref, arn = name, f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{name}"
        attributes = {"Arn": arn}
        if kind == "AWS::SQS::Queue":
            ref = f"{UNREACHABLE_ENDPOINT}/{ACCOUNT_ID}/{name}"
            attributes.update({"QueueName": name, "QueueUrl": ref})
        elif kind == "AWS::Serverless::Function":
            attributes["Arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        elif kind == "AWS::Serverless::HttpApi":
            ref = "localapi01"
        stack.refs[name] = ref
        stack.attributes[name] = attributes
    return stack


def function_environment(spec: tpl.FunctionSpec, stack: LocalStack) -> dict[str, str]:
    """The variables template.yaml gives one function, each resolved or, failing that, faked."""
    env: dict[str, str] = {}
    for name, value in spec.environment.items():
        try:
            env[name] = str(stack.resolve(value))
        except (KeyError, IndexError, TypeError, ValueError):
            env[name] = f"bench-{name.lower().replace('_', '-')}"
    env["AWS_LAMBDA_FUNCTION_NAME"] = spec.name
    env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(
        function_shape(tpl.project_template(), spec.name)[0]
    )
    return env


def function_shape(template: dict[str, Any], name: str) -> tuple[int, str]:
    """(memory in MB, architecture) of a function: its own properties, else Globals, else
    Lambda's defaults."""
    globals_ = template.get("Globals", {}).get("Function", {})
    props = template["Resources"][name].get("Properties", {})
    memory = props.get("MemorySize", globals_.get("MemorySize", 128))
    architectures = props.get("Architectures", globals_.get("Architectures", ["x86_64"]))
    return int(memory), str(architectures[0])


def handler_path(spec: tpl.FunctionSpec) -> tuple[str, str]:
    """(path of the handler's module file, attribute) as sms_local.lambda_runtime loads them."""
    module_name, _, attribute = spec.handler.rpartition(".")
    path = tpl.PROJECT_ROOT / spec.code_uri / f"{module_name.replace('.', '/')}.py"
    return str(path), attribute


@contextmanager
def json_result_channel() -> Iterator[Callable[[dict[str, Any]], None]]:
    """Point fd 1 at /dev/null for the section's run (handlers log JSON to stdout, as they do in
    Lambda) and yield a writer that puts the section's result on the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    real_stdout = os.fdopen(saved, "w")

    def write(result: dict[str, Any]) -> None:
        real_stdout.write(json.dumps(result, indent=1, sort_keys=True) + "\n")
        real_stdout.flush()

    try:
        yield write
    finally:
        real_stdout.close()


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in [0, 1])."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])
