"""Message templates: a slug, a body with `{{name}}` placeholders, and how a body is rendered.

A placeholder is `{{` + a name + `}}`, names `[a-z_][a-z0-9_]*`, nothing else between the braces.
Any other `{{` in a template's body is refused when the template is saved, so a body never holds
a half-placeholder that a caller would send as it is. Rendering inserts every value as text in
one pass over the template: a value that itself holds `{{x}}` is never expanded again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from sms_gateway.domain.errors import (
    TemplateVariableMissingError,
    TemplateVariableUnknownError,
    ValidationError,
)
from sms_gateway.domain.ids import is_uuid

MAX_TEMPLATE_CHARS = 1600
MAX_DESCRIPTION_CHARS = 255
SLUG_PATTERN = r"^[a-z0-9-]{1,64}$"
PLACEHOLDER_NAME_PATTERN = r"[a-z_][a-z0-9_]*"

_SLUG = re.compile(SLUG_PATTERN)
_PLACEHOLDER = re.compile(r"\{\{(" + PLACEHOLDER_NAME_PATTERN + r")\}\}")


def placeholders(body: str) -> list[str]:
    """The names a body uses, each once, in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(body)))


def check_body(body: str, *, field: str = "body") -> None:
    """A template body: 1 to 1600 characters, and every `{{` starts a well-formed placeholder."""
    if not 1 <= len(body) <= MAX_TEMPLATE_CHARS:
        raise ValidationError(
            "template is invalid",
            errors=[{"field": field, "issue": f"must be 1 to {MAX_TEMPLATE_CHARS} characters"}],
        )
    if "{{" in _PLACEHOLDER.sub("", body):
        raise ValidationError(
            "template is invalid",
            errors=[
                {
                    "field": field,
                    "issue": "every '{{' must begin a placeholder such as {{first_name}}: "
                    "a name of a-z, 0-9 and _, not starting with a digit, then '}}'",
                }
            ],
        )


def is_slug(text: str) -> bool:
    """Lowercase letters, digits and dashes, 1 to 64, and not shaped like a UUID: a template is
    named by its slug or its id in the same places, so one must never read as the other."""
    return _SLUG.fullmatch(text) is not None and not is_uuid(text)


def check_slug(slug: str, *, field: str = "slug") -> None:
    if not is_slug(slug):
        raise ValidationError(
            "template is invalid",
            errors=[
                {
                    "field": field,
                    "issue": "a slug is 1 to 64 lowercase letters, digits and dashes, "
                    "and is not a UUID",
                }
            ],
        )


def render(body: str, variables: Mapping[str, str]) -> str:
    """The body with each placeholder replaced by its value. Every placeholder needs a value
    (template_variable_missing) and every value a placeholder (template_variable_unknown)."""
    used = placeholders(body)
    missing = [name for name in used if name not in variables]
    if missing:
        raise TemplateVariableMissingError(
            "the template has placeholders with no value: " + ", ".join(missing),
            missing=missing,
        )
    unknown = sorted(set(variables) - set(used))
    if unknown:
        raise TemplateVariableUnknownError(
            "the template does not use these variables: " + ", ".join(unknown),
            unknown=unknown,
        )
    return _PLACEHOLDER.sub(lambda match: variables[match.group(1)], body)


class TemplateSpec(BaseModel):
    """What a caller writes: POST /v1/sms/templates (and any subset of it on PATCH)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    slug: str = Field(
        description="Unique in the workspace: lowercase letters, digits and dashes, 1 to 64; "
        "not a UUID",
        json_schema_extra={"pattern": SLUG_PATTERN},
    )
    body: str = Field(
        description="The text, with {{name}} placeholders (names a-z, 0-9, _)",
        json_schema_extra={"minLength": 1, "maxLength": MAX_TEMPLATE_CHARS},
    )
    description: str | None = Field(
        default=None, json_schema_extra={"maxLength": MAX_DESCRIPTION_CHARS}
    )


class Template(TemplateSpec):
    """A stored template."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(json_schema_extra={"format": "uuid"})
    workspace_id: str
    created_at: str
    updated_at: str
    # Internal: +1 at every change; a write applies only to the revision it read.
    revision: int = 0

    @property
    def variables(self) -> list[str]:
        return placeholders(self.body)

    def to_api(self) -> dict[str, object]:
        return {
            "id": self.id,
            "slug": self.slug,
            "body": self.body,
            "description": self.description,
            "variables": self.variables,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def check_spec(spec: TemplateSpec) -> None:
    check_slug(spec.slug)
    check_body(spec.body)
    if spec.description is not None and len(spec.description) > MAX_DESCRIPTION_CHARS:
        raise ValidationError(
            "template is invalid",
            errors=[
                {
                    "field": "description",
                    "issue": f"must be at most {MAX_DESCRIPTION_CHARS} characters",
                }
            ],
        )
