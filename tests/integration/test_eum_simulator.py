"""The End User Messaging SMS simulator speaks pinpoint-sms-voice-v2's wire format, so an unmodified
boto3 client works against it, and publishes AWS's SMS events to SNS.

Every call goes through the real boto3 client (retries off, so each call is one request), except
where a request boto3 would never send is the point. The events go through moto's server: the
package's `aws` fixture (tests/integration/conftest.py starts it with start_local_aws for every
integration test; a second server would reset moto's global backends under the first), with a
topic and a queue subscribed to it with raw message delivery, made for each test.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from sms_local.aws_resources import LocalStack
from sms_local.eum_simulator import EumSimulator, EumSimulatorConfig

REGION = "us-east-1"
ACCOUNT = "123456789012"
POOL_ID = "pool-0123456789abcdef0123456789abcdef"
POOL_ARN = f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:pool/{POOL_ID}"
POOL_NUMBER = "+14155550100"
PHONE_NUMBER = "+12125550100"
PHONE_NUMBER_ID = "phone-00112233445566778899aabbccddeeff"
CONFIG_SET = "gateway-events"
CONFIG_SET_ARN = f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:configuration-set/{CONFIG_SET}"
SILENT_SET = "no-destination"
PLAIN_TO = "+16465551234"  # hits no test number
TARGET = "PinpointSMSVoiceV2.SendTextMessage"
FAKE_SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/sms-voice/aws4_request, "
    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + "0" * 64
)
EVENT_KEYS = {
    "eventType",
    "eventVersion",
    "eventTimestamp",
    "isFinal",
    "originationPhoneNumber",
    "destinationPhoneNumber",
    "isoCountryCode",
    "isInternationalSend",
    "mcc",
    "mnc",
    "carrierName",
    "messageId",
    "messageRequestTimestamp",
    "messageEncoding",
    "messageType",
    "messageStatus",
    "messageStatusDescription",
    "totalMessageParts",
    "totalMessagePrice",
    "totalCarrierFee",
}

# Proxies from the environment must not intercept loopback traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- fixtures and helpers -----------------------------------------------------------------------


def _config(topic_arn: str | None = None, **overrides: Any) -> EumSimulatorConfig:
    config = EumSimulatorConfig(
        origination_identities={
            POOL_ID: POOL_NUMBER,
            POOL_ARN: POOL_NUMBER,
            PHONE_NUMBER: PHONE_NUMBER,
            PHONE_NUMBER_ID: PHONE_NUMBER,
        },
        configuration_sets={CONFIG_SET: topic_arn, CONFIG_SET_ARN: topic_arn, SILENT_SET: None},
        event_delays=(0.01, 0.01),
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


@pytest.fixture
def sim() -> Iterator[EumSimulator]:
    simulator = EumSimulator(_config())
    simulator.start()
    yield simulator
    simulator.stop()


class EventRoute:
    """An SNS topic on moto and a queue subscribed to it with raw message delivery."""

    def __init__(self, aws: LocalStack) -> None:
        self.sns = aws.client("sns")
        self.sqs = aws.client("sqs")
        name = f"eum-events-{uuid.uuid4().hex[:8]}"
        self.topic_arn: str = self.sns.create_topic(Name=name)["TopicArn"]
        self.queue_url: str = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )

    def events(self, expected: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The queue's events in arrival order: waits for `expected` of them, then checks that no
        more are there."""
        bodies: list[str] = []
        deadline = time.monotonic() + timeout
        while len(bodies) < expected and time.monotonic() < deadline:
            bodies += self._receive(wait_seconds=1)
        bodies += self._receive(wait_seconds=0)
        return [json.loads(body) for body in bodies]

    def _receive(self, wait_seconds: int) -> list[str]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        messages = answer.get("Messages", [])
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [message["Body"] for message in messages]

    def close(self) -> None:
        self.sns.delete_topic(TopicArn=self.topic_arn)
        self.sqs.delete_queue(QueueUrl=self.queue_url)


@pytest.fixture
def route(aws: LocalStack) -> Iterator[EventRoute]:
    events = EventRoute(aws)
    yield events
    events.close()


@pytest.fixture
def publishing_sim(aws: LocalStack, route: EventRoute) -> Iterator[EumSimulator]:
    simulator = EumSimulator(_config(route.topic_arn, sns_endpoint_url=aws.endpoint_url))
    simulator.start()
    yield simulator
    simulator.stop()


