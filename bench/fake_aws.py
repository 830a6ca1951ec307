"""AWS answered in-process, for measuring the CPU cost of our own code.

A botocore `before-send` hook answers each request with a canned HTTP response, so botocore still
does everything it does in Lambda (parameter validation, serialisation, SigV4 signing, response
parsing) and only the network round trip is skipped. Behind it sits the smallest in-memory store
that gives realistic answers: items are kept by key (PutItem, GetItem, BatchGetItem, DeleteItem),
UpdateItem answers with the stored item unchanged (its expressions are not evaluated), queues
accept everything, secrets are kept by name.

Its state travels as JSON (`state()`, `from_state()`): the cold-start benchmark fills a store in
its own process and answers a fresh process's first request from it. Importing this module loads
nothing but botocore's request classes (which any client loads anyway), so that it does not
warm up the measured process.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from typing import Any, cast

from botocore.awsrequest import AWSResponse

_JSON_1_0 = "application/x-amz-json-1.0"
_JSON_1_1 = "application/x-amz-json-1.1"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> list[bytes]:
        return [self._data]


class _ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class FakeAws:
    def __init__(self, key_schema: dict[str, list[str]], *, region: str, account_id: str) -> None:
        # table name -> its key attributes (tables are named after their logical ids locally)
        self.key_schema = key_schema
        self.region, self.account_id = region, account_id
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.unanswered: Counter[str] = Counter()  # operations this fake does not know

    @classmethod
    def from_template(cls, template: dict[str, Any]) -> FakeAws:
        from sms_local.aws_resources import ACCOUNT_ID, REGION
        from sms_local.template import resources_of_type

        key_schema = {
            name: [k["AttributeName"] for k in resource["Properties"]["KeySchema"]]
            for name, resource in resources_of_type(template, "AWS::DynamoDB::Table").items()
        }
        return cls(key_schema, region=REGION, account_id=ACCOUNT_ID)

    def state(self) -> dict[str, Any]:
        """Everything stored, as JSON-able data (from_state makes the same fake again)."""
        return {
            "key_schema": self.key_schema,
            "region": self.region,
            "account_id": self.account_id,
            "items": [[table, key, item] for (table, key), item in self.items.items()],
            "secrets": self.secrets,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FakeAws:
        fake = cls(state["key_schema"], region=state["region"], account_id=state["account_id"])
        fake.items = {(table, key): item for table, key, item in state["items"]}
        fake.secrets = dict(state["secrets"])
        return fake

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send", self._answer)

    def detach(self, client: Any) -> None:
        client.meta.events.unregister("before-send", self._answer)

    # -- the hook ---------------------------------------------------------------------------

    def _answer(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse:
        service, operation = event_name.split(".")[1:]
        self.calls[f"{service}.{operation}"] += 1
        body = request.body
        params = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
        content_type = _JSON_1_0 if service in ("dynamodb", "sqs") else _JSON_1_1
        headers = {"content-type": content_type, "x-amzn-requestid": uuid.uuid4().hex}
        try:
            handler = getattr(self, f"_{service.replace('-', '_')}_{operation}", None)
            if handler is None:
                self.unanswered[f"{service}.{operation}"] += 1
                raise _ServiceError("UnknownOperationException", "bench.fake_aws cannot answer")
            payload, status = handler(params), 200
        except _ServiceError as error:
            prefix = "com.amazonaws.dynamodb.v20120810#" if service == "dynamodb" else ""
            payload = {"__type": prefix + error.code, "message": error.message}
            status = error.status
            headers["x-amzn-query-error"] = f"{error.code};Sender"
        raw = _Body(json.dumps(payload).encode())
        return AWSResponse(request.url, status, cast(Any, headers), raw)

    # -- DynamoDB -----------------------------------------------------------------------------

    def _key(self, table: str, key_or_item: dict[str, Any]) -> tuple[str, str]:
        names = self.key_schema.get(table)
        if names is None:
            raise _ServiceError("ResourceNotFoundException", f"no table {table}")
        return table, json.dumps([key_or_item.get(name) for name in names], sort_keys=True)

    def _dynamodb_PutItem(self, params: dict[str, Any]) -> dict[str, Any]:
        table = params["TableName"]
        self.items[self._key(table, params["Item"])] = params["Item"]
        return {}

    def _dynamodb_GetItem(self, params: dict[str, Any]) -> dict[str, Any]:
        item = self.items.get(self._key(params["TableName"], params["Key"]))
        return {"Item": item} if item is not None else {}

    def _dynamodb_BatchGetItem(self, params: dict[str, Any]) -> dict[str, Any]:
        responses = {}
        for table, request in params["RequestItems"].items():
            found = [self.items.get(self._key(table, key)) for key in request["Keys"]]
            responses[table] = [item for item in found if item is not None]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def _dynamodb_UpdateItem(self, params: dict[str, Any]) -> dict[str, Any]:
        item = self.items.get(self._key(params["TableName"], params["Key"]))
        if item is None:
            raise _ServiceError("ConditionalCheckFailedException", "The conditional request failed")
        return {"Attributes": item} if params.get("ReturnValues", "NONE") != "NONE" else {}

    def _dynamodb_DeleteItem(self, params: dict[str, Any]) -> dict[str, Any]:
        self.items.pop(self._key(params["TableName"], params["Key"]), None)
        return {}

    def _dynamodb_Query(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"Items": [], "Count": 0, "ScannedCount": 0}

    def _dynamodb_TransactWriteItems(self, params: dict[str, Any]) -> dict[str, Any]:
        # Accepted as a whole, nothing stored: like UpdateItem, its expressions are not evaluated.
        return {}

    # -- SQS, EventBridge Scheduler and Secrets Manager ------------------------------------------

    def _sqs_SendMessageBatch(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "Successful": [
                {
                    "Id": entry["Id"],
                    "MessageId": str(uuid.uuid4()),
                    "MD5OfMessageBody": hashlib.md5(
                        entry["MessageBody"].encode(), usedforsecurity=False
                    ).hexdigest(),
                }
                for entry in params["Entries"]
            ],
            "Failed": [],
        }

    def _sqs_ChangeMessageVisibility(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _sqs_DeleteMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _scheduler_DeleteSchedule(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _sqs_SendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        digest = hashlib.md5(params["MessageBody"].encode(), usedforsecurity=False).hexdigest()
        return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": digest}

    def _secret(self, name: str) -> dict[str, Any]:
        arn = f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:{name}-AbCdEf"
        return {"ARN": arn, "Name": name, "VersionId": "00000000-0000-0000-0000-000000000001"}

    def _secrets_manager_CreateSecret(self, params: dict[str, Any]) -> dict[str, Any]:
        self.secrets[params["Name"]] = params["SecretString"]
        return self._secret(params["Name"])

    def _secrets_manager_GetSecretValue(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["SecretId"]
        if name not in self.secrets:
            raise _ServiceError("ResourceNotFoundException", "Secrets Manager can't find it.")
        return {
            **self._secret(name),
            "SecretString": self.secrets[name],
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1.7e9,
        }
