"""The shared package's layout (docs/architecture.md, "The shared package"): imports run one way,
api → logic → domain, store, providers; only store/ calls AWS; only providers/twilio/ knows Twilio;
the operator tools and the local stack stay out of the layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "shared" / "sms_gateway"

# Which roles a module of each role may import (its own included).
MAY_IMPORT = {
    "config": set(),
    "domain": {"domain"},
    "store": {"store", "domain", "config"},
    "providers": {"providers", "store", "domain", "config"},
    "logic": {"logic", "providers", "store", "domain", "config"},
    # The webhook's route names the provider whose callbacks it takes; no route reads or writes
    # a table itself.
    "api": {"api", "logic", "providers", "domain", "config"},
    # A function's cold start and SnapStart's restore: it warms up and resets what the others
    # cache (settings, clients, secrets, provider connections), and calls no AWS API itself.
    "runtime": {"runtime", "providers", "store", "config"},
}
# Modules outside providers/twilio/ that may name Twilio's package: the registry of providers,
# the routes Twilio posts its callbacks and incoming messages to, and their reading of a request.
TWILIO_IMPORTERS = {
    "providers/__init__.py",
    "api/webhook_routes.py",
    "api/inbound_webhook_routes.py",
    "api/twilio_requests.py",
    "runtime/cached_state.py",  # forgets the Twilio client's connections and cached tokens
}
# What makes AWS calls (catching botocore's ClientError that a store call raised is not one).
AWS_CALLERS = (
    "boto3",
    "sms_gateway.store.aws_clients",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.idempotency",
)


def modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
    )


def role(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported(path: Path) -> set[str]:
    return imported_by(path.read_text())


def imported_by(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def roles_in(names: set[str]) -> set[str]:
    return {
        name.split(".")[1]
        for name in names
        if name.startswith("sms_gateway.") and name.split(".")[1] in MAY_IMPORT
    }


def test_every_module_has_a_role() -> None:
    assert modules()
    assert {role(p) for p in modules()} <= set(MAY_IMPORT)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path: Path) -> None:
    assert roles_in(imported(path)) <= MAY_IMPORT[role(path)]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_store_calls_aws(path: Path) -> None:
    # runtime/ makes the store's clients ahead of a snapshot; it calls nothing.
    if role(path) not in ("store", "runtime"):
        assert {n for n in imported(path) if n.startswith(AWS_CALLERS)} == set()


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_twilio_folder_knows_twilio(path: Path) -> None:
    relative = path.relative_to(PACKAGE).as_posix()
    if relative.startswith("providers/twilio/") or relative in TWILIO_IMPORTERS:
        return
    assert not any(n.startswith("sms_gateway.providers.twilio") for n in imported(path))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_layer_ships_no_tool_and_no_local_stack(path: Path) -> None:
    outside = ("sms_tools", "sms_local", "tests", "bench", "mutation")
    assert not any(n.split(".")[0] in outside for n in imported(path))


def test_the_checks_see_what_they_forbid() -> None:
    # The checks themselves, on imports they must refuse.
    domain_reading_a_table = imported_by("from sms_gateway.store import message_store")
    assert not roles_in(domain_reading_a_table) <= MAY_IMPORT["domain"]
    route_writing_a_table = imported_by("from sms_gateway.store.transitions import fail")
    assert not roles_in(route_writing_a_table) <= MAY_IMPORT["api"]
    logic_calling_aws = imported_by("from sms_gateway.store import aws_clients")
    assert any(n.startswith(AWS_CALLERS) for n in logic_calling_aws)
    assert roles_in(imported(PACKAGE / "logic" / "handoff.py")) >= {"store", "providers"}