def _client(sim: EumSimulator, **options: Any) -> Any:
    """boto3's own client on the simulator, one request per call (no retries)."""
    config = Config(retries={"total_max_attempts": 1}, **options)
    factory: Any = boto3.client
    return factory(
        "pinpoint-sms-voice-v2",
        endpoint_url=sim.base_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def _send(sim: EumSimulator, **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "DestinationPhoneNumber": PLAIN_TO,
        "OriginationIdentity": POOL_ID,
        "MessageBody": "Your code is 123456",
    }
    params.update(overrides)
    # Server-side checks are the point: botocore's own (min lengths, types) must not run first.
    answer: dict[str, Any] = _client(sim, parameter_validation=False).send_text_message(**params)
    return answer


def _refused(sim: EumSimulator, **overrides: Any) -> dict[str, Any]:
    """e.response of the ClientError botocore raises for a send."""
    with pytest.raises(ClientError) as raised:
        _send(sim, **overrides)
    response: dict[str, Any] = dict(raised.value.response)
    return response


def _http(
    sim: EumSimulator,
    path: str = "/",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, dict[str, Any], Message]:
    # Every URL here is built from the simulator's own http:// base_url.
    request = urllib.request.Request(  # noqa: S310, RUF100
        f"{sim.base_url}{path}", data=body, method=method or ("GET" if body is None else "POST")
    )
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with _OPENER.open(request, timeout=5) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read()), exc.headers


def _raw_send(
    sim: EumSimulator, document: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], Message]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    all_headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": TARGET,
        "Authorization": FAKE_SIGV4,
        **(headers or {}),
    }
    return _http(sim, "/", body, all_headers)


def _control(sim: EumSimulator, knobs: Any = None) -> tuple[int, dict[str, Any]]:
    body = None if knobs is None else json.dumps(knobs).encode()
    status, payload, _ = _http(sim, "/_simulator/control", body)
    return status, payload


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _fields(response: dict[str, Any]) -> list[str]:
    return [field["Name"] for field in response.get("Fields", [])]


# --- success ------------------------------------------------------------------------------------


def test_send_answers_a_message_id_and_stores_the_message(sim: EumSimulator) -> None:
    answer = _send(
        sim,
        MessageType="PROMOTIONAL",
        TimeToLive=300,
        Context={"message_id": "msg_1", "workspace": "ws_1"},
        ConfigurationSetName=SILENT_SET,
    )

    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    message_id = answer["MessageId"]
    assert uuid.UUID(message_id).version == 4
    [stored] = sim.messages
    assert stored == {
        "message_id": message_id,
        "destination": PLAIN_TO,
        "origination_identity": POOL_ID,
        "origination_number": POOL_NUMBER,
        "configuration_set": SILENT_SET,
        "body": "Your code is 123456",
        "message_type": "PROMOTIONAL",
        "time_to_live": 300,
        "context": {"message_id": "msg_1", "workspace": "ws_1"},
        "message_request_timestamp": stored["message_request_timestamp"],
        "events": [],
    }
    assert sim.send_count() == 1


def test_a_plain_boto3_client_with_default_validation_works(sim: EumSimulator) -> None:
    client = _client(sim)
    answer = client.send_text_message(
        DestinationPhoneNumber=PLAIN_TO, OriginationIdentity=POOL_ID, MessageBody="hi"
    )

    assert [m["message_id"] for m in sim.messages] == [answer["MessageId"]]
    assert answer["ResponseMetadata"]["RequestId"]


@pytest.mark.parametrize(
    ("identity", "number"),
    [(POOL_ID, POOL_NUMBER), (POOL_ARN, POOL_NUMBER), (PHONE_NUMBER, PHONE_NUMBER)],
)
def test_every_spelling_of_an_identity_sends_from_its_number(
    sim: EumSimulator, identity: str, number: str
) -> None:
    _send(sim, OriginationIdentity=identity)

    [stored] = sim.messages
    assert stored["origination_identity"] == identity
    assert stored["origination_number"] == number


def test_dry_run_checks_everything_but_creates_nothing(sim: EumSimulator) -> None:
    answer = _send(sim, DryRun=True)
    assert uuid.UUID(answer["MessageId"])
    assert sim.messages == []

    response = _refused(sim, DryRun=True, DestinationPhoneNumber="+15005550004")
    assert response["Error"]["Code"] == "ConflictException"
    assert sim.send_count() == 2


