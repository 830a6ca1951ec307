"""End to end on the local stack, started as `make dev` starts it: moto in a process of its own,
the HTTP front, the pollers and the simulators in this process, every function in worker
processes of its own (as Lambda's sandboxes; --concurrency sets how many per function, as
`make dev CONCURRENCY=` does).
N messages sent concurrently over HTTP with the demo live key, then the message list polled until
every one is terminal (or a timeout). Throughput is N over the time from the first send to the
last terminal status (the messages' own `updated_at`); a message is lost when it never became
terminal, duplicated when the provider (the Twilio simulator) was asked to create it more than
once or the gateway stored a message nobody sent. Send latency percentiles are the senders' own
(request to answer); the processor time of this process, of moto's and of the sandboxes says
where the machine's cores went.

With --unserialized-dynamodb the local DynamoDB runs its requests concurrently, as moto's server
does alone (not atomic per item, unlike DynamoDB): only to measure what that atomicity costs.

    python -m bench.end_to_end [--messages 2000] [--workers 16] [--timeout 400]
                               [--concurrency SPEC] [--unserialized-dynamodb]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import urllib.error
import urllib.request
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import free_port, json_result_channel, median, percentile, progress
from sms_local.concurrency import Concurrency, from_environment, machine_cores, parse

TERMINAL = frozenset({"delivered", "undelivered", "failed", "canceled"})
# Area codes of the demo pool's senders (geomatch), and one with no local sender.
AREA_CODES = ("212", "312", "415", "617", "202")
WARM_UP_MESSAGES = 10


def destination(i: int) -> str:
    """Valid US mobile numbers; the subscriber part stays in 1000-9999, so it never ends in one
    of the simulator's magic suffixes (5550429, 5550503, 5550777, 5550030 ... all start with 0)."""
    return f"+1{AREA_CODES[i % len(AREA_CODES)]}555{1000 + (i // len(AREA_CODES)) % 9000:04d}"


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class Api:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.key = key
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the local stack on loopback
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=60) as response:
                return int(response.status), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read().decode(errors="replace")

    def list_all(self) -> dict[str, dict[str, Any]]:
        """Every message of the key's workspace, by id (GET /v1/sms/, pages of 100)."""
        found: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            path = "/v1/sms/?limit=100" + (f"&cursor={cursor}" if cursor else "")
            status, page = self.request("GET", path)
            if status != 200:
                raise RuntimeError(f"listing messages answered {status}: {page}")
            for message in page["items"]:
                found[message["id"]] = message
            cursor = page.get("next_cursor")
            if not cursor:
                return found


def _simulator_counters(simulator_url: str) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{simulator_url}/_simulator/control", timeout=10) as response:
        counters: dict[str, Any] = json.loads(response.read())
        return counters


def _send_all(
    api: Api, use_case_id: str, numbers: list[str], workers: int
) -> list[tuple[int, Any, float]]:
    def send(index: int) -> tuple[int, Any, float]:
        body = {
            "use_case_id": use_case_id,
            "to_phone_number": numbers[index],
            "message": f"Your code is {100000 + index}",
        }
        started = time.perf_counter()
        try:
            status, answer = api.request("POST", "/v1/sms/", body)
        except OSError as error:  # no HTTP answer at all: never retried, it could duplicate
            status, answer = 0, f"{type(error).__name__}: {error}"
        return status, answer, (time.perf_counter() - started) * 1000.0

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(send, range(len(numbers))))


def _wait_terminal(api: Api, ids: set[str], deadline: float) -> dict[str, dict[str, Any]]:
    while True:
        started = time.monotonic()
        listed = api.list_all()
        done = sum(1 for i in ids if listed.get(i, {}).get("status") in TERMINAL)
        progress(f"end to end: {done}/{len(ids)} terminal")
        if done == len(ids) or time.monotonic() > deadline:
            return listed
        # Listing goes through the same stack: poll sparingly so it does not slow the run.
        time.sleep(max(1.0, 2 * (time.monotonic() - started)))


def _sandbox_cpu_seconds(runner: Any) -> float | None:
    """User and system time of every sandbox alive now (Linux's /proc; None elsewhere)."""
    if runner.sandboxes is None or not Path("/proc").is_dir():
        return None
    total = 0.0
    for pool in runner.sandboxes.pools.values():
        for pid in pool.pids():
            # gone since: its time is lost, as a replaced sandbox's is
            total += _cpu_seconds(pid) or 0.0
    return total


