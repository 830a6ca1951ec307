"""sms_gateway.runtime.startup: packages loaded without their __init__ until a name needs it, the
garbage collector paused for the import, and every function still answering and logging exactly
as with the packages imported the usual way."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sms_gateway.runtime import startup
from sms_local import template as tpl

ROOT = Path(__file__).resolve().parents[2]

# Imported by the package __init__s that startup skips, and by no function.
GUARDED_MODULES = (
    "aws_lambda_powertools.event_handler.appsync",
    "aws_lambda_powertools.event_handler.bedrock_agent",
    "aws_lambda_powertools.event_handler.events_appsync.appsync_events",
    "aws_lambda_powertools.event_handler.vpc_lattice",
    "aws_lambda_powertools.utilities.data_classes.appsync_resolver_event",
    "aws_lambda_powertools.utilities.data_classes.bedrock_agent_function_event",
    "aws_lambda_powertools.utilities.data_classes.cognito_user_pool_event",
    "phonenumbers.asyoutypeformatter",
    "phonenumbers.phonenumbermatcher",
    "boto3.session",
    "boto3.resources.factory",
)


# -- lazy packages, on a package of the test's own ------------------------------------------------


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    """A package whose __init__ records that it ran, imports two names from submodules and
    computes one."""
    root = tmp_path / "lazy_pkg_under_test"
    root.mkdir()
    (root / "__init__.py").write_text(
        textwrap.dedent(
            """
            import sys
            sys.modules["builtins"].__dict__.setdefault("LAZY_INIT_RUNS", []).append(1)
            from .alpha import Alpha
            from .beta import beta as renamed_beta
            from lazy_pkg_under_test.gamma import GAMMA
            from .epsilon import epsilon
            COMPUTED = Alpha.__name__ + "!"
            __all__ = ["Alpha", "renamed_beta", "GAMMA", "COMPUTED"]
            """
        )
    )
    (root / "alpha.py").write_text("class Alpha:\n    pass\n")
    (root / "beta.py").write_text("def beta():\n    return 'b'\n")
    (root / "gamma.py").write_text("GAMMA = 3\n")
    (root / "delta.py").write_text("DELTA = 4\n")
    (root / "epsilon.py").write_text("def epsilon():\n    return 'e'\n")
    sys.path.insert(0, str(tmp_path))
    import builtins

    builtins.__dict__.pop("LAZY_INIT_RUNS", None)
    yield "lazy_pkg_under_test"
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.split(".")[0] == "lazy_pkg_under_test"]:
        del sys.modules[name]
    builtins.__dict__.pop("LAZY_INIT_RUNS", None)


def _init_runs() -> int:
    import builtins

    return len(builtins.__dict__.get("LAZY_INIT_RUNS", []))


def test_names_imported_from_submodules_come_without_the_init(package: str) -> None:
    assert startup.lazy_package(package)
    module = sys.modules[package]
    from lazy_pkg_under_test import Alpha, renamed_beta  # type: ignore[import-not-found]
    from lazy_pkg_under_test.alpha import Alpha as real_alpha  # type: ignore[import-not-found]

    assert Alpha is real_alpha
    assert renamed_beta() == "b"
    assert module.GAMMA == 3
    assert _init_runs() == 0
    assert startup.is_lazy(package)


def test_a_name_its_submodule_shares_stays_the_name_the_init_binds(package: str) -> None:
    # `from .epsilon import epsilon`: a plain import binds the function over the submodule; a
    # lazy package must not let an import of the submodule leave the module there instead.
    startup.lazy_package(package)
    import lazy_pkg_under_test.epsilon  # type: ignore[import-not-found]  # noqa: F401
    from lazy_pkg_under_test import epsilon

    assert callable(epsilon) and epsilon() == "e"
    assert _init_runs() == 0


def test_a_submodule_imports_without_the_init(package: str) -> None:
    startup.lazy_package(package)
    from lazy_pkg_under_test import delta

    assert delta.DELTA == 4
    assert _init_runs() == 0


def test_any_other_name_runs_the_real_init_once(package: str) -> None:
    startup.lazy_package(package)
    module = sys.modules[package]
    assert module.COMPUTED == "Alpha!"
    assert module.__all__ == ["Alpha", "renamed_beta", "GAMMA", "COMPUTED"]
    assert _init_runs() == 1
    assert not startup.is_lazy(package)
    namespace: dict[str, Any] = {}
    exec(f"from {package} import *", namespace)  # noqa: S102 - the star import's own path
    assert namespace["COMPUTED"] == "Alpha!"
    with pytest.raises(AttributeError):
        _ = module.no_such_name
    assert _init_runs() == 1


def test_a_package_already_imported_is_left_alone(package: str) -> None:
    __import__(package)
    assert _init_runs() == 1
    assert not startup.lazy_package(package)
    assert not startup.is_lazy(package)


def test_initialize_runs_the_real_init(package: str) -> None:
    startup.lazy_package(package)
    startup.initialize(package)
    assert _init_runs() == 1
    assert sys.modules[package].COMPUTED == "Alpha!"
    startup.initialize(package)
    assert _init_runs() == 1


# -- each function, imported as Lambda imports it -------------------------------------------------


def _functions() -> dict[str, tuple[str, dict[str, str]]]:
    from bench.common import aws_environment, fake_stack, function_environment, handler_path

    template = tpl.project_template()
    stack = fake_stack(template)
    found = {}
    for name, spec in sorted(tpl.functions(template).items()):
        path, _ = handler_path(spec)
        env = {**aws_environment(), **function_environment(spec, stack)}
        found[name] = (path, env)
    return found


FUNCTIONS = _functions()

_IMPORT = """
import gc, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("lambda_function_module", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
from sms_gateway.runtime import startup
print(json.dumps({{
    "loaded": [name for name in {guarded!r} if name in sys.modules],
    "lazy": {{n: startup.is_lazy(n) for n in startup.LAZY_PACKAGES if n in sys.modules}},
    "gc_enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
}}))
"""


def _run(code: str, env: dict[str, str], cwd: Path) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_function_imports_without_what_it_never_uses(name: str) -> None:
    path, env = FUNCTIONS[name]
    out = _run(_IMPORT.format(path=path, guarded=GUARDED_MODULES), env, Path(path).parent)
    result = json.loads(out.splitlines()[-1])
    assert result["loaded"] == []
    # Powertools' event_handler and data_classes, and boto3, are used without their __init__.
    assert result["lazy"].get("aws_lambda_powertools.event_handler", True)
    assert result["lazy"].get("boto3", True)
    assert result["gc_enabled"]
    assert result["frozen"] > 10_000


# The same requests to the same handler, once as shipped (lazy packages) and once with every
# skipped package __init__ run before the function is imported: the answers and the log lines
# must not differ. Only requests no AWS call answers (the local stack's tests cover the rest).
_INVOKE = """
import importlib, json, sys
if {eager!r}:
    for name in ("aws_lambda_powertools.event_handler",
                 "aws_lambda_powertools.utilities.data_classes", "phonenumbers", "boto3"):
        importlib.import_module(name)
import importlib.util
spec = importlib.util.spec_from_file_location("lambda_function_module", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
from sms_gateway.runtime import startup
assert startup.is_lazy("aws_lambda_powertools.event_handler") is not {eager!r}
class Context:
    function_name = "f"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    aws_request_id = "00000000-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/f"
    log_stream_name = "s"
for event in {events!r}:
    print("RESPONSE " + json.dumps(module.lambda_handler(event, Context()), sort_keys=True))
"""


def _http_event(method: str, path: str, body: str | None, claims: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "sms.example.test"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "sms.example.test",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.1",
                "userAgent": "t",
            },
            "requestId": "req-1",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "25/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795608000000,
            "authorizer": {"lambda": claims},
        },
        "body": body,
        "isBase64Encoded": False,
    }


_SENDER = {
    "authenticated": True,
    "workspace_id": "0b5e8e4e-5a6f-4c1e-9d1e-000000000001",
    "scopes": "messages:read messages:send",
    "key_id": "k",
    "mode": "live",
}
_NOBODY = {"authenticated": False, "reason": "no API key"}
CASES = {
    "SendFunction": [
        _http_event("POST", "/v1/sms/", "{}", _NOBODY),  # 401
        _http_event("POST", "/v1/sms/", "not json", _SENDER),  # validation_error
        _http_event("POST", "/v1/sms/", '{"to_phone_number": "12"}', _SENDER),
        _http_event("GET", "/v1/nothing", None, _SENDER),  # no such route
    ],
    "UseCasesFunction": [
        _http_event("POST", "/v1/use-cases/", "[]", _SENDER),  # scope missing
        _http_event("DELETE", "/v1/use-cases/", None, _SENDER),
    ],
    "CancelFunction": [_http_event("POST", "/v1/sms/nope/cancel", None, _NOBODY)],
}


def _answers_and_logs(name: str, eager: bool) -> tuple[list[str], list[dict[str, Any]]]:
    path, env = FUNCTIONS[name]
    code = _INVOKE.format(eager=eager, path=path, events=CASES[name])
    out = _run(code, env, Path(path).parent).splitlines()
    responses = [line for line in out if line.startswith("RESPONSE ")]
    logs = []
    for line in out:
        if line.startswith("{"):
            record = json.loads(line)
            record.pop("timestamp", None)  # the clock's, in a log line and in a metric
            record.get("_aws", {}).pop("Timestamp", None)
            logs.append(record)
    return responses, logs


@pytest.mark.parametrize("name", sorted(CASES))
def test_answers_and_logs_are_those_of_the_packages_imported_as_usual(name: str) -> None:
    lazy_responses, lazy_logs = _answers_and_logs(name, eager=False)
    eager_responses, eager_logs = _answers_and_logs(name, eager=True)
    assert len(lazy_responses) == len(CASES[name])
    assert lazy_responses == eager_responses
    assert lazy_logs  # the cold start metric at least
    assert lazy_logs == eager_logs
