"""Managing a workspace's templates: /v1/sms/templates (scope templates:manage).

Editing a template never changes a message already accepted: a message stores the body it was
rendered to, and the template's id."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from sms_gateway.domain.clock import now_iso
from sms_gateway.domain.errors import (
    ServiceUnavailableError,
    TemplateSlugTakenError,
    ValidationError,
    refuse_unknown_fields,
)
from sms_gateway.domain.ids import new_id
from sms_gateway.domain.templates import Template, TemplateSpec, check_spec
from sms_gateway.logic.composing import find_template
from sms_gateway.store import template_store

# A write that lost a race with another change of the same template is tried again this often.
_ATTEMPTS = 3


def parse_spec(data: dict[str, Any], *, partial: bool = False) -> TemplateSpec:
    """The body of a create (or, `partial`, of a PATCH: its fields over the current ones, which
    the caller merges), strictly typed as JSON gives it."""
    try:
        spec = TemplateSpec.model_validate_json(json.dumps(data), strict=True)
    except PydanticValidationError as exc:
        raise ValidationError.from_pydantic("template is invalid", exc) from exc
    check_spec(spec)
    return spec


def create_template(workspace_id: str, data: dict[str, Any]) -> Template:
    spec = parse_spec(data)
    now = now_iso()
    template = Template(
        **spec.model_dump(), id=new_id(), workspace_id=workspace_id, created_at=now, updated_at=now
    )
    for _ in range(_ATTEMPTS):
        try:
            template_store.put_new(template)
        except template_store.SlugTakenError as exc:
            raise _slug_taken(spec.slug) from exc
        except template_store.TemplateChangedError:
            # Another write to the same slug at the same moment: try again to learn who won.
            continue
        return template
    raise ServiceUnavailableError("the template could not be stored; retry")


def _slug_taken(slug: str) -> TemplateSlugTakenError:
    return TemplateSlugTakenError("another template of the workspace has this slug", slug=slug)


def list_templates(
    workspace_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Template], str | None]:
    return template_store.list_page(workspace_id, limit=limit, cursor=cursor)


def get_template(workspace_id: str, id_or_slug: str) -> Template:
    return find_template(workspace_id, id_or_slug)


def update_template(workspace_id: str, id_or_slug: str, changes: dict[str, Any]) -> Template:
    refuse_unknown_fields(changes, set(TemplateSpec.model_fields))
    for _ in range(_ATTEMPTS):
        current = find_template(workspace_id, id_or_slug)
        merged = {
            **current.model_dump(mode="json", include=set(TemplateSpec.model_fields)),
            **changes,
        }
        spec = parse_spec(merged)
        changed = current.model_copy(
            update={**spec.model_dump(), "updated_at": now_iso(), "revision": current.revision + 1}
        )
        try:
            template_store.replace(current, changed)
        except template_store.SlugTakenError as exc:
            raise _slug_taken(spec.slug) from exc
        except template_store.TemplateChangedError:
            continue
        return changed
    raise ServiceUnavailableError("the template kept changing; retry")


def delete_template(workspace_id: str, id_or_slug: str) -> None:
    for _ in range(_ATTEMPTS):
        current = find_template(workspace_id, id_or_slug)
        try:
            template_store.delete(current)
        except template_store.TemplateChangedError:
            continue
        return
    # Still there, changed by another writer at every attempt: not "not found".
    raise ServiceUnavailableError("the template kept changing; retry")
