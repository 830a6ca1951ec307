"""The local stack, started once per test session on free ports, reached only over HTTP."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STARTUP_SECONDS = 90
E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test here needs the local stack running (a subprocess, tens of seconds): marked e2e,
    # so `pytest -m "not e2e"` runs everything else without starting it.
    for item in items:
        if item.path.resolve().is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serves(url: str) -> bool:
    address = urllib.parse.urlsplit(url)
    with socket.socket() as probe:
        return probe.connect_ex((address.hostname or "", address.port or 0)) == 0


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    # Only ever the stack's own http://127.0.0.1 URLs.
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return Reply(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read(), dict(error.headers))


class Client:
    """A caller of the API with one key."""

    def __init__(self, api_url: str, key: str | None) -> None:
        self.api_url = api_url
        self.key = key

    def request(
        self, method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        all_headers = dict(headers or {})
        if self.key:
            all_headers["Authorization"] = f"Bearer {self.key}"
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            all_headers["Content-Type"] = "application/json"
        return http(method, self.api_url + path, body=body, headers=all_headers)

    def wait_for(self, message_id: str, statuses: set[str], timeout: float = 20) -> dict[str, Any]:
        return self.wait_until(message_id, lambda m: m["status"] in statuses, timeout)

    def wait_until(
        self, message_id: str, condition: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        """The message once `condition` holds for it (polled every 0.1 s); as it is at the
        deadline otherwise, for the caller's assertion to show."""
        deadline = time.monotonic() + timeout
        while True:
            message: dict[str, Any] = self.request("GET", f"/v1/sms/{message_id}").json()
            if condition(message) or time.monotonic() > deadline:
                return message
            time.sleep(0.1)


@dataclass
class Stack:
    info: dict[str, Any]

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    def client(self, key_name: str | None = "live") -> Client:
        return Client(self.api_url, self.info["keys"][key_name] if key_name else None)

    def simulator(self, **knobs: bool) -> dict[str, Any]:
        url = f"{self.info['simulator_url']}/_simulator/control"
        reply = http("POST", url, body=json.dumps(knobs).encode()) if knobs else http("GET", url)
        assert reply.status == 200, reply.body
        state: dict[str, Any] = reply.json()
        return state

    def sent_to(self, number: str) -> list[dict[str, Any]]:
        """What the simulated Twilio accepted for `number`, newest first, as Twilio lists it: a
        count of a test's own sends, however many other tests send."""
        twilio = self.info["twilio"]
        account = f"{self.info['simulator_url']}/2010-04-01/Accounts/{twilio['account_sid']}"
        url = f"{account}/Messages.json?{urllib.parse.urlencode({'To': number})}"
        credentials = f"{twilio['account_sid']}:{twilio['auth_token']}".encode()
        authorization = "Basic " + base64.b64encode(credentials).decode()
        reply = http("GET", url, headers={"Authorization": authorization})
        assert reply.status == 200, reply.body
        messages: list[dict[str, Any]] = reply.json()["messages"]
        return messages


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    info_file: Path = tmp_path_factory.mktemp("stack") / "stack.json"
    log_file = info_file.with_name("stack.log")
    stack_info: dict[str, Any] | None = None
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sms_local.stack", "--port", str(free_port()),
             "--info-file", str(info_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while not info_file.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the local stack did not start:\n{log_file.read_text()}")
                time.sleep(0.2)
            stack_info = json.loads(info_file.read_text())
            yield Stack(stack_info)
        finally:
            # Ctrl-C must stop everything: the process exits by itself, cleanly, and its port
            # is free again.
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"the local stack ignored Ctrl-C:\n{log_file.read_text()}")
            assert code == 0, log_file.read_text()
            assert not info_file.exists(), "the info file outlived the stack"
            if stack_info is not None:
                # moto runs in a process of its own: it stopped with the stack.
                assert not _serves(stack_info["aws_endpoint_url"]), "moto outlived the stack"