# --- refusals: the test numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "status", "code", "reason"),
    [
        ("+15005550001", 400, "ValidationException", "INVALID_PARAMETER"),
        ("+15005550003", 400, "ValidationException", "DESTINATION_COUNTRY_BLOCKED"),
        ("+15005550004", 400, "ConflictException", "DESTINATION_PHONE_NUMBER_OPTED_OUT"),
        ("+14155550429", 400, "ThrottlingException", None),
        ("+14155550500", 500, "InternalServerException", None),
        ("+14155550503", 503, "ServiceUnavailableException", None),
    ],
)
def test_test_numbers_get_their_documented_errors(
    sim: EumSimulator, to: str, status: int, code: str, reason: str | None
) -> None:
    response = _refused(sim, DestinationPhoneNumber=to)

    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == code
    assert response.get("Reason") == reason
    assert sim.messages == []
    assert sim.send_count() == 1


def test_an_invalid_destination_names_the_field(sim: EumSimulator) -> None:
    response = _refused(sim, DestinationPhoneNumber="+15005550001")

    assert _fields(response) == ["DestinationPhoneNumber"]
    assert response["Fields"][0]["Message"]


def test_an_opted_out_destination_names_the_opted_out_number(sim: EumSimulator) -> None:
    response = _refused(sim, DestinationPhoneNumber="+15005550004")

    assert response["ResourceType"] == "opted-out-number"
    assert response["ResourceId"] == "+15005550004"


def test_an_internal_error_carries_a_request_id(sim: EumSimulator) -> None:
    response = _refused(sim, DestinationPhoneNumber="+12125550500")

    assert uuid.UUID(response["RequestId"])


def test_botocore_sees_the_modeled_exception_classes(sim: EumSimulator) -> None:
    client = _client(sim)
    with pytest.raises(client.exceptions.ConflictException):
        client.send_text_message(
            DestinationPhoneNumber="+15005550004", OriginationIdentity=POOL_ID, MessageBody="hi"
        )
    with pytest.raises(client.exceptions.ThrottlingException):
        client.send_text_message(
            DestinationPhoneNumber="+14155550429", OriginationIdentity=POOL_ID, MessageBody="hi"
        )


def test_the_slow_number_is_accepted_but_answered_too_late(sim: EumSimulator) -> None:
    client = _client(sim, read_timeout=0.3, connect_timeout=2)

    # The answer comes SLOW_RESPONSE_SECONDS later: a client that waits 0.3 s gives up first.
    with pytest.raises(ReadTimeoutError):
        client.send_text_message(
            DestinationPhoneNumber="+14155550777", OriginationIdentity=POOL_ID, MessageBody="hi"
        )
    # (the request may still be on its way into the simulator when the client gives up)
    assert _eventually(lambda: len(sim.messages) == 1)
    started = time.monotonic()
    sim.stop()

    assert time.monotonic() - started < 5  # stopping does not wait for the slow answer
    assert [message["destination"] for message in sim.messages] == ["+14155550777"]
    assert sim.send_count() == 1


# --- refusals: the account's resources ----------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "resource_type"),
    [
        ("pool-ffffffffffffffffffffffffffffffff", "pool"),
        (
            f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:pool/pool-ffffffffffffffffffffffffffffffff",
            "pool",
        ),
        ("+13105550100", "phone-number"),
        ("phone-ffffffffffffffffffffffffffffffff", "phone-number"),
        (f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:phone-number/phone-ffff", "phone-number"),
        ("ACME", "sender-id"),
    ],
)
def test_an_unknown_origination_identity_is_not_found(
    sim: EumSimulator, identity: str, resource_type: str
) -> None:
    response = _refused(sim, OriginationIdentity=identity)

    assert response["Error"]["Code"] == "ResourceNotFoundException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResourceType"] == resource_type
    assert response["ResourceId"] == identity
    assert sim.messages == []


def test_an_unknown_configuration_set_is_not_found(sim: EumSimulator) -> None:
    response = _refused(sim, ConfigurationSetName="not-configured")

    assert response["Error"]["Code"] == "ResourceNotFoundException"
    assert response["ResourceType"] == "configuration-set"
    assert response["ResourceId"] == "not-configured"
    assert sim.messages == []


