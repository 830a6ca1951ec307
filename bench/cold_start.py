"""Cold start: a fresh process per run that imports one function's handler module (running its
module-level set-up) and then answers its first request, next to the floor: a fresh process that
imports boto3, creates a DynamoDB client and makes one GetItem with it. The first request's AWS
calls are answered in-process (bench.fake_aws, from a store filled here beforehand), so that
both halves measure CPU work, not a network. Runs of every variant are interleaved, in a seeded
random order per round.

Besides the timed runs: one `python -X importtime` run per variant (its heaviest modules) and,
when valgrind is installed, the instructions each variant executes (valgrind's cachegrind).

    python -m bench.cold_start [--runs 15] [--no-instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import (
    aws_environment,
    fake_stack,
    function_environment,
    handler_path,
    json_result_channel,
    median,
    progress,
)
from sms_local import template as tpl

FLOOR = "floor"
_MARKER = "BENCH-RESULT "

# Imported before the clock starts in every variant, so they cost the same everywhere.
_PREAMBLE = "import importlib.util, json, resource, sys, time\n_t0 = time.perf_counter()\n"
_FLOOR_BODY = 'import boto3\n_client = boto3.client("dynamodb")\n'
# What Lambda's runtime does with `Handler: app.lambda_handler` (and sms_local.lambda_runtime).
_HANDLER_BODY = """\
_spec = importlib.util.spec_from_file_location("lambda_function_module", {path!r})
_module = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _module
_spec.loader.exec_module(_module)
assert callable(getattr(_module, {attribute!r}))
"""
# Peak memory is the process's own high-water mark (VmHWM): getrusage's ru_maxrss carries the
# parent's resident size at fork into the child, exec or not, so every variant would read at
# least the benchmark's own size.
_PEAK_KB = (
    "def _peak_kb():\n"
    "    with open('/proc/self/status') as _status:\n"
    "        return next(int(l.split()[1]) for l in _status if l.startswith('VmHWM:'))\n"
)
_IMPORTED = (
    "_t1 = time.perf_counter()\n_ru1 = resource.getrusage(resource.RUSAGE_SELF)\n"
    + _PEAK_KB
    + "_peak1 = _peak_kb()\n"
)
# Not timed: the fake AWS (its store read from a file the parent wrote), hooked on every client
# made from now on (the functions make theirs in their first request) and on the floor's.
_HARNESS = """\
sys.path.append({root!r})
with open({request_path!r}) as _file:
    _request = json.load(_file)
from bench.fake_aws import FakeAws
_fake = FakeAws.from_state(_request["state"])
import botocore.session
_create_client = botocore.session.Session.create_client
def _hooked_create_client(self, *args, **kwargs):
    client = _create_client(self, *args, **kwargs)
    _fake.attach(client)
    return client
botocore.session.Session.create_client = _hooked_create_client
if "_client" in globals():
    _fake.attach(_client)
class _Context:
    function_name = {name!r}
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + {name!r}
    aws_request_id = "00000000-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/" + {name!r}
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 10_000
"""
_INVOKE_HANDLER = """\
_t2 = time.perf_counter()
_response = _module.{attribute}(_request["event"], _Context())
_t3 = time.perf_counter()
"""
_INVOKE_FLOOR = """\
_t2 = time.perf_counter()
_response = _client.get_item(**_request["get_item"])
_t3 = time.perf_counter()
"""
_EPILOGUE = f"""\
if "_t3" not in globals():
    _t2 = _t3 = _t1
    _response = None
