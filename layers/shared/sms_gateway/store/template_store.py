"""Templates in the catalog table: two copies of each (by slug, by id), written together."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sms_gateway.domain.templates import Template
from sms_gateway.store import aws_clients, catalog
from sms_gateway.store.dynamo import to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

SLUG_PREFIX = "template_slug#"
ID_PREFIX = "template_id#"


class SlugTakenError(Exception):
    """Another template of the workspace has this slug."""


class TemplateChangedError(Exception):
    """The template changed or was deleted since it was read: read it again."""


def _by_slug(slug: str) -> str:
    return SLUG_PREFIX + slug


def _by_id(template_id: str) -> str:
    return ID_PREFIX + template_id


def get_by_slug(workspace_id: str, slug: str) -> Template | None:
    item = catalog.get(catalog.workspace_pk(workspace_id), _by_slug(slug))
    return Template.model_validate(item) if item else None


def get_by_id(workspace_id: str, template_id: str) -> Template | None:
    item = catalog.get(catalog.workspace_pk(workspace_id), _by_id(template_id))
    return Template.model_validate(item) if item else None


def _copy(template: Template, sort_key: str) -> dict[str, Any]:
    data = template.model_dump(mode="json")
    return to_item({**data, "pk": catalog.workspace_pk(template.workspace_id), "sk": sort_key})


def _put(
    template: Template, sort_key: str, condition: str, values: dict[str, Any] | None = None
) -> Any:
    put: dict[str, Any] = {
        "TableName": catalog.table(),
        "Item": _copy(template, sort_key),
        "ConditionExpression": condition,
    }
    if values:
        put["ExpressionAttributeValues"] = values
    return {"Put": put}


def _transact(items: list[TransactWriteItemTypeDef], slug_position: int | None) -> None:
    """Write all or nothing. A condition that failed on the new slug's item is SlugTakenError;
    any other failed condition, or another transaction on the same items at the same moment
    (TransactionConflict), TemplateChangedError: read again and retry."""
    try:
        aws_clients.dynamodb().transact_write_items(TransactItems=items)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        codes = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
        failed = [i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"]
        if slug_position in failed:
            raise SlugTakenError from exc
        if failed or "TransactionConflict" in codes:
            raise TemplateChangedError from exc
        raise


def put_new(template: Template) -> None:
    """Store a new template; SlugTakenError when its slug is another template's."""
    absent = "attribute_not_exists(pk)"
    _transact(
        [
            _put(template, _by_slug(template.slug), absent),
            _put(template, _by_id(template.id), absent),
        ],
        slug_position=0,
    )


def replace(current: Template, changed: Template) -> None:
    """Replace `current` (as it was read) by `changed`, both copies at once; SlugTakenError when
    the new slug is another template's, TemplateChangedError when `current` is not what is
    stored any more."""
    unchanged = "revision = :read"
    values = {":read": {"N": str(current.revision)}}
    items: list[TransactWriteItemTypeDef] = [_put(changed, _by_id(changed.id), unchanged, values)]
    if changed.slug == current.slug:
        items.append(_put(changed, _by_slug(changed.slug), unchanged, values))
        _transact(items, slug_position=None)
        return
    items.append(_put(changed, _by_slug(changed.slug), "attribute_not_exists(pk)"))
    items.append(
        {
            "Delete": {
                "TableName": catalog.table(),
                "Key": catalog.key(
                    catalog.workspace_pk(current.workspace_id), _by_slug(current.slug)
                ),
                "ConditionExpression": unchanged,
                "ExpressionAttributeValues": values,
            }
        }
    )
    _transact(items, slug_position=1)


def delete(template: Template) -> None:
    """Delete both copies; TemplateChangedError when it changed or went since it was read."""
    pk = catalog.workspace_pk(template.workspace_id)
    _transact(
        [
            {
                "Delete": {
                    "TableName": catalog.table(),
                    "Key": catalog.key(pk, sort_key),
                    "ConditionExpression": "revision = :read",
                    "ExpressionAttributeValues": {":read": {"N": str(template.revision)}},
                }
            }
            for sort_key in (_by_slug(template.slug), _by_id(template.id))
        ],
        slug_position=None,
    )


def list_page(
    workspace_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Template], str | None]:
    """The workspace's templates in slug order."""
    page = catalog.query_page(
        catalog.workspace_pk(workspace_id), SLUG_PREFIX, limit=limit, cursor=cursor
    )
    return [Template.model_validate(item) for item in page.items], page.next_cursor