# --- refusals: validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason", "fields"),
    [
        pytest.param(
            {"DestinationPhoneNumber": "6465551234"},
            "INVALID_PARAMETER",
            ["DestinationPhoneNumber"],
            id="destination-without-plus",
        ),
        pytest.param(
            {"DestinationPhoneNumber": "+1234567890123456"},
            "INVALID_PARAMETER",
            ["DestinationPhoneNumber"],
            id="destination-over-15-digits",
        ),
        pytest.param(
            {"DestinationPhoneNumber": "+1" + "2" * 19},
            "FIELD_VALIDATION_FAILED",
            ["DestinationPhoneNumber"],
            id="destination-over-20-characters",
        ),
        pytest.param(
            {"DestinationPhoneNumber": "+0465551234"},
            "FIELD_VALIDATION_FAILED",
            ["DestinationPhoneNumber"],
            id="destination-leading-zero",
        ),
        pytest.param(
            {"DestinationPhoneNumber": None},
            "FIELD_VALIDATION_FAILED",
            ["DestinationPhoneNumber"],
            id="destination-missing",
        ),
        pytest.param(
            {"OriginationIdentity": "pool id!"},
            "FIELD_VALIDATION_FAILED",
            ["OriginationIdentity"],
            id="identity-pattern",
        ),
        pytest.param(
            {"OriginationIdentity": "p" * 257},
            "FIELD_VALIDATION_FAILED",
            ["OriginationIdentity"],
            id="identity-too-long",
        ),
        pytest.param(
            {"OriginationIdentity": None},
            "MISSING_PARAMETER",
            ["OriginationIdentity"],
            id="identity-missing",
        ),
        pytest.param(
            {"MessageBody": ""}, "FIELD_VALIDATION_FAILED", ["MessageBody"], id="body-empty"
        ),
        pytest.param(
            {"MessageBody": " \n\t "},
            "FIELD_VALIDATION_FAILED",
            ["MessageBody"],
            id="body-whitespace",
        ),
        pytest.param(
            {"MessageBody": "x" * 1601},
            "FIELD_VALIDATION_FAILED",
            ["MessageBody"],
            id="body-too-long",
        ),
        pytest.param(
            {"MessageBody": None}, "MISSING_PARAMETER", ["MessageBody"], id="body-missing"
        ),
        pytest.param(
            {"MessageType": "URGENT"},
            "FIELD_VALIDATION_FAILED",
            ["MessageType"],
            id="message-type",
        ),
        pytest.param(
            {"ConfigurationSetName": "bad name"},
            "FIELD_VALIDATION_FAILED",
            ["ConfigurationSetName"],
            id="configuration-set-pattern",
        ),
        pytest.param(
            {"TimeToLive": 4}, "FIELD_VALIDATION_FAILED", ["TimeToLive"], id="ttl-too-short"
        ),
        pytest.param(
            {"TimeToLive": 259_201},
            "FIELD_VALIDATION_FAILED",
            ["TimeToLive"],
            id="ttl-too-long",
        ),
        pytest.param(
            {"Context": {f"k{n}": "v" for n in range(6)}},
            "FIELD_VALIDATION_FAILED",
            ["Context"],
            id="context-six-entries",
        ),
        pytest.param(
            {"Context": {"a key": "v"}},
            "FIELD_VALIDATION_FAILED",
            ["Context"],
            id="context-key-with-space",
        ),
        pytest.param(
            {"Context": {"k" * 101: "v"}},
            "FIELD_VALIDATION_FAILED",
            ["Context"],
            id="context-key-too-long",
        ),
        pytest.param(
            {"Context": {"k": " v"}},
            "FIELD_VALIDATION_FAILED",
            ["Context"],
            id="context-value-leading-space",
        ),
        pytest.param(
            {"Context": {"k": "v\n"}},
            "FIELD_VALIDATION_FAILED",
            ["Context"],
            id="context-value-trailing-newline",
        ),
        pytest.param(
            {"Context": {"k": "v" * 801}},
            "FIELD_VALIDATION_FAILED",
            ["Context"],
            id="context-value-too-long",
        ),
        pytest.param(
            {"Context": {"k": ""}},
            "FIELD_VALIDATION_FAILED",
            ["Context"],
            id="context-value-empty",
        ),
        pytest.param(
            {"TimeToLive": 1, "MessageType": "URGENT", "MessageBody": ""},
            "FIELD_VALIDATION_FAILED",
            ["MessageBody", "MessageType", "TimeToLive"],
            id="every-problem-at-once",
        ),
    ],
)
def test_invalid_requests_get_a_validation_exception(
    sim: EumSimulator, overrides: dict[str, Any], reason: str, fields: list[str]
) -> None:
    params = {name: value for name, value in overrides.items() if value is not None}
    omitted = [name for name, value in overrides.items() if value is None]
    base = {
        "DestinationPhoneNumber": PLAIN_TO,
        "OriginationIdentity": POOL_ID,
        "MessageBody": "hi",
    }
    request = {name: value for name, value in {**base, **params}.items() if name not in omitted}
    with pytest.raises(ClientError) as raised:
        _client(sim, parameter_validation=False).send_text_message(**request)
    response: dict[str, Any] = dict(raised.value.response)

    assert response["Error"]["Code"] == "ValidationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Reason"] == reason
    assert sorted(set(_fields(response))) == fields
    assert all(field["Message"] for field in response["Fields"])
    assert sim.messages == []
    assert sim.send_count() == 1


