"""X-Twilio-Signature (HMAC-SHA1) computation and validation for form-encoded webhooks.

Matches ``twilio.request_validator.RequestValidator`` (twilio 9.x) without importing the SDK.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import ParseResult, urlparse

__all__ = ["compute_signature", "is_valid_signature"]


def _signed_payload(url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    values: dict[str, set[str]] = {}
    pairs = params.items() if isinstance(params, Mapping) else params
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    # The reference sorts names and, per name, the *distinct* values: a value repeated under the
    # same name is signed once, so duplicates must be collapsed here too.
    return url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))


def compute_signature(
    url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], auth_token: str
) -> str:
    """Return the base64 HMAC-SHA1 Twilio sends in X-Twilio-Signature for this exact ``url``.

    ``params`` are the decoded POST form fields; pass (name, value) pairs when a name repeats.
    """
    mac = hmac.new(
        auth_token.encode("utf-8"), _signed_payload(url, params).encode("utf-8"), hashlib.sha1
    )
    return base64.b64encode(mac.digest()).decode("ascii")


def _without_port(parsed: ParseResult) -> str:
    if parsed.port is None:
        return parsed.geturl()
    # With a valid port the last colon of the netloc always starts it (IPv6 hosts are bracketed,
    # userinfo precedes '@'); the reference's split(":")[0] would mangle both of those cases.
    return parsed._replace(netloc=parsed.netloc.rpartition(":")[0]).geturl()


def _with_port(parsed: ParseResult) -> str:
    if parsed.port is not None:
        return parsed.geturl()
    port = 443 if parsed.scheme == "https" else 80
    return parsed._replace(netloc=f"{parsed.netloc}:{port}").geturl()


def is_valid_signature(
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    signature: str | None,
    auth_token: str,
) -> bool:
    """True if ``signature`` is Twilio's signature of this request; never raises on bad input.

    Twilio does not sign the port consistently, so like the SDK this accepts a signature over the
    URL with the port removed or with the scheme's default port added. Both candidates go through
    ``urlparse(...).geturl()``, which is also what the SDK compares against.
    """
    if not isinstance(signature, str) or not signature or not signature.isascii():
        return False
    expected = signature.encode("ascii")
    # Materialise once: a one-shot iterator would be empty for the second candidate.
    pairs = list(params.items() if isinstance(params, Mapping) else params)
    try:
        parsed = urlparse(url)
        candidates = (_without_port(parsed), _with_port(parsed))
        computed = [compute_signature(c, pairs, auth_token).encode("ascii") for c in candidates]
    except ValueError:
        # An unparsable port or text that cannot be UTF-8 encoded (lone surrogates) cannot match
        # anything Twilio signed.
        return False
    # Compare both without short-circuiting so timing does not reveal which candidate matched.
    matches = [hmac.compare_digest(c, expected) for c in computed]
    return any(matches)
