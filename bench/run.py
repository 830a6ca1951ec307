"""`make bench`: runs every benchmark section in a process of its own and rewrites BENCHMARKS.md.

    python -m bench.run [--messages 2000] [--cold-runs 20] [--output BENCHMARKS.md]

A section that fails leaves BENCHMARKS.md as it was. Lost or duplicated messages end to end are
written to the report and make the command fail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report
from bench.common import aws_environment

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("boto3", "botocore", "aws-lambda-powertools", "pydantic", "moto")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _git(*args: str) -> str:
    try:
        completed = subprocess.run(  # noqa: S603 - fixed git arguments
            ["git", *args],  # noqa: S607 - git from PATH, as the Makefile uses it
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""


def machine() -> dict[str, Any]:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count() or 0,
        "cpu_model": _cpu_model(),
        "memory": _memory(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": packages,
        "commit": commit,
    }


def run_section(name: str, module: str, *args: str) -> tuple[dict[str, Any], float]:
    """`python -m bench.<module>`: its JSON result and how long it took. Its progress goes to our
    stderr; its environment cannot reach AWS (fake credentials, unreachable default endpoint)."""
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    env = {**os.environ, **aws_environment()}
    for name_to_drop in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.pop(name_to_drop, None)
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"bench: {name} failed (exit {completed.returncode}); report unchanged")
    print(f"bench: {name} done in {seconds:.0f} s", file=sys.stderr, flush=True)
    result: dict[str, Any] = json.loads(completed.stdout)
    return result, seconds


def run_optional_section(name: str, module: str, *args: str) -> tuple[dict[str, Any], float]:
    """run_section, but a failure is a result ({"error": why}), not the end of the run."""
    started = time.perf_counter()
    try:
        return run_section(name, module, *args)
    except (SystemExit, ValueError) as exc:  # the section failed, or printed no JSON
        print(f"bench: {name} failed; reported as such", file=sys.stderr, flush=True)
        why = f"`python -m bench.{module}` failed ({type(exc).__name__}: {exc})"
        return {"error": why}, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000, help="messages sent end to end")
    parser.add_argument("--cold-runs", type=int, default=20, help="fresh processes per function")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.cold_runs < 15:
        parser.error("--cold-runs must be at least 15")

    started = time.perf_counter()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results: dict[str, Any] = {"date": date, "machine": machine(), "section_seconds": {}}
    e2e_args = ["--messages", str(args.messages)]
    sections = {
        "cold_start": ("cold_start", ["--runs", str(args.cold_runs)]),
        "warm_cost": ("warm_cost", []),
        "aws_calls": ("aws_calls", []),
        "end_to_end": ("end_to_end", e2e_args),
        # The same run without DynamoDB's per-item atomicity: what that atomicity costs.
        "end_to_end_unserialized": ("end_to_end", [*e2e_args, "--unserialized-dynamodb"]),
    }
    for name, (module, section_args) in sections.items():
        results[name], results["section_seconds"][name] = run_section(name, module, *section_args)
        if name == "aws_calls":
            # Optional features: a failure is reported in the report, it does not stop the bench.
            results["feature_costs"], results["section_seconds"]["feature_costs"] = (
                run_optional_section("feature_costs", "feature_costs")
            )
    results["total_seconds"] = time.perf_counter() - started

    args.output.write_text(report.render(results))
    print(f"bench: wrote {args.output} in {results['total_seconds']:.0f} s", file=sys.stderr)
    e2e = results["end_to_end"]
    if e2e["lost"] or e2e["duplicated"]:
        print(
            f"bench: FAIL: {e2e['lost']} lost and {e2e['duplicated']} duplicated messages",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