def test_the_boundaries_of_the_model_are_accepted(sim: EumSimulator) -> None:
    _send(
        sim,
        DestinationPhoneNumber="+123456789012345",
        MessageBody="x" * 1600,
        TimeToLive=5,
        Context={f"k{n}": "v" * 800 for n in range(5)},
        ConfigurationSetName=CONFIG_SET_ARN,
    )
    _send(sim, TimeToLive=259_200, Context={"k" * 100: "a b"}, MessageType="TRANSACTIONAL")

    assert len(sim.messages) == 2


def test_a_member_outside_the_request_shape_is_a_field_error(sim: EumSimulator) -> None:
    status, payload, headers = _raw_send(
        sim,
        {
            "DestinationPhoneNumber": PLAIN_TO,
            "OriginationIdentity": POOL_ID,
            "MessageBody": "hi",
            "Priority": "HIGH",
        },
    )

    assert status == 400
    assert headers["x-amzn-ErrorType"] == "ValidationException"
    assert payload["__type"] == "ValidationException"
    assert payload["Reason"] == "FIELD_VALIDATION_FAILED"
    assert _fields(payload) == ["Priority"]
    assert sim.messages == []


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(
            {"DestinationPhoneNumber": 16465551234, "OriginationIdentity": POOL_ID},
            id="number-for-string",
        ),
        pytest.param(
            {
                "DestinationPhoneNumber": PLAIN_TO,
                "OriginationIdentity": POOL_ID,
                "MessageBody": "hi",
                "TimeToLive": "300",
            },
            id="string-for-integer",
        ),
        pytest.param(
            {
                "DestinationPhoneNumber": PLAIN_TO,
                "OriginationIdentity": POOL_ID,
                "MessageBody": "hi",
                "Context": {"k": 1},
            },
            id="number-in-context",
        ),
    ],
)
def test_a_body_that_cannot_be_read_is_a_serialization_error(
    sim: EumSimulator, document: Any
) -> None:
    status, payload, _ = _raw_send(sim, document)

    assert status == 400
    assert payload["__type"] == "SerializationException"
    assert sim.messages == []
    assert sim.send_count() == 1


# --- the envelope: authentication, target, content type -----------------------------------------


def test_an_unsigned_request_gets_missing_authentication_token(sim: EumSimulator) -> None:
    response = _refused_unsigned(sim)

    assert response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert sim.messages == []
    assert sim.send_count() == 1


def _refused_unsigned(sim: EumSimulator) -> dict[str, Any]:
    client = _client(sim, signature_version=UNSIGNED)
    with pytest.raises(ClientError) as raised:
        client.send_text_message(
            DestinationPhoneNumber=PLAIN_TO, OriginationIdentity=POOL_ID, MessageBody="hi"
        )
    response: dict[str, Any] = dict(raised.value.response)
    return response


def test_a_signature_that_is_not_sigv4_gets_incomplete_signature(sim: EumSimulator) -> None:
    document = {"DestinationPhoneNumber": PLAIN_TO, "OriginationIdentity": POOL_ID}
    status, payload, headers = _raw_send(sim, document, {"Authorization": "Bearer abc"})

    assert status == 403
    assert payload["__type"] == "IncompleteSignatureException"
    assert headers["x-amzn-ErrorType"] == "IncompleteSignatureException"


