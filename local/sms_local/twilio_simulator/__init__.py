"""Local stand-in for the slice of Twilio's Messaging REST API that the gateway uses.

The gateway's real HTTP adapter is pointed at it in tests, so it answers the way Twilio does: the
same paths, HTTP Basic auth (user = AccountSid, password = auth token), form-encoded requests,
Twilio's Message JSON and error JSON, and status callbacks signed with X-Twilio-Signature exactly
as Twilio signs them. It listens on loopback only.

    python -m sms_local.twilio_simulator --account AC...:token --service MG...:+14155550100 \
        --inbound-url http://127.0.0.1:3000/twilio/inbound

``--service-account MG...:AC...`` names the account that owns a service (the one whose token signs
its incoming messages); with exactly one ``--account``, every ``--service`` not named that way
belongs to it.

Modules, each importing only those after it: ``cli`` (command line) → ``server`` (HTTP handler,
TwilioSimulator; its loopback server and lifecycle are ``sms_local.simulator_http``'s, shared with
the EUM simulator) → ``inbound`` (incoming-message request checks and form), ``callbacks`` (signed
webhook POSTs, status-callback form), ``scheduler`` (timed jobs) → ``messages`` (message model,
timeline) → ``rules`` (create-request checks, test numbers, sender choice) → ``config``
(SimulatorConfig).

Endpoints
---------
``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (To, Body, MessagingServiceSid or From,
optional StatusCallback) answers 201 with the Message JSON. ``GET .../Messages/{Sid}.json``
answers 200 with the message as it is now, or 404/20404 when the sid is unknown to that account.
``GET .../Messages.json`` lists the account's messages, newest first, on one page of Twilio's list
JSON (``messages`` and the paging keys), filtered by To and From when given, so a test can count
what was sent to a number of its own while other tests send too. Any other path is 404/20404.
Every POST to the create path counts in ``create_count()``, whatever its outcome (401s
included, and those answered during an outage).

Rejections, checked in this order (error JSON: code, message, more_info, status)
---------------------------------------------------------------------------------
======  =====  ==========================================================================
status  code   when
======  =====  ==========================================================================
503     20503  the ``outage`` knob is on (before authentication; nothing is created)
401     20003  Basic auth missing or wrong, or the path AccountSid is not the auth user
400     21604  To missing or empty
400     21602  Body missing or empty
400     21603  neither From nor MessagingServiceSid
400     21701  MessagingServiceSid not configured
400     21211  To is not E.164 (``+`` then 2-15 digits, no leading zero)
400     21617  Body longer than 1600 characters
400     21609  StatusCallback is not an absolute http(s) URL
400     (*)    Twilio's magic test numbers for To, see below (``+15005550004`` only without a
               Messaging Service, or with ``reject_unsubscribed_synchronously``)
429     20429  To ends in ``5550429`` (retry knob)
503     20503  To ends in ``5550503`` (retry knob)
400     21704  no sender in the service pool can reach To (simulator's choice of code)
======  =====  ==========================================================================

Magic numbers and suffixes for To -- a contract the end-to-end tests rely on
---------------------------------------------------------------------------
=================  ========================================================================
To                 result
=================  ========================================================================
+15005550001       400 21211 invalid 'To' number (Twilio test number)
+15005550002       400 21612 cannot route to this number (Twilio test number)
+15005550003       400 21408 no permission for the region (Twilio test number)
+15005550004       recipient unsubscribed (Twilio test number). Through a Messaging Service it
                   is accepted (201, ``accepted``) and then failed by callback with ErrorCode
                   21610, as Twilio reports a STOP for service sends; with From only, or with
                   the ``reject_unsubscribed_synchronously`` knob on, 400 21610 at once
+15005550009       400 21614 not a mobile number (Twilio test number)
...5550429         429 20429 Too Many Requests; nothing is created
...5550503         503 20503 Service unavailable; nothing is created
...5550777         accepted (stored, callbacks scheduled, outcome "delivered") but the 201 is
                   held back for 30 s, or until stop(), so a client hits its read timeout
...5550030         callbacks queued, sent, undelivered with ErrorCode 30003
...5550031         callbacks queued, sent, undelivered with ErrorCode 30005
...5550040         callbacks queued, sent; no delivery receipt, the message rests at "sent"
...5550050         callbacks queued, failed with ErrorCode 30007 (no "sent")
anything else      callbacks queued, sent, delivered
=================  ========================================================================

Timeline: ``queued`` fires right after acceptance, ``sent`` after ``callback_delays[0]``, the
final status ``callback_delays[1]`` later (``failed`` for ``5550050`` fires when ``sent``
would have; the unsubscribed number's ``failed`` is its only callback, fired right after
acceptance: Twilio refuses it before queueing it to a sender). The message's status advances as
these fire, whether or not a StatusCallback was given, and never moves backwards, so with
``reorder_callbacks`` the receiver sees the final status first while the fetched message still
ends at it. A message created with a MessagingServiceSid starts as ``accepted``, one created with
From only as ``queued``.

Callbacks go out one at a time from a single worker thread, form-encoded, with Twilio's
parameters (AccountSid, ApiVersion, From, MessageSid, MessageStatus, MessagingServiceSid when a
service was used, SmsSid, SmsStatus, To, and ErrorCode on failed/undelivered), User-Agent
``TwilioProxy/1.1`` and X-Twilio-Signature computed over the StatusCallback URL exactly as given.
An attempt that gets no HTTP answer or a 5xx is retried at most twice (0.1 s, then 0.2 s later);
every attempt is appended to ``callback_log``.

Knobs
-----
``GET /_simulator/control`` answers the counters (create_count, accepted) and the knobs;
``POST /_simulator/control`` with a JSON object such as ``{"duplicate_callbacks": true}`` sets
them, so end-to-end tests that reach the simulator only over HTTP can turn them.

``duplicate_callbacks`` sends every callback twice in a row; ``reorder_callbacks`` sends the
final status first, then ``sent``, then ``queued``. Both are read when a message is accepted.
``reject_unsubscribed_synchronously`` answers a Messaging Service send to ``+15005550004`` with
400 21610 instead of accepting it (the synchronous answer a send without a service gets), for
checks of a client's synchronous 21610 handling.
``outage`` makes every create (``POST .../Messages.json``) answer 503 20503 "Service unavailable",
counted in ``create_count()`` but refused before authentication, with nothing stored and no
callback scheduled, until it is set back to false (fetches, lists and the other endpoints keep
working), for checks of a client's fail-over to another provider.

=====================================  =======  ==============================================
knob                                   default  effect
=====================================  =======  ==============================================
``duplicate_callbacks``                false    every status callback is sent twice in a row
``reorder_callbacks``                  false    the final status is sent first
``reject_unsubscribed_synchronously``  false    ``+15005550004`` through a service: 400 21610
``outage``                             false    every create: 503 20503, nothing created
=====================================  =======  ==============================================

They, and the rest of the config, may be changed at runtime with ``configure(...)`` or by
assigning to ``sim.config``'s attributes; the simulator only reads the config under its lock.

Incoming messages (a contract the end-to-end tests rely on): ``POST /_simulator/inbound`` (not a
Twilio API; no auth, like the control endpoint) makes a phone answer, as Twilio's incoming-message
webhook would. Request, a JSON object with only these keys::

    {"from": "+16465551234", "to": "+14155550100", "body": "STOP",
     "test": false, "duplicate": false}

``from`` is E.164 (``+`` then 2-15 ASCII digits, no leading zero); ``to`` is a number in a
configured service's sender pool (the first service whose pool lists it owns it; an alphanumeric
sender cannot be answered); ``body`` is a string of 1 to 1600 characters; ``test`` and
``duplicate`` are optional booleans. The owning service needs an account in
``config.service_accounts`` (MessagingServiceSid -> AccountSid) whose token is in
``config.accounts``, and ``config.inbound_url`` (the Messaging Services' Inbound Request URL) must
be an absolute http(s) URL. Anything else is answered 400 ``{"code": 0, "message": ...,
"more_info": ..., "status": 400}`` and nothing is posted.

The simulator then POSTs, synchronously and before it answers, Twilio's form for an incoming SMS to
``inbound_url`` (with ``mode=test`` added as a query parameter, after ``?`` or ``&``, when ``test``
is true): MessageSid, SmsMessageSid and SmsSid (one new ``SM`` + 32 hex sid), AccountSid,
MessagingServiceSid, From, To, Body, NumSegments (as for a sent message: GSM-7 160 then 153 a part,
an extension character such as ``€`` counting two; UCS-2 70 then 67), NumMedia ``0``, SmsStatus
``received``, ApiVersion ``2010-04-01``, FromCountry and ToCountry (the number's region per
phonenumbers, ``""`` when unknown), and FromState, FromCity, FromZip, ToState, ToCity, ToZip all
``""``. It is signed and sent exactly like a status callback (X-Twilio-Signature over that exact
URL with the account's token, form-encoded, User-Agent ``TwilioProxy/1.1``), once, or twice in a
row with the same MessageSid when ``duplicate`` is true, and never retried. Every POST is appended
to ``inbound_log``. The answer is 200::

    {"message_sid": "SM...", "attempts": [{"http_status": 200, "content_type": "text/xml",
     "body": "<Response/>", "error": null}]}

one attempt per POST: the receiver's status and Content-Type header (``null`` without one), the
first 2000 characters of its answer, and ``error`` (why no HTTP answer came, then
``http_status`` and ``content_type`` are ``null`` and ``body`` is ``""``).

Sender selection for a Messaging Service
----------------------------------------
From, when given, is used as is. Otherwise, in order: sticky sender (the sender last used for
this service and To, if it is still in the pool and ``sticky_sender`` is on); area-code geomatch
for a +1 destination (the first +1 sender whose area code equals the recipient's, when
``area_code_geomatch`` is on); else the first sender in pool order that can reach To. A +1
destination can only be reached from an E.164 sender, never from an alphanumeric ID.
"""

from sms_local.twilio_simulator.cli import _build_parser, _config_from_args, main
from sms_local.twilio_simulator.config import SimulatorConfig
from sms_local.twilio_simulator.server import TwilioSimulator

__all__ = ["SimulatorConfig", "TwilioSimulator", "_build_parser", "_config_from_args", "main"]