_ru = resource.getrusage(resource.RUSAGE_SELF)
print({_MARKER!r} + json.dumps({{
    "ms": (_t1 - _t0) * 1000.0,
    "first_request_ms": (_t3 - _t2) * 1000.0,
    "maxrss_kb": _peak1,
    "total_maxrss_kb": _peak_kb(),
    "cpu_ms": (_ru1.ru_utime + _ru1.ru_stime) * 1000.0,
    "status": _response.get("statusCode", _response.get("isAuthorized"))
        if isinstance(_response, dict) else None,
    "unanswered": dict(_fake.unanswered) if "_fake" in globals() else {{}},
    "calls": dict(_fake.calls) if "_fake" in globals() else {{}},
}}), flush=True)
"""

# Passed through from our own environment: how to find Python and this project's packages.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")

# The event each function's first request carries: events/<file>.json (kept per function in the
# repository), its sample ids replaced by the bench store's; the send and the status callback
# are built as bench.warm_cost builds them (a signed callback for the message the send stored).
EVENT_FILES = {
    "AuthorizerFunction": "authorizer.json",
    "CallerWebhookFunction": "caller_webhooks.json",
    "CancelFunction": "cancel.json",
    "CatalogFunction": "catalog_templates_create.json",
    "EumEventsFunction": "eum_events.json",
    "HandoffFunction": "handoff.json",
    "InboundSmsFunction": "inbound_sms.json",
    "MessagesQueryFunction": "messages_query_get.json",
    "ReplyForwardingFunction": "reply_forwarding.json",
    "ScheduledDispatchFunction": "scheduled_dispatch.json",
    "UsageFunction": "message_stream.json",
    "UseCasesFunction": "use_cases_list.json",
}
_SAMPLE_WORKSPACE = "0b5e8e4e-5a6f-4c1e-9d1e-000000000001"
_SAMPLE_USE_CASE = "9d3e1b4a-7c2f-4a5e-b8d0-000000000003"
_SAMPLE_MESSAGE = "5f0c7a2e-3b1d-4e8f-a6c9-000000000002"
_SAMPLE_KEY = "sk_live_SampleKeyOnlyForEvents000000000000000000000"


def _base_environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSTHROUGH if name in os.environ}
    env.update(aws_environment())
    return env


def first_requests(directory: Path, names: list[str]) -> dict[str, Path]:
    """Fills a fake AWS store (bench.warm_cost's demo workspace and one sent message) and writes,
    per variant, the file its process reads: the store and the first request's event (the
    floor's: a GetItem of an item in the store)."""
    from bench import warm_cost

    scenario = warm_cost.prepare()
    from sms_gateway.api.authorizer import authorizer_response
    from sms_gateway.logic.auth import authenticate

    # The other routes want scopes the send's key lacks (templates, use cases): the admin key's.
    admin = authorizer_response(authenticate(f"Bearer {scenario.demo.keys['admin']}"))
    state = scenario.fake.state()
    ids = {
        _SAMPLE_WORKSPACE: scenario.demo.workspace_id,
        _SAMPLE_USE_CASE: scenario.demo.use_case.id,
        _SAMPLE_MESSAGE: scenario.message_id,
        _SAMPLE_KEY: scenario.demo.keys["live"],
    }
    built = {
        warm_cost.SEND: scenario.send_event(),
        warm_cost.CALLBACK: scenario.callback_event("sent"),
    }
    paths = {}
    for name in names:
        if name == FLOOR:
            table, key, _ = state["items"][0]
            key_names = state["key_schema"][table]
            item = next(i for t, k, i in state["items"] if (t, k) == (table, key))
            request: dict[str, Any] = {
                "get_item": {"TableName": table, "Key": {k: item[k] for k in key_names}}
            }
        elif name in built:
            request = {"event": built[name]}
        else:
            text = (tpl.PROJECT_ROOT / "events" / EVENT_FILES[name]).read_text()
            for sample, real in ids.items():
                text = text.replace(sample, real)
            event = json.loads(text)
            authorizer = event.get("requestContext", {}).get("authorizer")
            if isinstance(authorizer, dict) and "lambda" in authorizer:
                authorizer["lambda"] = dict(admin["context"])
            request = {"event": event}
        request["state"] = state
        path = directory / f"{name}.json"
        path.write_text(json.dumps(request))
        paths[name] = path
    return paths


def variants(
    request_files: dict[str, Path] | None = None,
) -> tuple[dict[str, tuple[str, dict[str, str], str]], list[str]]:
    """name -> (code, environment, working directory); and the functions skipped (no code).
    Without request files, the code stops after the import."""
    template = tpl.project_template()
    stack = fake_stack(template)
    base = _base_environment()
    root = str(tpl.PROJECT_ROOT)

    def code(name: str, body: str, invoke: str) -> str:
        if request_files is None:
            return _PREAMBLE + body + _IMPORTED + _EPILOGUE
        harness = _HARNESS.format(root=root, request_path=str(request_files[name]), name=name)
        return _PREAMBLE + body + _IMPORTED + harness + invoke + _EPILOGUE

    found: dict[str, tuple[str, dict[str, str], str]] = {
        FLOOR: (code(FLOOR, _FLOOR_BODY, _INVOKE_FLOOR), base, root),
    }
    skipped = []
    for name, spec in sorted(tpl.functions(template).items()):
        path, attribute = handler_path(spec)
        if not Path(path).is_file():
            skipped.append(name)
            continue
        body = _HANDLER_BODY.format(path=path, attribute=attribute)
        # Lambda's working directory is the function's code (/var/task).
        env = {**base, **function_environment(spec, stack)}
        found[name] = (
            code(name, body, _INVOKE_HANDLER.format(attribute=attribute)),
            env,
            str(Path(path).parent),
        )
    return found, skipped


def run_once(code: str, env: dict[str, str], cwd: str) -> dict[str, Any]:
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    wall_ms = (time.perf_counter() - started) * 1000.0
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_MARKER)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"cold-start run failed ({completed.returncode}):\n{completed.stderr}")
    measured: dict[str, Any] = json.loads(lines[-1].removeprefix(_MARKER))
    measured["process_wall_ms"] = wall_ms
    return measured