def test_another_operation_is_unknown(sim: EumSimulator) -> None:
    with pytest.raises(ClientError) as raised:
        _client(sim).describe_pools()

    assert raised.value.response["Error"]["Code"] == "UnknownOperationException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sim.send_count() == 0


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        pytest.param({"Content-Type": "application/json"}, 400, "UnknownOperationException"),
        pytest.param({"X-Amz-Target": "Other.SendTextMessage"}, 400, "UnknownOperationException"),
    ],
)
def test_a_wrong_envelope_is_refused(
    sim: EumSimulator, headers: dict[str, str], status: int, code: str
) -> None:
    document = {"DestinationPhoneNumber": PLAIN_TO, "OriginationIdentity": POOL_ID}
    answer, payload, _ = _raw_send(sim, {**document, "MessageBody": "hi"}, headers)

    assert answer == status
    assert payload["__type"] == code
    assert sim.messages == []


def test_a_body_over_64_kib_is_refused_unread(sim: EumSimulator) -> None:
    status, payload, _ = _raw_send(sim, b"{" + b" " * (64 * 1024) + b"}")

    assert status == 413
    assert payload["__type"] == "RequestEntityTooLargeException"
    assert sim.send_count() == 1


def test_other_paths_are_not_found(sim: EumSimulator) -> None:
    status, payload, _ = _http(sim, "/v1/messages")
    assert status == 404
    assert payload["__type"] == "UnknownOperationException"

    status, _, _ = _http(sim, "/", method="GET")
    assert status == 404


# --- control and observation over HTTP ----------------------------------------------------------


def test_control_reports_the_counters_and_knobs(sim: EumSimulator) -> None:
    _send(sim)
    _refused(sim, DestinationPhoneNumber="+15005550003")

    status, payload = _control(sim)

    assert status == 200
    assert payload == {
        "send_count": 2,
        "accepted": 1,
        "outage": False,
        "duplicate_events": False,
        "reorder_events": False,
    }


def test_control_sets_the_knobs(sim: EumSimulator) -> None:
    status, payload = _control(sim, {"duplicate_events": True, "reorder_events": True})

    assert status == 200
    assert payload["duplicate_events"] is True
    assert payload["reorder_events"] is True
    assert payload["outage"] is False
    assert sim.config.duplicate_events is True
    assert _control(sim, {"duplicate_events": False})[1]["duplicate_events"] is False


@pytest.mark.parametrize(
    "knobs",
    [{"outage": "yes"}, {"send_count": 3}, {"event_delays": [0, 0]}, [True], "outage"],
)
def test_control_refuses_anything_but_booleans_for_its_knobs(sim: EumSimulator, knobs: Any) -> None:
    status, payload = _control(sim, knobs)

    assert status == 400
    assert payload["__type"] == "ValidationException"
    assert _control(sim)[1]["outage"] is False


def test_configure_refuses_unknown_fields(sim: EumSimulator) -> None:
    with pytest.raises(TypeError, match="unknown"):
        sim.configure(outage_mode=True)


def test_messages_endpoint_lists_the_accepted_messages(sim: EumSimulator) -> None:
    first = _send(sim)["MessageId"]
    _refused(sim, DestinationPhoneNumber="+15005550004")
    second = _send(sim, DestinationPhoneNumber="+12025550143")["MessageId"]

    status, payload, _ = _http(sim, "/_simulator/messages")

    assert status == 200
    assert [m["message_id"] for m in payload["messages"]] == [first, second]
    assert payload["messages"] == sim.messages


