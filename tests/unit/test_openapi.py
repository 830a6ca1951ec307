"""The OpenAPI document, the routes in code and template.yaml's routes must agree."""

from __future__ import annotations

import json
from pathlib import Path

from sms_local import template as tpl
from sms_tools import openapi

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def test_committed_document_matches_the_code() -> None:
    assert DOCUMENT.read_text() == openapi.render(), "run `make openapi` and commit the result"


def test_document_routes_are_the_template_routes() -> None:
    document = json.loads(DOCUMENT.read_text())
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    routes = {(r.method, r.path) for r in tpl.http_routes(tpl.project_template())}
    assert documented == routes


def test_every_authenticated_route_names_its_scope_and_error_codes() -> None:
    document = json.loads(DOCUMENT.read_text())
    authorized = {(r.method, r.path): r for r in tpl.http_routes(tpl.project_template())}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            route = authorized[(method.upper(), path)]
            codes = operation["x-error-codes"]
            if route.authorized:
                assert operation["x-required-scope"] in {"messages:send", "messages:read",
                                                         "use_cases:manage"}  # fmt: skip
                assert operation["security"] == [{"bearerAuth": []}]
                assert codes["401"] == ["unauthorized"] and codes["403"] == ["forbidden"]
            for status, listed in codes.items():
                assert status in operation["responses"]
                assert all(f"`{code}`" in operation["responses"][status]["description"]
                           for code in listed)  # fmt: skip


def test_send_documents_every_error_of_the_contract() -> None:
    document = json.loads(DOCUMENT.read_text())
    codes = document["paths"]["/v1/sms/"]["post"]["x-error-codes"]
    assert codes["404"] == ["use_case_not_found"]
    assert codes["422"] == [
        "use_case_inactive", "no_sender_in_pool", "a2p_campaign_not_verified", "brand_suspended",
        "phone_invalid", "phone_landline", "recipient_opted_out", "region_not_permitted",
        "validation_error", "send_at_out_of_range", "idempotency_key_reused",
    ]  # fmt: skip