def import_time_items(code: str, env: dict[str, str], cwd: str, top: int = 5) -> dict[str, Any]:
    """`python -X importtime`: the modules that took longest themselves (self time, their own
    imports excluded), and the total by top-level package. One run: for the ranking."""
    completed = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    modules: Counter[str] = Counter()
    for line in completed.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s+(\S+)", line)
        if match:
            modules[match.group(2)] += int(match.group(1))
    packages: Counter[str] = Counter()
    for module, micros in modules.items():
        packages[module.split(".")[0]] += micros
    return {
        "modules": [[name, us / 1000.0] for name, us in modules.most_common(top)],
        "packages": [[name, us / 1000.0] for name, us in packages.most_common(top)],
        "total_ms": sum(modules.values()) / 1000.0,
    }


def _instructions(code: str, env: dict[str, str], cwd: str) -> int:
    completed = subprocess.run(  # noqa: S603 - valgrind on our own interpreter
        [
            shutil.which("valgrind") or "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-c",
            code,
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"I\s+refs:\s+([\d,]+)", completed.stderr)
    if completed.returncode != 0 or match is None:
        raise RuntimeError(f"valgrind run failed ({completed.returncode}):\n{completed.stderr}")
    return int(match.group(1).replace(",", ""))


def instruction_counts(
    imports: dict[str, tuple[str, dict[str, str], str]],
    requests: dict[str, tuple[str, dict[str, str], str]],
) -> dict[str, Any]:
    """Instructions executed (valgrind), deterministic where times are not: the import alone,
    and the import plus the first request, each less those of the interpreter's own start-up
    and the benchmark's harness (the same for every variant: measured once, on the floor)."""
    _, env, cwd = imports[FLOOR]
    empty = _instructions(_PREAMBLE, env, cwd)
    floor_code = requests[FLOOR][0]
    harness_only = floor_code[: floor_code.index("_t2 = time.perf_counter()")]
    harness = _instructions(harness_only, env, cwd) - _instructions(imports[FLOOR][0], env, cwd)
    counts = {}
    for name in imports:
        imported = _instructions(*imports[name]) - empty
        answered = _instructions(*requests[name]) - empty - harness
        counts[name] = {"import": imported, "import_and_first_request": answered}
        progress(f"cold start: instructions of {name}")
    return {"variants": counts, "harness": harness, "interpreter": empty}


def measure(runs: int, seed: int = 20261125, instructions: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        imports_only, _ = variants()
        request_files = first_requests(Path(tmp), list(imports_only))
        found, skipped = variants(request_files)
        names = list(found)
        # One untimed run each: compiles .pyc files and warms the page cache for every variant.
        first_runs = {name: run_once(*found[name]) for name in names}
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        order_rng = random.Random(seed)  # noqa: S311 - an ordering, not a secret
        for round_number in range(runs):
            order = list(names)
            order_rng.shuffle(order)
            for name in order:
                samples[name].append(run_once(*found[name]))
            progress(f"cold start: round {round_number + 1}/{runs}")
        importtime = {name: import_time_items(*imports_only[name]) for name in names}
        counted = (
            instruction_counts(imports_only, found)
            if instructions and shutil.which("valgrind")
            else None
        )
    summary = {}
    for name, runs_of in samples.items():
        totals = [r["ms"] + r["first_request_ms"] for r in runs_of]
        summary[name] = {
            "runs": len(runs_of),
            "median_ms": median([r["ms"] for r in runs_of]),
            "min_ms": min(r["ms"] for r in runs_of),
            "max_ms": max(r["ms"] for r in runs_of),
            "median_first_request_ms": median([r["first_request_ms"] for r in runs_of]),
            "median_total_ms": median(totals),
            "min_total_ms": min(totals),
            "max_total_ms": max(totals),
            "median_maxrss_kb": median([r["maxrss_kb"] for r in runs_of]),
            "median_total_maxrss_kb": median([r["total_maxrss_kb"] for r in runs_of]),
            "median_cpu_ms": median([r["cpu_ms"] for r in runs_of]),
            "median_process_wall_ms": median([r["process_wall_ms"] for r in runs_of]),
            "first_request_status": first_runs[name]["status"],
            "first_request_calls": first_runs[name]["calls"],
            "first_request_unanswered": first_runs[name]["unanswered"],
            "import_time": importtime[name],
        }
        if counted is not None:
            summary[name]["instructions"] = counted["variants"][name]
    return {
        "runs_per_variant": runs,
        "variants": summary,
        "skipped": skipped,
        "seed": seed,
        "instructions_measured": counted is not None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per variant")
    parser.add_argument(
        "--no-instructions",
        action="store_true",
        help="skip the instruction counts (valgrind), which take a few minutes",
    )
    args = parser.parse_args(argv)
    with json_result_channel() as write:
        write(measure(max(1, args.runs), instructions=not args.no_instructions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