def test_outage_refuses_every_send_until_it_is_turned_off(sim: EumSimulator) -> None:
    assert _control(sim, {"outage": True})[1]["outage"] is True

    response = _refused(sim)
    unsigned = _refused_unsigned(sim)

    for refused in (response, unsigned):
        assert refused["Error"]["Code"] == "ServiceUnavailableException"
        assert refused["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert sim.messages == []
    assert sim.send_count() == 2

    assert _control(sim, {"outage": False})[1]["outage"] is False
    answer = _send(sim)
    assert [m["message_id"] for m in sim.messages] == [answer["MessageId"]]
    assert _control(sim)[1]["send_count"] == 3


# --- events -------------------------------------------------------------------------------------


def test_events_reach_the_configuration_set_s_topic(
    publishing_sim: EumSimulator, route: EventRoute
) -> None:
    context = {"message_id": "msg_1", "workspace": "ws_1"}
    before = int(time.time() * 1000)
    message_id = _send(
        publishing_sim, ConfigurationSetName=CONFIG_SET, Context=context, MessageType="PROMOTIONAL"
    )["MessageId"]

    assert publishing_sim.wait_idle()
    events = route.events(2)

    assert [event["eventType"] for event in events] == ["TEXT_PENDING", "TEXT_DELIVERED"]
    pending, delivered = events
    for event in events:
        assert set(event) == EVENT_KEYS | {"context"}
        assert event["eventVersion"] == "1.0"
        assert event["messageId"] == message_id
        assert event["originationPhoneNumber"] == POOL_NUMBER
        assert event["destinationPhoneNumber"] == PLAIN_TO
        assert event["isoCountryCode"] == "US"
        assert event["isInternationalSend"] is False
        assert event["messageEncoding"] == "GSM"
        assert event["messageType"] == "PROMOTIONAL"
        assert event["context"] == context
        assert event["totalMessageParts"] == 1
        assert isinstance(event["totalMessagePrice"], float)
        assert isinstance(event["totalCarrierFee"], float)
        assert isinstance(event["eventTimestamp"], int)
        assert before <= event["messageRequestTimestamp"] <= event["eventTimestamp"]
        assert event["messageStatusDescription"]
    assert (pending["isFinal"], pending["messageStatus"]) == (False, "PENDING")
    assert (delivered["isFinal"], delivered["messageStatus"]) == (True, "DELIVERED")
    assert pending["eventTimestamp"] <= delivered["eventTimestamp"]
    [stored] = publishing_sim.messages
    assert stored["events"] == ["TEXT_PENDING", "TEXT_DELIVERED"]
    assert publishing_sim.publish_failures() == 0


@pytest.mark.parametrize(
    ("to", "event_type", "status"),
    [
        ("+15005550002", "TEXT_UNREACHABLE", "UNREACHABLE"),
        ("+15005550005", "TEXT_BLOCKED", "BLOCKED"),
        ("+15005550006", "TEXT_CARRIER_UNREACHABLE", "CARRIER_UNREACHABLE"),
        ("+15005550007", "TEXT_SPAM", "SPAM"),
        ("+15005550008", "TEXT_TTL_EXPIRED", "TTL_EXPIRED"),
    ],
)
def test_test_numbers_end_with_their_final_event(
    publishing_sim: EumSimulator, route: EventRoute, to: str, event_type: str, status: str
) -> None:
    _send(publishing_sim, DestinationPhoneNumber=to, ConfigurationSetName=CONFIG_SET_ARN)

    assert publishing_sim.wait_idle()
    pending, final = route.events(2)

    assert pending["eventType"] == "TEXT_PENDING"
    assert (final["eventType"], final["messageStatus"], final["isFinal"]) == (
        event_type,
        status,
        True,
    )
    assert "context" not in final
    assert final["destinationPhoneNumber"] == to


def test_a_ucs2_body_is_unicode_in_several_parts(
    publishing_sim: EumSimulator, route: EventRoute
) -> None:
    _send(
        publishing_sim,
        MessageBody="Привет! " * 10,  # 80 UCS-2 characters: two parts of at most 67
        ConfigurationSetName=CONFIG_SET,
        OriginationIdentity=PHONE_NUMBER_ID,
        DestinationPhoneNumber="+447700900123",
    )

    assert publishing_sim.wait_idle()
    events = route.events(2)

    assert [event["messageEncoding"] for event in events] == ["Unicode", "Unicode"]
    assert [event["totalMessageParts"] for event in events] == [2, 2]
    assert events[0]["originationPhoneNumber"] == PHONE_NUMBER
    assert events[0]["isoCountryCode"] == "GB"
    assert events[0]["isInternationalSend"] is True


def test_duplicate_knob_publishes_every_event_twice(
    publishing_sim: EumSimulator, route: EventRoute
) -> None:
    _control(publishing_sim, {"duplicate_events": True})
    _send(publishing_sim, ConfigurationSetName=CONFIG_SET)

    assert publishing_sim.wait_idle()
    events = route.events(4)

    assert [event["eventType"] for event in events] == [
        "TEXT_PENDING",
        "TEXT_PENDING",
        "TEXT_DELIVERED",
        "TEXT_DELIVERED",
    ]
    assert events[0] == events[1]
    assert events[2] == events[3]


def test_reorder_knob_publishes_the_final_event_first(
    publishing_sim: EumSimulator, route: EventRoute
) -> None:
    publishing_sim.configure(reorder_events=True)
    _send(publishing_sim, ConfigurationSetName=CONFIG_SET)

    assert publishing_sim.wait_idle()
    events = route.events(2)

    assert [(e["eventType"], e["isFinal"]) for e in events] == [
        ("TEXT_DELIVERED", True),
        ("TEXT_PENDING", False),
    ]
    assert [entry["event_type"] for entry in publishing_sim.event_log] == [
        "TEXT_DELIVERED",
        "TEXT_PENDING",
    ]


def test_without_a_destination_nothing_is_published(
    publishing_sim: EumSimulator, route: EventRoute
) -> None:
    _send(publishing_sim)  # no configuration set
    _send(publishing_sim, ConfigurationSetName=SILENT_SET)  # a set without a destination

    assert publishing_sim.wait_idle()

    assert route.events(0, timeout=0) == []
    assert [m["events"] for m in publishing_sim.messages] == [[], []]
    log = publishing_sim.event_log
    assert len(log) == 4
    assert all(not entry["published"] and entry["error"] is None for entry in log)
    assert publishing_sim.publish_failures() == 0


def test_a_failed_publish_is_counted_and_the_worker_goes_on(
    aws: LocalStack, route: EventRoute
) -> None:
    missing_topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic-{uuid.uuid4().hex[:8]}"
    config = _config(route.topic_arn, sns_endpoint_url=aws.endpoint_url)
    config.configuration_sets["broken"] = missing_topic
    with EumSimulator(config) as simulator:
        _send(simulator, ConfigurationSetName="broken")
        assert simulator.wait_idle()
        _send(simulator, ConfigurationSetName=CONFIG_SET)
        assert simulator.wait_idle()

        failures = simulator.publish_failures()
        broken, working = simulator.messages
        log = simulator.event_log

    assert failures == 2
    assert broken["events"] == []
    assert working["events"] == ["TEXT_PENDING", "TEXT_DELIVERED"]
    assert [entry["published"] for entry in log] == [False, False, True, True]
    assert all(entry["error"] for entry in log[:2])
    assert [event["eventType"] for event in route.events(2)] == ["TEXT_PENDING", "TEXT_DELIVERED"]


def test_without_an_sns_endpoint_events_are_logged_as_failures(route: EventRoute) -> None:
    with EumSimulator(_config(route.topic_arn)) as simulator:
        _send(simulator, ConfigurationSetName=CONFIG_SET)
        assert simulator.wait_idle()
        failures = simulator.publish_failures()
        log = simulator.event_log

    assert failures == 2
    assert [entry["error"] for entry in log] == ["no sns_endpoint_url is configured"] * 2


# --- lifecycle ----------------------------------------------------------------------------------


def test_stop_leaves_no_threads_running(aws: LocalStack, route: EventRoute) -> None:
    before = set(threading.enumerate())
    simulator = EumSimulator(_config(route.topic_arn, sns_endpoint_url=aws.endpoint_url))
    simulator.start()
    _send(simulator, ConfigurationSetName=CONFIG_SET)
    assert simulator.wait_idle()
    # Events far in the future must not hold stop() up.
    simulator.configure(event_delays=(30.0, 30.0))
    _send(simulator, ConfigurationSetName=CONFIG_SET)
    assert not simulator.wait_idle(timeout=0.1)

    started = time.monotonic()
    simulator.stop()
    simulator.stop()

    assert time.monotonic() - started < 5
    assert [m["events"] for m in simulator.messages] == [["TEXT_PENDING", "TEXT_DELIVERED"], []]

    # A request thread that has just answered may still be on its way out: wait for it, bounded.
    def leftover() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread not in before]

    assert _eventually(lambda: leftover() == []), leftover()


def test_a_simulator_starts_only_once() -> None:
    simulator = EumSimulator(_config())
    with pytest.raises(RuntimeError, match="not been started"):
        _ = simulator.base_url
    with simulator, pytest.raises(RuntimeError, match="only once"):
        simulator.start()


@pytest.mark.parametrize("host", ["192.0.2.10", "::", "0.0.0.0", "example.test"])  # noqa: S104
def test_simulator_refuses_to_bind_beyond_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EumSimulator(_config(), host=host)
