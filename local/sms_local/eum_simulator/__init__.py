"""Local stand-in for the slice of AWS End User Messaging SMS (boto3's ``pinpoint-sms-voice-v2``)
that the gateway uses: SendTextMessage, and the events of a configuration set's SNS destination.

An unmodified boto3 client pointed at it works::

    sim = EumSimulator(EumSimulatorConfig(
        origination_identities={"pool-0123...": "+14155550100"},
        configuration_sets={"gateway-events": "arn:aws:sns:us-east-1:123456789012:eum-events"},
        sns_endpoint_url="http://127.0.0.1:5000",  # moto's server in the local stack
    ))
    sim.start()
    client = boto3.client("pinpoint-sms-voice-v2", endpoint_url=sim.base_url,
                          region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")

It listens on an IPv4 loopback address only (any other host is refused), on a
``ThreadingHTTPServer``; ``start()``, ``stop()`` (idempotent, joins every thread it started) and
the context manager work as for ``TwilioSimulator``.

Modules, each importing only those after it: ``server`` (HTTP handler, EumSimulator; reuses the
Twilio simulator's worker ``_Scheduler``, and ``sms_local.simulator_http`` for the loopback check,
the server, the handler's common part and the lifecycle) → ``events`` (message model, timeline,
event JSON) → ``rules`` (request checks, errors, test numbers) → ``config`` (EumSimulatorConfig).

Wire format (AWS JSON 1.0, as botocore's service model states it)
-----------------------------------------------------------------
``POST /`` with ``Content-Type: application/x-amz-json-1.0``, ``X-Amz-Target:
PinpointSMSVoiceV2.SendTextMessage``, a SigV4 ``Authorization`` header (its shape only is checked:
it starts with ``AWS4-HMAC-SHA256 Credential=``; the simulator knows no keys) and a JSON object
body. Success is 200 ``{"MessageId": "<uuid4>"}``. An error is the AWS JSON error body
``{"__type": "<Code>", "message": "...", <members of that exception's shape>}`` with the header
``x-amzn-ErrorType: <Code>``, so botocore raises ``ClientError`` with
``e.response["Error"]["Code"]`` the code and the members (``Reason``, ``Fields``,
``ResourceType``, ``ResourceId``, ``RequestId``) at the top of ``e.response``. Every answer has an
``x-amzn-RequestId``. Bodies are limited to 64 KiB. Other paths or methods: 404
UnknownOperationException.

Every request with the SendTextMessage target counts in ``send_count()``, whatever its outcome.

Rejections, checked in this order
---------------------------------
======  ====================================  =================================================
status  __type (Reason)                       when
======  ====================================  =================================================
503     ServiceUnavailableException           the ``outage`` knob is on (any target)
403     MissingAuthenticationTokenException   no Authorization header (AWS's documented status)
403     IncompleteSignatureException          Authorization is not ``AWS4-HMAC-SHA256
                                              Credential=...``
400     UnknownOperationException             X-Amz-Target is not
                                              ``PinpointSMSVoiceV2.SendTextMessage``
413     RequestEntityTooLargeException        body over 64 KiB
400     UnknownOperationException             Content-Type is not application/x-amz-json-1.0
400     SerializationException                body not a JSON object, or a member of the wrong
                                              JSON type (JSON null is an absent member)
400     ValidationException                   the service model's constraints, all reported at
        (FIELD_VALIDATION_FAILED)             once in Fields (Name: the member): a member not in
                                              the request shape; DestinationPhoneNumber missing,
                                              or not 1-20 of ``\\+?[1-9][0-9]{1,18}``;
                                              OriginationIdentity 1-256 of
                                              ``[A-Za-z0-9_:/\\+-]+``; MessageBody 1-1600, not
                                              all whitespace; MessageType TRANSACTIONAL or
                                              PROMOTIONAL; ConfigurationSetName and
                                              ProtectConfigurationId 1-256 of
                                              ``[A-Za-z0-9_:/-]+``; Keyword 1-30 ``[ \\S]+``;
                                              MaxPrice ``[0-9]{0,2}\\.[0-9]{1,5}``; TimeToLive
                                              5-259200; Context at most 5 entries, keys 1-100
                                              ``\\S+``, values 1-800 not starting or ending with
                                              whitespace; DestinationCountryParameters at most
                                              10, keys IN_TEMPLATE_ID/IN_ENTITY_ID, values 1-64
                                              ``\\S+`` (patterns must match the whole value)
400     ValidationException                   OriginationIdentity or MessageBody missing (the
        (MISSING_PARAMETER)                   model allows it; the gateway always sends both)
400     ValidationException                   DestinationPhoneNumber not E.164 (``+``, at most
        (INVALID_PARAMETER)                   15 digits), or ``+15005550001``
400     ResourceNotFoundException             OriginationIdentity not in
                                              ``origination_identities``: ResourceType ``pool``
                                              (``pool-...`` or an ARN ``...:pool/...``),
                                              ``phone-number`` (a number, ``phone-...`` or
                                              ``...:phone-number/...``) or ``sender-id``
                                              (anything else), ResourceId the identity as sent
400     ResourceNotFoundException             ConfigurationSetName not in
                                              ``configuration_sets``: ResourceType
                                              ``configuration-set``
(*)     the test destination numbers below
======  ====================================  =================================================

Test destination numbers -- a contract the end-to-end tests rely on
-------------------------------------------------------------------
(Twilio's magic numbers keep their meaning where End User Messaging has an equivalent.)

==============  ==================================================================================
destination     result
==============  ==================================================================================
+15005550001    400 ValidationException INVALID_PARAMETER, Fields DestinationPhoneNumber (invalid)
+15005550003    400 ValidationException DESTINATION_COUNTRY_BLOCKED (a route the account lacks)
+15005550004    400 ConflictException DESTINATION_PHONE_NUMBER_OPTED_OUT, ResourceType
                ``opted-out-number``, ResourceId the number
...5550429      400 ThrottlingException (retryable in botocore)
...5550500      500 InternalServerException with a RequestId; nothing is created
...5550503      503 ServiceUnavailableException; nothing is created
...5550777      accepted (stored, events scheduled, TEXT_DELIVERED) but the 200 is held back
                for 30 s, or until stop(), so a client hits its read timeout
+15005550002    accepted; final event TEXT_UNREACHABLE
+15005550005    accepted; final event TEXT_BLOCKED
+15005550006    accepted; final event TEXT_CARRIER_UNREACHABLE
+15005550007    accepted; final event TEXT_SPAM
+15005550008    accepted; final event TEXT_TTL_EXPIRED
anything else   accepted; final event TEXT_DELIVERED
==============  ==================================================================================

Keyword, MaxPrice, DestinationCountryParameters, ProtectConfigurationId and
MessageFeedbackEnabled are checked against the model and otherwise ignored. Nothing is created
by any rejection. ``DryRun: true`` runs every check and answers a MessageId,
but stores nothing and publishes no event.

Events
------
An accepted message with a ConfigurationSetName whose topic is not None gets its events
published, on one worker thread, with a boto3 SNS client (credentials ``testing``) on
``sns_endpoint_url`` in ``region``: ``sns.publish(TopicArn=topic, Message=json.dumps(event))``
(moto's SNS then delivers to the SQS queues subscribed to the topic). Timeline: ``TEXT_PENDING``
(isFinal false, messageStatus ``PENDING``) ``event_delays[0]`` after acceptance, then the final
event ``event_delays[1]`` later (isFinal true, messageStatus its type without ``TEXT_``, e.g.
``DELIVERED``). Without a ConfigurationSetName, or with a set whose topic is None, nothing is
published; with no ``sns_endpoint_url`` the events are logged as failures. A publish that fails
is logged and counted (``publish_failures()``), never raised, and not retried beyond botocore's
own second attempt.

The event JSON, as AWS documents an SMS event (keys in this order)::

    {"eventType": "TEXT_DELIVERED", "eventVersion": "1.0", "eventTimestamp": 1686975103470,
     "isFinal": true, "originationPhoneNumber": "+14155550100",
     "destinationPhoneNumber": "+16465551234", "isoCountryCode": "US",
     "isInternationalSend": false, "mcc": "310", "mnc": "800", "carrierName": "...",
     "messageId": "<the MessageId>", "messageRequestTimestamp": 1686975103170,
     "messageEncoding": "GSM", "messageType": "TRANSACTIONAL", "messageStatus": "DELIVERED",
     "messageStatusDescription": "...", "context": {"k": "v"}, "totalMessageParts": 1,
     "totalMessagePrice": 0.00581, "totalCarrierFee": 0.00302}

Timestamps are ms since the epoch. isoCountryCode is the destination's region per phonenumbers
(by its country calling code when the number itself is not valid); isInternationalSend is true
when the origination number's country differs. mcc/mnc (documented as optional) are given for
US destinations only. carrierName is phonenumbers' carrier name, or ``Simulated Carrier``.
messageEncoding is ``GSM`` or ``Unicode`` (AWS's documented values) and totalMessageParts the
segment count, both per ``sms_gateway.domain.segments.count_segments``. messageType is as sent
(TRANSACTIONAL when omitted); ``context`` is the Context map as sent, omitted when none was.
Prices are simulated: 0.00581 a part, carrier fee 0.00302 a part to US numbers (0.0 elsewhere).

Knobs
-----
=====================  =======  =============================================================
knob                   default  effect
=====================  =======  =============================================================
``outage``             false    every API request: 503 ServiceUnavailableException (counted
                                in send_count, nothing checked or stored)
``duplicate_events``   false    every event is published twice in a row
``reorder_events``     false    the final event is published first, then TEXT_PENDING
=====================  =======  =============================================================

The event knobs and ``event_delays`` are read when a message is accepted. They, and the rest of
the config, may be changed at runtime with ``configure(...)`` (unknown fields: TypeError).

Observation (Python, and HTTP for end-to-end tests; not AWS APIs, no auth)
--------------------------------------------------------------------------
``send_count()``; ``messages`` (accepted ones, in order: message_id, destination,
origination_identity, origination_number, configuration_set, body, message_type, time_to_live,
context, message_request_timestamp, events: the eventType of every event published for it);
``event_log`` (every event emitted, each copy: message_id, event_type, topic_arn, published,
error, event, timestamp); ``publish_failures()``; ``wait_idle(timeout)`` (every scheduled event
published or failed).

``GET /_simulator/control`` answers ``{"send_count", "accepted", "outage", "duplicate_events",
"reorder_events"}``; ``POST /_simulator/control`` with a JSON object of some of the three knobs,
booleans, sets them and answers the same; anything else is 400 ValidationException.
``GET /_simulator/messages`` answers ``{"messages": [...]}`` as ``messages`` above.
"""

from sms_local.eum_simulator.config import EumSimulatorConfig
from sms_local.eum_simulator.server import EumSimulator

__all__ = ["EumSimulator", "EumSimulatorConfig"]
