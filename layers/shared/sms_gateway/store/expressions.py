"""One DynamoDB UpdateItem being built: its clauses, its condition, and the placeholder names
and values they use (the status machine's transitions and the limits' writes build theirs
with it)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sms_gateway.store.dynamo import to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, UpdateTypeDef

_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")


class Expression:
    """SET, ADD and REMOVE clauses and AND-ed conditions, with #name and :value placeholders."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.removes: list[str] = []
        self.conditions: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, AttributeValueTypeDef] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#{attribute}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_value(value)
        return placeholder

    def update(self, table: str, key: dict[str, AttributeValueTypeDef]) -> UpdateTypeDef:
        """The UpdateItem request (without ReturnValues)."""
        clauses = []
        if self.sets:
            clauses.append("SET " + ", ".join(self.sets))
        if self.adds:
            clauses.append("ADD " + ", ".join(self.adds))
        if self.removes:
            clauses.append("REMOVE " + ", ".join(self.removes))
        update: UpdateTypeDef = {
            "TableName": table,
            "Key": key,
            "UpdateExpression": " ".join(clauses),
        }
        if self.conditions:
            update["ConditionExpression"] = " AND ".join(self.conditions)
        # DynamoDB refuses a placeholder that no expression uses.
        used = set(_PLACEHOLDER.findall(f"{update['UpdateExpression']} {self.conditions}"))
        update["ExpressionAttributeNames"] = {k: v for k, v in self.names.items() if k in used}
        values = {k: v for k, v in self.values.items() if k in used}
        if values:
            update["ExpressionAttributeValues"] = values
        return update
