"""An HTTP API front: matches template.yaml's routes, runs the authorizer where the template puts
one, calls the route's function with a v2.0 event and turns its result into an HTTP response.

A function that fails (it raises, its sandbox dies mid-request, or it runs past its timeout) is
answered as API Gateway answers a Lambda error: 500 {"message":"Internal Server Error"}, the
same for the authorizer. Nothing is retried: the caller may not know whether it took effect."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from sms_local import http_events
from sms_local.lambda_runtime import Invoke, invoke
from sms_local.template import FunctionSpec, Route

log = logging.getLogger("sms_local.gateway")


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes


def _json_result(status: int, body: dict[str, Any]) -> HttpResult:
    return HttpResult(status, {"content-type": "application/json"}, json.dumps(body).encode())


def _route_pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    regex = "".join(
        f"(?P<{p[1:-1].rstrip('+')}>.+)"
        if p.endswith("+}")
        else f"(?P<{p[1:-1]}>[^/]+)"
        if p.startswith("{")
        else re.escape(p)
        for p in parts
    )
    return re.compile(f"^{regex}$")


class HttpApiGateway:
    def __init__(
        self,
        routes: list[Route],
        functions: dict[str, FunctionSpec],
        authorizer: str | None,
        authorizer_ttl_seconds: float = 300.0,
        *,
        invoke: Invoke | None = None,
    ) -> None:
        """`invoke` runs a function (the stack's sandboxes); without it the functions run in
        this process, one route handler at a time (see `_run`)."""
        # HTTP API prefers the most specific route: literal paths before ones with parameters.
        self._routes = sorted(routes, key=lambda r: ("{" in r.path, -len(r.path)))
        self._patterns = {r: _route_pattern(r.path) for r in routes}
        self._functions = functions
        self._authorizer = authorizer
        self._authorizer_ttl = authorizer_ttl_seconds
        self._auth_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()
        self._invoke = invoke
        # Powertools' resolvers keep the current event in class state shared by every resolver
        # in the process; Lambda runs one event per process, so in-process route handlers run
        # one at a time (sandboxes are processes of their own, and run side by side).
        self._route_lock = threading.Lock()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            if route.method not in (method, "ANY"):
                continue
            found = self._patterns[route].match(path)
            if found:
                return route, found.groupdict()
        return None

    def handle(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: dict[str, str],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> HttpResult:
        matched = self.match(method.upper(), raw_path)
        if matched is None:
            return _json_result(404, {"message": "Not Found"})
        route, path_parameters = matched
        event = http_events.http_event(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            route_key=f"{route.method} {route.path}",
            path_parameters=path_parameters or None,
            source_ip=source_ip,
        )
        if route.authorized and self._authorizer:
            denied = self._authorize(event)
            if denied is not None:
                return denied
        try:
            result = self._run(route.function, event, route=True)
        except Exception:
            log.exception("%s raised", route.function)
            return _json_result(500, {"message": "Internal Server Error"})
        return self._to_http(result)

    def _authorize(self, event: dict[str, Any]) -> HttpResult | None:
        identity = event["headers"].get("authorization")
        if not identity:
            # API Gateway answers this itself, without calling the authorizer.
            return _json_result(401, {"message": "Unauthorized"})
        now = time.monotonic()
        with self._cache_lock:
            cached = self._auth_cache.get(identity)
        if cached and cached[0] > now:
            response = cached[1]
        else:
            auth_event = http_events.authorizer_event(event, [identity])
            assert self._authorizer is not None
            try:
                response = self._run(self._authorizer, auth_event, route=False)
            except Exception:
                log.exception("the authorizer raised")
                return _json_result(500, {"message": "Internal Server Error"})
            with self._cache_lock:
                self._auth_cache[identity] = (now + self._authorizer_ttl, response)
        if not isinstance(response, dict) or response.get("isAuthorized") is not True:
            return _json_result(403, {"message": "Forbidden"})
        event["requestContext"]["authorizer"] = {"lambda": response.get("context") or {}}
        return None

    def _run(self, function: str, event: dict[str, Any], *, route: bool) -> Any:
        spec = self._functions[function]
        if self._invoke is not None:
            return self._invoke(spec, event)
        if not route:  # the authorizer keeps no per-event state in module globals
            return invoke(spec, event)
        with self._route_lock:
            return invoke(spec, event)

    @staticmethod
    def _to_http(result: Any) -> HttpResult:
        if not isinstance(result, dict) or "statusCode" not in result:
            # HTTP API v2 treats any other return value as a 200 JSON body.
            return _json_result(200, result)
        headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name.lower()] = ",".join(str(v) for v in values)
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        return HttpResult(int(result["statusCode"]), headers, body)
