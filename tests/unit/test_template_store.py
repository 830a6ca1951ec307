"""Templates in the catalog table (moto, in this process): two copies written together, a slug
that stays unique, and a change that never lands over another one made meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sms_gateway.domain.errors import (
    ServiceUnavailableError,
    TemplateNotFoundError,
    TemplateSlugTakenError,
)
from sms_gateway.logic import composing, template_admin
from sms_gateway.store import aws_clients, catalog, template_store
from tests.unit.in_process_aws import create_table, in_process_aws

WORKSPACE = "w1"


@pytest.fixture(autouse=True)
def aws() -> Iterator[None]:
    with in_process_aws(CATALOG_TABLE="catalog"):
        create_table("catalog", [("pk", "HASH"), ("sk", "RANGE")])
        yield


def items() -> list[tuple[str, str | None]]:
    """(sort key, body) of every item of the table."""
    scan = aws_clients.dynamodb().scan(TableName="catalog")["Items"]
    return sorted((str(i["sk"]["S"]), i["body"]["S"] if "body" in i else None) for i in scan)


def test_a_template_is_two_copies_and_its_slug_is_unique() -> None:
    created = template_admin.create_template(WORKSPACE, {"slug": "otp", "body": "a"})
    with pytest.raises(TemplateSlugTakenError):
        template_admin.create_template(WORKSPACE, {"slug": "otp", "body": "b"})

    assert items() == [(f"template_id#{created.id}", "a"), ("template_slug#otp", "a")]


def test_a_rename_moves_the_slug_copy_and_keeps_the_id() -> None:
    created = template_admin.create_template(WORKSPACE, {"slug": "old", "body": "a"})
    renamed = template_admin.update_template(WORKSPACE, "old", {"slug": "new"})

    assert renamed.id == created.id and renamed.revision == 1
    assert items() == [(f"template_id#{created.id}", "a"), ("template_slug#new", "a")]


def test_a_change_over_a_stale_read_is_refused_and_changes_nothing() -> None:
    created = template_admin.create_template(WORKSPACE, {"slug": "otp", "body": "a"})
    template_admin.update_template(WORKSPACE, "otp", {"body": "b"})
    stale_change = created.model_copy(update={"body": "stale", "revision": 1})

    with pytest.raises(template_store.TemplateChangedError):
        template_store.replace(created, stale_change)
    with pytest.raises(template_store.TemplateChangedError):
        template_store.delete(created)
    assert items() == [(f"template_id#{created.id}", "b"), ("template_slug#otp", "b")]


def test_a_delete_that_loses_every_race_is_503_and_leaves_the_template(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = template_admin.create_template(WORKSPACE, {"slug": "otp", "body": "a"})
    real_delete = template_store.delete

    def another_writer_first(template: Any) -> None:
        # Each attempt's read is overtaken by an edit before its delete lands.
        template_admin.update_template(WORKSPACE, template.id, {"body": template.body + "!"})
        real_delete(template)

    monkeypatch.setattr(template_store, "delete", another_writer_first)
    with pytest.raises(ServiceUnavailableError):
        template_admin.delete_template(WORKSPACE, "otp")

    assert composing.find_template(WORKSPACE, created.id).body == "a!!!"


@pytest.mark.parametrize("winner", ["other writer", "this writer"])
def test_two_changes_racing_each_apply_on_top_of_the_other(
    winner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other writer lands between this one's read and its write: this one's write is
    refused, it reads again and applies its change over the other's. Either way round, both
    changes are kept and neither copy is left behind."""
    created = template_admin.create_template(WORKSPACE, {"slug": "otp", "body": "x {{a}}"})
    replace = template_store.replace
    raced = False

    def racing_replace(current: Any, changed: Any) -> None:
        nonlocal raced
        other = current.model_copy(update={"slug": "renamed", "revision": current.revision + 1})
        if raced:
            replace(current, changed)
            return
        raced = True
        if winner == "other writer":
            replace(current, other)  # lands first: this write, over a stale read, is refused
            replace(current, changed)
        else:
            replace(current, changed)  # lands first: the other's, over a stale read, is refused
            with pytest.raises(template_store.TemplateChangedError):
                replace(current, other)

    monkeypatch.setattr(template_store, "replace", racing_replace)
    updated = template_admin.update_template(WORKSPACE, created.id, {"body": "y {{a}}"})

    slug, revision = ("renamed", 2) if winner == "other writer" else ("otp", 1)
    assert (updated.slug, updated.body, updated.revision) == (slug, "y {{a}}", revision)
    assert items() == [
        (f"template_id#{created.id}", "y {{a}}"),
        (f"template_slug#{slug}", "y {{a}}"),
    ]


def test_the_listing_pages_through_slugs_only() -> None:
    for slug in ("c", "a", "b"):
        template_admin.create_template(WORKSPACE, {"slug": slug, "body": "x"})
    aws_clients.dynamodb().put_item(
        TableName="catalog",
        Item={**catalog.key(catalog.workspace_pk(WORKSPACE), "sender_id#Acme")},
    )
    first, cursor = template_store.list_page(WORKSPACE, limit=2, cursor=None)
    rest, end = template_store.list_page(WORKSPACE, limit=2, cursor=cursor)

    assert [t.slug for t in first + rest] == ["a", "b", "c"]
    assert end is None


@pytest.mark.parametrize(
    "spelling", [str.upper, lambda i: "{" + i + "}", lambda i: i.replace("-", "")]
)
def test_a_template_is_found_by_any_spelling_of_its_id(spelling: Any) -> None:
    created = template_admin.create_template(WORKSPACE, {"slug": "otp", "body": "a"})
    assert composing.find_template(WORKSPACE, spelling(created.id)) == created


@pytest.mark.parametrize("name", ["", "Otp", "x" * 2000, "otp\n", "a b"])
def test_a_name_no_template_can_have_is_not_found_without_a_read(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    template_admin.create_template(WORKSPACE, {"slug": "otp", "body": "a"})
    monkeypatch.setattr(catalog, "get", lambda *_: pytest.fail("read a name no slug can be"))
    with pytest.raises(TemplateNotFoundError) as refused:
        composing.find_template(WORKSPACE, name)
    assert (refused.value.message, refused.value.details) == (
        "template not found",
        {"template": name},
    )