def _aws_cpu_seconds(runner: Any) -> float | None:
    """User and system time of moto's process (None when it runs in this one, or without /proc)."""
    pid = getattr(getattr(runner, "aws", None), "pid", None)
    return None if pid is None else _cpu_seconds(pid)


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    messages: int,
    workers: int,
    timeout: float,
    *,
    serialize_dynamodb: bool = True,
    concurrency: Concurrency | None = None,
) -> dict[str, Any]:
    warnings.filterwarnings("ignore", "No application metrics to publish")
    for noisy in ("werkzeug", "botocore", "urllib3", "sms_local"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from sms_local.stack import LocalStackRunner

    runner = LocalStackRunner(
        free_port(), serialize_dynamodb=serialize_dynamodb, concurrency=concurrency
    )
    info = runner.start()
    try:
        api = Api(info["api_url"], info["keys"]["live"])
        use_case_id = info["use_case_id"]
        # Warm-up: handlers imported, clients created, caches filled, before the clock starts.
        warm = _send_all(api, use_case_id, [destination(i) for i in range(WARM_UP_MESSAGES)], 4)
        warm_ids = {a["id"] for s, a, _ in warm if s == 201}
        _wait_terminal(api, warm_ids, time.monotonic() + 60)
        creates_before = int(_simulator_counters(info["simulator_url"])["create_count"])

        numbers = [destination(WARM_UP_MESSAGES + i) for i in range(messages)]
        front_cpu_before, sandbox_cpu_before = time.process_time(), _sandbox_cpu_seconds(runner)
        aws_cpu_before = _aws_cpu_seconds(runner)
        started_at = time.time()
        clock = time.perf_counter()
        sent = _send_all(api, use_case_id, numbers, workers)
        send_seconds = time.perf_counter() - clock
        accepted = {answer["id"]: answer for status, answer, _ in sent if status == 201}
        errors = Counter(str(status) for status, _, _ in sent if status != 201)
        progress(f"end to end: {len(accepted)}/{messages} accepted in {send_seconds:.1f} s")

        listed = _wait_terminal(api, set(accepted), time.monotonic() + timeout)
        observed_seconds = time.perf_counter() - clock
        front_cpu = time.process_time() - front_cpu_before
        sandbox_cpu_after = _sandbox_cpu_seconds(runner)
        aws_cpu_after = _aws_cpu_seconds(runner)
        aws_cpu = (
            aws_cpu_after - aws_cpu_before
            if aws_cpu_after is not None and aws_cpu_before is not None
            else None
        )
        sandbox_cpu = (
            sandbox_cpu_after - sandbox_cpu_before
            if sandbox_cpu_after is not None and sandbox_cpu_before is not None
            else None
        )
        # Let callbacks still in flight land before the provider's counters are read.
        time.sleep(1.0)
        creates = int(_simulator_counters(info["simulator_url"])["create_count"]) - creates_before
        listed = api.list_all()
    finally:
        runner.stop()

    terminal = {i: m for i, m in listed.items() if i in accepted and m["status"] in TERMINAL}
    finished_at = [_timestamp(m["updated_at"]) for m in terminal.values()]
    wall = (max(finished_at) - started_at) if finished_at else float("nan")
    latencies = [
        (_timestamp(m["updated_at"]) - _timestamp(m["created_at"])) * 1000.0
        for m in terminal.values()
    ]
    send_latencies = [ms for status, _, ms in sent if status == 201]
    unexpected = [i for i in listed if i not in accepted and i not in warm_ids]
    sids = Counter(m.get("message_sid") for m in terminal.values() if m.get("message_sid"))
    return {
        "messages": messages,
        "workers": workers,
        "accepted": len(accepted),
        "send_errors": dict(errors),
        "terminal": len(terminal),
        "statuses": dict(Counter(m["status"] for m in terminal.values())),
        "lost": messages - len(terminal),
        "provider_creates": creates,
        "duplicated_provider_creates": max(0, creates - len(accepted)),
        "unexpected_stored_messages": len(unexpected),
        "repeated_message_sids": sum(n - 1 for n in sids.values() if n > 1),
        "duplicated": max(0, creates - len(accepted))
        + len(unexpected)
        + sum(n - 1 for n in sids.values() if n > 1),
        "send_seconds": send_seconds,
        "accept_rate_per_second": len(accepted) / send_seconds if send_seconds else 0.0,
        "wall_seconds": wall,
        "messages_per_second": messages / wall if wall and wall == wall else 0.0,
        "observed_seconds": observed_seconds,
        "send_latency_ms": {
            "p50": median(send_latencies),
            "p95": percentile(send_latencies, 0.95),
            "max": max(send_latencies, default=float("nan")),
        },
        "send_to_terminal_ms": {
            "p50": median(latencies),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies, default=float("nan")),
        },
        "timeout_seconds": timeout,
        "callback_delays_seconds": list(runner.callback_delays),
        "warm_up_messages": WARM_UP_MESSAGES,
        "serialized_dynamodb": serialize_dynamodb,
        "cores": machine_cores(),
        "sandbox_concurrency": info["sandboxes"].get("concurrency", {}),
        "front_cpu_seconds": front_cpu,
        "sandbox_cpu_seconds": sandbox_cpu,
        "aws_cpu_seconds": aws_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.end_to_end", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16, help="concurrent senders")
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds to wait for terminal statuses after the sends (default: N / 5, at least 120)",
    )
    parser.add_argument(
        "--concurrency",
        metavar="SPEC",
        help="sandboxes per function, as `make dev CONCURRENCY=` takes it (default: "
        "$SMS_LOCAL_CONCURRENCY, else the machine's cores)",
    )
    parser.add_argument(
        "--unserialized-dynamodb",
        action="store_true",
        help="let moto run DynamoDB requests concurrently (not atomic per item): for comparison",
    )
    args = parser.parse_args(argv)
    try:
        concurrency = parse(args.concurrency) if args.concurrency else from_environment()
    except ValueError as error:
        parser.error(str(error))
    messages = max(1, args.messages)
    timeout = args.timeout if args.timeout is not None else max(120.0, messages / 5)
    with json_result_channel() as write:
        write(
            measure(
                messages,
                max(1, args.workers),
                timeout,
                serialize_dynamodb=not args.unserialized_dynamodb,
                concurrency=concurrency,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
