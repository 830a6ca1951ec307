"""The OpenAPI document, the routes in code and template.yaml's routes must agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openapi_spec_validator

from sms_gateway.api import docs
from sms_gateway.domain import messages
from sms_gateway.domain.messages import MessageStatus
from sms_gateway.logic import sending
from sms_gateway.store import idempotency
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
                                                         "use_cases:manage",
                                                         "templates:manage"}  # fmt: skip
                assert operation["security"] == [{"bearerAuth": []}]
                assert codes["401"] == ["unauthorized"] and codes["403"] == ["forbidden"]
            for status, listed in codes.items():
                assert status in operation["responses"]
                assert all(f"`{code}`" in operation["responses"][status]["description"]
                           for code in listed)  # fmt: skip


def test_send_documents_every_error_of_the_contract() -> None:
    document = json.loads(DOCUMENT.read_text())
    codes = document["paths"]["/v1/sms/"]["post"]["x-error-codes"]
    assert codes["404"] == ["use_case_not_found", "template_not_found"]
    assert codes["422"] == [
        "use_case_inactive", "no_sender_in_pool", "a2p_campaign_not_verified", "brand_suspended",
        "phone_invalid", "phone_landline", "recipient_opted_out", "region_not_permitted",
        "template_variable_missing", "template_variable_unknown", "validation_error",
        "sender_id_invalid", "send_at_out_of_range", "callback_url_invalid",
        "idempotency_key_reused",
    ]  # fmt: skip


# What a client generator names each operation and groups it under.
OPERATIONS = {
    ("post", "/v1/sms/"): ("sendMessage", "Messages"),
    ("get", "/v1/sms/"): ("listMessages", "Messages"),
    ("get", "/v1/usage"): ("getUsage", "Usage"),
    ("get", "/v1/sms/{id}"): ("getMessage", "Messages"),
    ("post", "/v1/sms/{id}/cancel"): ("cancelMessage", "Messages"),
    ("post", "/v1/sms/use-cases"): ("createUseCase", "Use cases"),
    ("get", "/v1/sms/use-cases"): ("listUseCases", "Use cases"),
    ("get", "/v1/sms/use-cases/{id}"): ("getUseCase", "Use cases"),
    ("patch", "/v1/sms/use-cases/{id}"): ("updateUseCase", "Use cases"),
    ("delete", "/v1/sms/use-cases/{id}"): ("deleteUseCase", "Use cases"),
    ("post", "/v1/sms/preview"): ("previewMessage", "Messages"),
    ("post", "/v1/sms/templates"): ("createTemplate", "Templates"),
    ("get", "/v1/sms/templates"): ("listTemplates", "Templates"),
    ("get", "/v1/sms/templates/{id}"): ("getTemplate", "Templates"),
    ("patch", "/v1/sms/templates/{id}"): ("updateTemplate", "Templates"),
    ("delete", "/v1/sms/templates/{id}"): ("deleteTemplate", "Templates"),
    ("post", "/v1/sms/sender-ids"): ("registerSenderId", "Sender IDs"),
    ("get", "/v1/sms/sender-ids"): ("listSenderIds", "Sender IDs"),
    ("delete", "/v1/sms/sender-ids/{sender_id}"): ("removeSenderId", "Sender IDs"),
    ("post", "/v1/webhook/twilio/sms-status"): ("receiveTwilioStatusCallback", "Webhooks"),
    ("post", "/v1/webhook/twilio/sms-inbound"): ("receiveTwilioIncomingMessage", "Webhooks"),
    ("get", "/v1/sms/inbound"): ("listInboundMessages", "Inbound messages"),
    ("get", "/v1/sms/inbound/{id}"): ("getInboundMessage", "Inbound messages"),
    ("get", "/v1/sms/inbound/{id}/webhook-attempts"): (
        "listReplyWebhookAttempts",
        "Status webhooks",
    ),
    ("get", "/v1/webhook-secret"): ("getWebhookSecret", "Status webhooks"),
    ("post", "/v1/webhook-secret/rotate"): ("rotateWebhookSecret", "Status webhooks"),
    ("get", "/v1/sms/{id}/webhook-attempts"): ("listWebhookAttempts", "Status webhooks"),
}
UUID = {"type": "string", "format": "uuid"}


def load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return document


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def parameter(operation: dict[str, Any], where: str, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        p for p in operation["parameters"] if (p["in"], p["name"]) == (where, name)
    ]
    assert len(found) == 1, (where, name)
    return found[0]


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_every_operation_has_its_operation_id_and_tag() -> None:
    document = load()
    named = {
        key: (operation["operationId"], operation["tags"])
        for key, operation in operations(document).items()
    }
    assert named == {key: (name, [tag]) for key, (name, tag) in OPERATIONS.items()}
    assert [tag["name"] for tag in document["tags"]] == [
        "Messages",
        "Use cases",
        "Templates",
        "Sender IDs",
        "Webhooks",
        "Usage",
        "Status webhooks",
        "Inbound messages",
    ]


def test_operation_ids_are_unique() -> None:
    ids = [operation["operationId"] for operation in operations(load()).values()]
    assert len(ids) == len(set(ids))


def test_ids_are_uuids() -> None:
    document = load()
    by_key = operations(document)
    for key, operation in by_key.items():
        if "{id}" in key[1] and not key[1].startswith("/v1/sms/templates/"):
            path_id = parameter(operation, "path", "id")
            assert path_id["required"] is True and path_id["schema"] == UUID
    assert parameter(by_key[("get", "/v1/sms/")], "query", "use_case_id")["schema"] == UUID
    assert schema(document, "SendRequest")["properties"]["use_case_id"]["format"] == "uuid"
    message = schema(document, "MessageOut")["properties"]
    assert message["id"]["format"] == message["use_case_id"]["format"] == "uuid"
    assert schema(document, "UseCaseOut")["properties"]["id"]["format"] == "uuid"


def test_send_request_states_the_checks_send_message_makes() -> None:
    fields = schema(load(), "SendRequest")["properties"]
    assert fields["to_phone_number"]["pattern"] == r"^\+[0-9]{8,15}$"
    assert (fields["message"]["minLength"], fields["message"]["maxLength"]) == (
        1,
        sending.MAX_MESSAGE_CHARS,
    )
    assert sending.MAX_MESSAGE_CHARS == 1600
    assert {"type": "string", "format": "date-time"} in fields["send_at"]["anyOf"]


def test_documented_formats_check_nothing() -> None:
    """send_message checks these itself, in the API's order and with its error codes; a
    pydantic constraint would refuse them first, as a plain validation_error."""
    request = sending.parse_send_request(
        {"use_case_id": "x", "to_phone_number": "1", "message": "", "send_at": "soon"}
    )
    assert (request.use_case_id, request.to_phone_number, request.send_at) == ("x", "1", "soon")


def test_list_messages_documents_its_query_parameters() -> None:
    document = load()
    operation = operations(document)[("get", "/v1/sms/")]
    assert parameter(operation, "query", "limit")["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 50,
    }
    assert (messages.MAX_PAGE_SIZE, messages.DEFAULT_PAGE_SIZE) == (100, 50)
    status = parameter(operation, "query", "status")["schema"]
    assert status == {"$ref": "#/components/schemas/MessageStatus"}
    assert schema(document, "MessageStatus")["enum"] == [s.value for s in MessageStatus]
    assert parameter(operation, "query", "cursor")["schema"] == {"type": "string"}
    assert not any(p["required"] for p in operation["parameters"])


def test_send_documents_the_idempotency_key_header() -> None:
    header = parameter(operations(load())[("post", "/v1/sms/")], "header", "Idempotency-Key")
    assert header["required"] is False
    assert header["schema"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": idempotency.MAX_KEY_LENGTH,
    }


def test_created_resources_link_to_the_operations_that_take_their_id() -> None:
    by_key = operations(load())
    by_id = {operation["operationId"]: operation for operation in by_key.values()}
    send_links = by_key[("post", "/v1/sms/")]["responses"]["201"]["links"]
    create_links = by_key[("post", "/v1/sms/use-cases")]["responses"]["201"]["links"]
    assert {link["operationId"] for link in send_links.values()} == {
        "getMessage",
        "cancelMessage",
    }
    assert {link["operationId"] for link in create_links.values()} == {
        "getUseCase",
        "updateUseCase",
        "deleteUseCase",
    }
    for operation in by_key.values():
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                target = by_id[link["operationId"]]
                path_params = {p["name"] for p in target["parameters"] if p["in"] == "path"}
                assert link["parameters"] == {name: "$response.body#/id" for name in path_params}


def test_route_doc_parameters_leave_no_extension_behind() -> None:
    assert docs.PARAMETERS_KEY not in DOCUMENT.read_text()


def test_document_is_valid_openapi() -> None:
    openapi_spec_validator.validate(load())


def test_patch_takes_any_subset_of_a_use_case_s_fields() -> None:
    document = load()
    patch = operations(document)[("patch", "/v1/sms/use-cases/{id}")]
    ref = patch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/UseCasePatch"
    partial, full = schema(document, "UseCasePatch"), schema(document, "UseCaseSpec")
    assert "required" not in partial and full["required"]
    assert partial["properties"] == full["properties"]
    assert partial["additionalProperties"] is False


def test_every_reference_resolves() -> None:
    document = load()
    refs = [ref.removeprefix("#/components/schemas/") for ref in _values_of(document, "$ref")]
    assert refs and set(refs) <= set(document["components"]["schemas"])


def _values_of(node: Any, key: str) -> list[Any]:
    if isinstance(node, dict):
        found = [node[key]] if key in node else []
        return found + [v for child in node.values() for v in _values_of(child, key)]
    if isinstance(node, list):
        return [v for child in node for v in _values_of(child, key)]
    return []


def test_the_webhook_documents_its_signed_form() -> None:
    document = load()
    webhook = operations(document)[("post", "/v1/webhook/twilio/sms-status")]
    assert parameter(webhook, "header", "x-twilio-signature")["required"] is True
    assert parameter(webhook, "query", "message_id")["schema"] == UUID
    content = webhook["requestBody"]["content"]
    assert list(content) == ["application/x-www-form-urlencoded"]
    form = schema(document, "TwilioStatusCallback")
    assert {"AccountSid", "MessageSid", "MessageStatus"} <= set(form["required"])
    assert {"ErrorCode", "NumSegments", "From", "To"} <= set(form["properties"])
