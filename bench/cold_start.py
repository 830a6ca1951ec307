"""Cold start: a fresh process per run that imports one function's handler module (running its
module-level set-up), next to the floor: a fresh process that imports boto3 and creates a
DynamoDB client. Runs of every variant are interleaved, in a seeded random order per round.

    python -m bench.cold_start [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
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
_FLOOR_BODY = 'import boto3\nboto3.client("dynamodb")\n'
# What Lambda's runtime does with `Handler: app.lambda_handler` (and sms_local.lambda_runtime).
_HANDLER_BODY = """\
_spec = importlib.util.spec_from_file_location("lambda_function_module", {path!r})
_module = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _module
_spec.loader.exec_module(_module)
assert callable(getattr(_module, {attribute!r}))
"""
_EPILOGUE = f"""\
_t1 = time.perf_counter()
_ru = resource.getrusage(resource.RUSAGE_SELF)
print({_MARKER!r} + json.dumps({{
    "ms": (_t1 - _t0) * 1000.0,
    "maxrss_kb": _ru.ru_maxrss,
    "cpu_ms": (_ru.ru_utime + _ru.ru_stime) * 1000.0,
}}), flush=True)
"""

# Passed through from our own environment: how to find Python and this project's packages.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


def _base_environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSTHROUGH if name in os.environ}
    env.update(aws_environment())
    return env


def variants() -> tuple[dict[str, tuple[str, dict[str, str], str]], list[str]]:
    """name -> (code, environment, working directory); and the functions skipped (no code)."""
    template = tpl.project_template()
    stack = fake_stack(template)
    base = _base_environment()
    found: dict[str, tuple[str, dict[str, str], str]] = {
        FLOOR: (_PREAMBLE + _FLOOR_BODY + _EPILOGUE, base, str(tpl.PROJECT_ROOT)),
    }
    skipped = []
    for name, spec in sorted(tpl.functions(template).items()):
        path, attribute = handler_path(spec)
        if not Path(path).is_file():
            skipped.append(name)
            continue
        code = _PREAMBLE + _HANDLER_BODY.format(path=path, attribute=attribute) + _EPILOGUE
        # Lambda's working directory is the function's code (/var/task).
        env = {**base, **function_environment(spec, stack)}
        found[name] = (code, env, str(Path(path).parent))
    return found, skipped


def run_once(code: str, env: dict[str, str], cwd: str) -> dict[str, float]:
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    wall_ms = (time.perf_counter() - started) * 1000.0
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_MARKER)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"cold-start run failed ({completed.returncode}):\n{completed.stderr}")
    measured: dict[str, float] = json.loads(lines[-1].removeprefix(_MARKER))
    measured["process_wall_ms"] = wall_ms
    return measured


def measure(runs: int, seed: int = 20261125) -> dict[str, Any]:
    found, skipped = variants()
    names = list(found)
    # One untimed run each: compiles .pyc files and warms the page cache for every variant.
    for name in names:
        run_once(*found[name])
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    order_rng = random.Random(seed)  # noqa: S311 - an ordering, not a secret
    for round_number in range(runs):
        order = list(names)
        order_rng.shuffle(order)
        for name in order:
            samples[name].append(run_once(*found[name]))
        progress(f"cold start: round {round_number + 1}/{runs}")
    summary = {
        name: {
            "runs": len(runs_of),
            "median_ms": median([r["ms"] for r in runs_of]),
            "min_ms": min(r["ms"] for r in runs_of),
            "max_ms": max(r["ms"] for r in runs_of),
            "median_maxrss_kb": median([r["maxrss_kb"] for r in runs_of]),
            "median_cpu_ms": median([r["cpu_ms"] for r in runs_of]),
            "median_process_wall_ms": median([r["process_wall_ms"] for r in runs_of]),
        }
        for name, runs_of in samples.items()
    }
    return {"runs_per_variant": runs, "variants": summary, "skipped": skipped, "seed": seed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per variant")
    args = parser.parse_args(argv)
    with json_result_channel() as write:
        write(measure(max(1, args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
