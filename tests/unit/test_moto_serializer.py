"""sms_local.moto_serializer answers DynamoDB and DynamoDB Streams byte for byte as moto does.

Every comparison serializes one result twice, with moto's serializer as it comes and with the
fast path installed, and compares the whole answer (status, headers, body bytes) or, when moto
fails, the error it fails with. No socket: the serializer is called directly, and the realistic
answers come from moto's in-process mock.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.serialize import JSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model
from moto.dynamodb.models.utilities import dynamo_to_dict
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.models import dynamodbstreams_backends

from sms_local import moto_serializer
from sms_local.moto_serializer import install_fast_serializer, uninstall_fast_serializer


@pytest.fixture(autouse=True)
def _moto_as_it_comes() -> Iterator[None]:
    """Each test starts and ends with moto unpatched, whatever it was in this process before
    (an integration run in the same process installs the fast path for good)."""
    was_installed = "_serialize_type_structure" in vars(JSONSerializer)
    uninstall_fast_serializer()
    yield
    if was_installed:
        install_fast_serializer()
    else:
        uninstall_fast_serializer()


def _serializer(service: str, operation: str) -> JSONSerializer:
    # as moto's ActionResult.execute_result builds it for these services
    operation_model = get_service_model(service).operation_model(operation)
    picker = XFormedAttributePicker(
        response_transformers=DynamoHandler.RESPONSE_KEY_PATH_TO_TRANSFORMER
    )
    return JSONSerializer(operation_model=operation_model, value_picker=picker)


def _outcome(service: str, operation: str, result: Any) -> Any:
    try:
        answer = _serializer(service, operation).serialize(result)
    except Exception as error:  # moto's failure is part of what must not change
        return ("raised", type(error), str(error))
    return (answer["status_code"], dict(answer["headers"]), answer["body"])


def assert_same_answer(service: str, operation: str, result: Any) -> Any:
    uninstall_fast_serializer()
    expected = _outcome(service, operation, result)
    install_fast_serializer()
    try:
        actual = _outcome(service, operation, result)
    finally:
        uninstall_fast_serializer()
    assert actual == expected
    return expected


# --- attribute values, as moto's backends hand them to the serializer --------------------------

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", '"', "\\", "\n\t\r", "\x00\x1f\x7f", "é😀\u2028", "</script>"]
)
_NUMBER = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
    st.sampled_from(["0", "-0", "1E+3", "-1.5e-130", "9.99E125", "0.000", "00012", "1e0"]),
)
_BYTES = st.binary(max_size=12)


def _attribute_values(binary: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """AttributeValue dicts: `binary` is raw bytes (dynamo_to_dict, DynamoDB's answers) or
    base64 text (Item.to_json, the images in stream records)."""
    scalars = st.one_of(
        st.builds(lambda v: {"S": v}, _TEXT),
        st.builds(lambda v: {"N": v}, _NUMBER),
        st.builds(lambda v: {"B": v}, binary),
        st.builds(lambda v: {"SS": v}, st.lists(_TEXT, max_size=4)),
        st.builds(lambda v: {"NS": v}, st.lists(_NUMBER, max_size=4)),
        st.builds(lambda v: {"BS": v}, st.lists(binary, max_size=4)),
        st.just({"NULL": True}),
        st.builds(lambda v: {"BOOL": v}, st.booleans()),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.builds(lambda v: {"M": v}, st.dictionaries(_TEXT, children, max_size=4)),
            st.builds(lambda v: {"L": v}, st.lists(children, max_size=4)),
        ),
        max_leaves=20,
    )


_ANSWER_VALUES = _attribute_values(_BYTES)
_STREAM_VALUES = _attribute_values(_BYTES.map(lambda b: base64.b64encode(b).decode()))
_ITEMS = st.dictionaries(_TEXT, _ANSWER_VALUES, max_size=6)
_IMAGES = st.dictionaries(_TEXT, _STREAM_VALUES, max_size=6)

# Anything at all where an AttributeValue goes: the names moto's picker also tries ("s",
# "ListAttributeValue", "list_attribute_value", ...), members of the wrong type, non-dicts.
_MEMBER_NAMES = ["S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"]
_ODD_NAMES = [
    *(name.lower() for name in _MEMBER_NAMES),
    "ListAttributeValue",
    "list_attribute_value",
    "MapAttributeValue",
    "AttributeValue",
    "a.b",
    "Meta",
    "",
]
_ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | _TEXT
    | _BYTES
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_MEMBER_NAMES + _ODD_NAMES) | _TEXT, children, max_size=3)
    ),
    max_leaves=10,
)


def _odd_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        _ANY_JSON,
        lambda children: st.dictionaries(
            st.sampled_from(_MEMBER_NAMES + _ODD_NAMES),
            children | st.dictionaries(_TEXT, children, max_size=3) | st.lists(children),
            max_size=4,
        ),
        max_leaves=12,
    )


def _get_item(item: dict[str, Any]) -> dict[str, Any]:
    return {"Item": item, "ConsumedCapacity": {"TableName": "messages", "CapacityUnits": 0.5}}


def _query(items: list[dict[str, Any]]) -> dict[str, Any]:
    last = items[-1] if items else None
    return {"Items": items, "Count": len(items), "ScannedCount": 7, "LastEvaluatedKey": last}


def _batch_get(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Responses": {"messages": items, "idempotency": items[:1]},
        "UnprocessedKeys": {"messages": {"Keys": items[:2]}} if items else {},
        "ConsumedCapacity": [{"TableName": "messages", "CapacityUnits": 3}],
    }


def _update_item(item: dict[str, Any]) -> dict[str, Any]:
    return {"Attributes": item}


def _get_records(images: list[dict[str, Any]]) -> dict[str, Any]:
    records = []
    for sequence, image in enumerate(images):
        records.append(
            {
                "eventID": f"{sequence:032x}",
                "eventName": ["INSERT", "MODIFY", "REMOVE"][sequence % 3],
                "eventSource": "aws:dynamodb",
                "eventVersion": "1.0",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                    "ApproximateCreationDateTime": datetime(2025, 1, 2, 3, 4, 5, 678901, UTC),
                    "SequenceNumber": str(1100000000017454423009 + sequence),
                    "SizeBytes": 123 + sequence,
                    "Keys": {"id": {"S": f"m{sequence}"}},
                    "NewImage": image,
                    "OldImage": image,
                },
            }
        )
    return {
        "NextShardIterator": "arn:aws:dynamodb:us-east-1:1:table/x/stream/y|1|2",
        "Records": records,
    }


_ANSWERS: list[tuple[str, str, Callable[[Any], dict[str, Any]], st.SearchStrategy[Any]]] = [
    ("dynamodb", "GetItem", _get_item, _ITEMS),
    ("dynamodb", "Query", _query, st.lists(_ITEMS, max_size=4)),
    ("dynamodb", "Scan", _query, st.lists(_ITEMS, max_size=4)),
    ("dynamodb", "BatchGetItem", _batch_get, st.lists(_ITEMS, max_size=4)),
    ("dynamodb", "UpdateItem", _update_item, _ITEMS),
    ("dynamodb", "PutItem", _update_item, _ITEMS),
    ("dynamodb", "DeleteItem", _update_item, _ITEMS),
    ("dynamodbstreams", "GetRecords", _get_records, st.lists(_IMAGES, max_size=3)),
]


@pytest.mark.parametrize(("service", "operation", "build", "values"), _ANSWERS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_answers_serialize_to_the_same_bytes(
    service: str,
    operation: str,
    build: Callable[[Any], dict[str, Any]],
    values: st.SearchStrategy[Any],
    data: st.DataObject,
) -> None:
    assert_same_answer(service, operation, build(data.draw(values)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_odd_values())
def test_anything_where_an_attribute_value_goes_serializes_the_same(value: Any) -> None:
    assert_same_answer("dynamodb", "GetItem", {"Item": {"a": value, "b": {"L": [value]}}})
    assert_same_answer("dynamodb", "GetItem", {"Item": value})
    assert_same_answer("dynamodbstreams", "GetRecords", {"Records": [{"dynamodb": value}]})


# The shapes of what the fast path must hand back to moto: not plain dicts, None, strange types.
class _Record:
    def __init__(self) -> None:
        self.event_id = "e1"
        self.dynamodb = {"Keys": {"id": {"S": "x"}}, "NewImage": {"n": {"N": "1"}}}


_EXAMPLES: list[tuple[str, str, Any]] = [
    ("dynamodb", "GetItem", {}),
    ("dynamodb", "GetItem", {"Item": {}}),
    ("dynamodb", "GetItem", {"Item": None}),
    (
        "dynamodb",
        "GetItem",
        {
            "Item": {
                "id": {"S": 'msg-ü"\\\n😀'},
                "n": {"N": "-1.25E-7"},
                "big": {"N": "123456789012345678901234567890123456789"},
                "b": {"B": b"\x00\xff"},
                "ss": {"SS": ["a", "b"]},
                "ns": {"NS": ["1", "-2", "3.5e10"]},
                "bs": {"BS": [b"", b"x"]},
                "m": {"M": {"": {"M": {}}, "l": {"L": []}, "null": {"NULL": True}}},
                "l": {"L": [{"BOOL": False}, {"BOOL": True}, {"L": [{"S": ""}]}]},
                "int_n": {"N": 5},
                "decimal_n": {"N": Decimal("1.50")},
                "none_s": {"S": None},
                "false_null": {"NULL": False},
                "two": {"S": "x", "N": "1"},
                "lower": {"s": "x", "l": [{"S": "y"}]},
                "aliased": {"ListAttributeValue": [{"S": "y"}], "L": [{"S": "z"}]},
            }
        },
    ),
    ("dynamodb", "GetItem", {"Item": {"l": {"L": [None, {"S": "x"}, "raw"]}}}),
    ("dynamodb", "GetItem", {"Item": {"m": {"M": None}}}),
    ("dynamodb", "GetItem", {"Item": {"m": {"M": [1]}}}),
    ("dynamodb", "GetItem", {"Item": {"b": {"B": None}}}),
    ("dynamodb", "GetItem", {"Item": {"b": {"B": 5}}}),
    ("dynamodb", "GetItem", {"Item": {"s": {"S": {}}}}),
    ("dynamodb", "GetItem", {"Item": {"s": {"S": []}}}),
    ("dynamodb", "GetItem", {"Item": {"s": {"S": 1.5}}}),
    ("dynamodb", "Query", {"Items": [{"a": {"S": "b"}}], "Count": "1", "ScannedCount": 1.0}),
    ("dynamodb", "UpdateItem", {"Attributes": {"a": {"N": "1"}}, "ItemCollectionMetrics": None}),
    ("dynamodbstreams", "GetRecords", {"Records": [_Record()]}),
    ("dynamodbstreams", "GetRecords", {"Records": []}),
    ("dynamodbstreams", "GetRecords", {"Records": None}),
    ("dynamodbstreams", "GetRecords", {"Records": [None]}),
    ("dynamodbstreams", "GetRecords", {"records": [{"event_id": "x", "dynamodb": {}}]}),
]


@pytest.mark.parametrize(("service", "operation", "result"), _EXAMPLES)
def test_odd_answers_serialize_the_same(service: str, operation: str, result: Any) -> None:
    assert_same_answer(service, operation, result)


def test_the_fast_path_is_taken() -> None:
    """The comparisons above would pass with a fast path that never runs."""
    moto_serializer._plans.clear()
    install_fast_serializer()
    _serializer("dynamodb", "GetItem").serialize({"Item": {"a": {"S": "b"}}})
    assert moto_serializer._plans


# --- the answers moto's backends really give, during a realistic workload ----------------------


def _compare_every_answer(monkeypatch: pytest.MonkeyPatch, compared: list[str]) -> None:
    """Make every JSON answer moto serializes in this process be serialized twice, and compared."""
    serialize = JSONSerializer.serialize

    def serialize_twice(self: JSONSerializer, result: Any) -> Any:
        uninstall_fast_serializer()
        try:
            expected = serialize(self, result)
        finally:
            install_fast_serializer()
        actual = serialize(self, result)
        assert actual == expected
        compared.append(str(self.operation_model.name))
        return actual

    monkeypatch.setattr(JSONSerializer, "serialize", serialize_twice)


def test_a_realistic_workload_is_answered_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[str] = []
    # an endpoint of the local stack (set by an integration run in this process) would take
    # the calls past moto's in-process interception, to a socket
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
            monkeypatch.delenv(name)
    with mock_aws():
        _compare_every_answer(monkeypatch, compared)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        table = dynamodb.create_table(
            TableName="messages",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        item: dict[str, Any] = {
            "status": {"S": 'queued ü😀 "quoted" \\ \n'},
            "attempts": {"N": "0"},
            "price": {"N": "-0.0075"},
            "big": {"N": "1.5E+30"},
            "raw": {"B": b"\x00\x01\xfe\xff"},
            "tags": {"SS": ["a", "b"]},
            "scores": {"NS": ["1", "2.5"]},
            "blobs": {"BS": [b"x", b"yz"]},
            "nothing": {"NULL": True},
            "flag": {"BOOL": False},
            "empty_map": {"M": {}},
            "empty_list": {"L": []},
            "history": {"L": [{"M": {"at": {"S": "t"}, "ok": {"BOOL": True}}}]},
            "meta": {"M": {"nested": {"M": {"deep": {"L": [{"N": "1"}, {"S": ""}]}}}}},
        }
        for index in range(5):
            dynamodb.put_item(TableName="messages", Item={"id": {"S": f"m{index}"}, **item})
        dynamodb.get_item(TableName="messages", Key={"id": {"S": "m0"}})
        dynamodb.update_item(
            TableName="messages",
            Key={"id": {"S": "m1"}},
            UpdateExpression="SET attempts = attempts + :one, history = list_append(history, :h)",
            ExpressionAttributeValues={":one": {"N": "1"}, ":h": {"L": [{"S": "again"}]}},
            ReturnValues="ALL_NEW",
        )
        dynamodb.batch_get_item(
            RequestItems={"messages": {"Keys": [{"id": {"S": f"m{i}"}} for i in range(4)]}}
        )
        dynamodb.query(
            TableName="messages",
            KeyConditionExpression="id = :id",
            ExpressionAttributeValues={":id": {"S": "m2"}},
        )
        dynamodb.scan(TableName="messages", Limit=2)
        dynamodb.delete_item(TableName="messages", Key={"id": {"S": "m4"}}, ReturnValues="ALL_OLD")
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "messages",
                        "Key": {"id": {"S": "m0"}},
                        "UpdateExpression": "SET flag = :t",
                        "ExpressionAttributeValues": {":t": {"BOOL": True}},
                    }
                }
            ]
        )
        # moto's in-process mock answers DynamoDB Streams' URLs with 404 ("Not yet
        # implemented"), so the records are read from its backend, as its handler reads them
        stream_arn = table["TableDescription"]["LatestStreamArn"]
        backend = dynamodbstreams_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        shard_id = backend.describe_stream(stream_arn)["Shards"][0]["ShardId"]
        iterator = backend.get_shard_iterator(stream_arn, shard_id, "TRIM_HORIZON", None)
        answer = backend.get_records(iterator.arn, 1000)
        records = answer["Records"]
        assert_same_answer("dynamodbstreams", "GetRecords", answer)
    assert len(records) == 8
    assert {r["eventName"] for r in records} == {"INSERT", "MODIFY", "REMOVE"}
    assert {"GetItem", "UpdateItem", "BatchGetItem", "Query", "Scan"} <= set(compared)


def test_dynamo_to_dict_output_serializes_the_same() -> None:
    """The conversion DynamoDB's handler applies before serializing (B as raw bytes)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    value = DynamoType({"M": {"b": {"B": base64.b64encode(b"\x00").decode()}, "n": {"N": "1"}}})
    assert_same_answer("dynamodb", "GetItem", dynamo_to_dict({"Item": {"v": value}}))
