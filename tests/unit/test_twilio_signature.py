from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from sms_gateway.providers.twilio.signature import compute_signature, is_valid_signature

TOKEN = "12345678901234567890123456789012"
URL = "https://gateway.example.com/webhooks/twilio/status"
PARAMS = {
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "MessageStatus": "delivered",
    "To": "+15558675310",
    "From": "+15017122661",
}


def reference_signature(url: str, params: object, token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def reference_valid(url: str, params: object, signature: str, token: str = TOKEN) -> bool:
    return bool(RequestValidator(token).validate(url, params, signature))


# --- compute_signature -----------------------------------------------------------------------


def test_known_vector() -> None:
    # From `printf https://x.test/a1b2 | openssl dgst -sha1 -hmac k -binary | base64`.
    assert compute_signature("https://x.test/", {"b": "2", "a": "1"}, "k") == (
        "sX0v242MoBjDAukKKrbg7ez9RQo="
    )


@pytest.mark.parametrize(
    "params",
    [
        PARAMS,
        {},
        {"Body": "Grüße 😀 ж 日本語", "From": "+4915112345678"},
        {"a": "1", "B": "2", "_": "3", "a1": "", "": "empty name"},  # case-sensitive order
        {"Body": "a+b=c&d e%20f\n\r\t"},
    ],
)
@pytest.mark.parametrize(
    "url",
    [
        URL,
        URL + "?StatusCallbackEvent=sent&x=%20y",
        "https://gateway.example.com:443/webhooks/twilio/status",
        "http://127.0.0.1:3000/path",
    ],
)
def test_compute_matches_reference(url: str, params: dict[str, str]) -> None:
    assert compute_signature(url, params, TOKEN) == reference_signature(url, params)
    assert compute_signature(url, list(params.items()), TOKEN) == reference_signature(url, params)


def test_parameter_order_does_not_matter() -> None:
    reordered = dict(reversed(list(PARAMS.items())))
    assert list(reordered) != list(PARAMS)
    assert compute_signature(URL, reordered, TOKEN) == compute_signature(URL, PARAMS, TOKEN)
    assert compute_signature(URL, sorted(PARAMS.items(), reverse=True), TOKEN) == (
        compute_signature(URL, PARAMS, TOKEN)
    )


def test_repeated_names_match_reference_multidict() -> None:
    pairs = [("To", "+1555"), ("MediaUrl0", "https://b"), ("Tag", "z"), ("Tag", "a"), ("Tag", "m")]
    expected = reference_signature(URL, MultiDict(pairs))
    assert compute_signature(URL, pairs, TOKEN) == expected
    # Values of one name are sorted, so their order in the body does not matter either.
    assert compute_signature(URL, list(reversed(pairs)), TOKEN) == expected
    assert expected != reference_signature(URL, {"To": "+1555", "MediaUrl0": "https://b"})


def test_repeated_identical_values_are_signed_once() -> None:
    # The reference signs sorted(set(values)), so a duplicate pair changes nothing.
    pairs = [("Tag", "a"), ("Tag", "a"), ("To", "+1")]
    assert compute_signature(URL, pairs, TOKEN) == reference_signature(URL, MultiDict(pairs))
    assert compute_signature(URL, pairs, TOKEN) == compute_signature(
        URL, {"Tag": "a", "To": "+1"}, TOKEN
    )


# --- is_valid_signature: agreement with RequestValidator.validate -----------------------------


def check(url: str, params: dict[str, str], signature: str, *, expected: bool) -> None:
    assert reference_valid(url, params, signature) is expected
    assert is_valid_signature(url, params, signature, TOKEN) is expected
    assert is_valid_signature(url, list(params.items()), signature, TOKEN) is expected


def test_valid_signature() -> None:
    check(URL, PARAMS, reference_signature(URL, PARAMS), expected=True)


def test_empty_params() -> None:
    check(URL, {}, reference_signature(URL, {}), expected=True)
    check(URL, {}, reference_signature(URL, PARAMS), expected=False)


def test_unicode_values() -> None:
    params = {**PARAMS, "Body": "Grüße 😀 ж"}
    check(URL, params, reference_signature(URL, params), expected=True)
    check(URL, {**params, "Body": "Gruße 😀 ж"}, reference_signature(URL, params), expected=False)


def test_tampered_param_value() -> None:
    signature = reference_signature(URL, PARAMS)
    check(URL, {**PARAMS, "MessageStatus": "failed"}, signature, expected=False)


def test_extra_or_missing_param() -> None:
    signature = reference_signature(URL, PARAMS)
    check(URL, {**PARAMS, "ErrorCode": "30003"}, signature, expected=False)
    check(URL, {k: v for k, v in PARAMS.items() if k != "To"}, signature, expected=False)


def test_name_value_boundary_is_not_ambiguous_in_practice() -> None:
    # Concatenation without separators means {"ab": "c"} and {"a": "bc"} sign the same string;
    # this is Twilio's scheme, so both implementations accept it.
    check(URL, {"a": "bc"}, reference_signature(URL, {"ab": "c"}), expected=True)


def test_tampered_url() -> None:
    signature = reference_signature(URL, PARAMS)
    check(URL.replace("status", "inbound"), PARAMS, signature, expected=False)
    check(URL.replace("https", "http"), PARAMS, signature, expected=False)
    check(URL.replace("gateway", "evil"), PARAMS, signature, expected=False)


def test_reordered_params() -> None:
    signature = reference_signature(URL, PARAMS)
    check(URL, dict(sorted(PARAMS.items(), reverse=True)), signature, expected=True)


def test_query_string_is_signed() -> None:
    url = URL + "?tenant=acme&attempt=1"
    signature = reference_signature(url, PARAMS)
    check(url, PARAMS, signature, expected=True)
    check(URL + "?tenant=acme&attempt=2", PARAMS, signature, expected=False)
    check(URL + "?attempt=1&tenant=acme", PARAMS, signature, expected=False)
    check(URL, PARAMS, signature, expected=False)


@pytest.mark.parametrize(
    ("request_url", "signed_url", "expected"),
    [
        # Default port present in the request, absent in what Twilio signed, and vice versa.
        ("https://host.test:443/path", "https://host.test/path", True),
        ("https://host.test/path", "https://host.test:443/path", True),
        ("http://host.test/path", "http://host.test:80/path", True),
        ("http://host.test:80/path", "http://host.test/path", True),
        # The default port added is the scheme's, never the other scheme's.
        ("https://host.test/path", "https://host.test:80/path", False),
        ("http://host.test/path", "http://host.test:443/path", False),
        # A non-default port: exact URL or the URL with the port stripped (any port!) both pass.
        ("http://127.0.0.1:3000/path", "http://127.0.0.1:3000/path", True),
        ("http://127.0.0.1:3000/path", "http://127.0.0.1/path", True),
        ("http://127.0.0.1:3000/path", "http://127.0.0.1:80/path", False),
        ("http://127.0.0.1:3000/path", "http://127.0.0.1:4000/path", False),
        ("http://127.0.0.1:4000/path", "http://127.0.0.1/path", True),
        ("https://host.test:8443/path?q=1", "https://host.test/path?q=1", True),
        ("https://host.test:8443/path?q=1", "https://host.test:443/path?q=1", False),
        # Both candidates go through urlparse().geturl(), which drops an empty "?" and lowercases
        # the scheme, so a signature over the literal request URL does not pass in these cases.
        ("https://host.test/path?", "https://host.test/path?", False),
        ("https://host.test/path?", "https://host.test/path", True),
        ("HTTPS://host.test/path", "HTTPS://host.test/path", False),
        ("HTTPS://host.test/path", "https://host.test:443/path", True),
        ("https://Host.Test/path", "https://host.test/path", False),
    ],
)
def test_ports_and_url_normalisation(request_url: str, signed_url: str, expected: bool) -> None:
    check(request_url, PARAMS, reference_signature(signed_url, PARAMS), expected=expected)


def test_repeated_names_validate_like_reference() -> None:
    pairs = [("MediaUrl", "https://b"), ("To", "+1"), ("MediaUrl", "https://a")]
    signature = reference_signature(URL, MultiDict(pairs))
    assert RequestValidator(TOKEN).validate(URL, MultiDict(pairs), signature)
    assert is_valid_signature(URL, pairs, signature, TOKEN)
    # A dict keeps one value per name, which is a different signed string.
    assert not is_valid_signature(URL, dict(pairs), signature, TOKEN)
    assert not is_valid_signature(URL, [*pairs, ("MediaUrl", "https://c")], signature, TOKEN)


def test_one_shot_iterator_params() -> None:
    # The two port candidates both need the params; a generator must not be exhausted by the first.
    signature = reference_signature("https://host.test:443/p", PARAMS)

    def pairs() -> Iterator[tuple[str, str]]:
        yield from PARAMS.items()

    assert is_valid_signature("https://host.test/p", pairs(), signature, TOKEN)


def test_wrong_token() -> None:
    signature = reference_signature(URL, PARAMS, token="another-token")
    check(URL, PARAMS, signature, expected=False)


# --- Bad input never raises --------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        " ",
        "garbage",
        "not base64!!",
        "ü",
        "😀" * 28,
        "\ud800",
        "\x00" * 28,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ],
)
def test_garbage_signature_is_rejected(signature: str | None) -> None:
    assert is_valid_signature(URL, PARAMS, signature, TOKEN) is False


def test_signature_with_whitespace_is_rejected_like_reference() -> None:
    signature = reference_signature(URL, PARAMS)
    for padded in (f" {signature}", f"{signature}\n", signature.lower()):
        check(URL, PARAMS, padded, expected=False)


def test_non_string_signature_is_rejected() -> None:
    signature = reference_signature(URL, PARAMS).encode()
    assert is_valid_signature(URL, PARAMS, signature, TOKEN) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url", ["http://host.test:notaport/p", "http://host.test:99999/p", "http://[::1/p"]
)
def test_unparsable_url_is_rejected_where_reference_raises(url: str) -> None:
    signature = reference_signature(url, PARAMS)
    with pytest.raises(ValueError):
        reference_valid(url, PARAMS, signature)
    assert is_valid_signature(url, PARAMS, signature, TOKEN) is False


def test_unencodable_params_are_rejected() -> None:
    assert is_valid_signature(URL, {"Body": "\ud83d"}, "AAAA", TOKEN) is False


# --- Deliberate divergences from the reference's port stripping --------------------------------


def test_ipv6_host_port_is_stripped_correctly() -> None:
    url = "http://[::1]:3000/path"
    check(url, PARAMS, reference_signature(url, PARAMS), expected=True)
    # The reference's netloc.split(":")[0] leaves "http://[/path" as its port-less candidate.
    assert is_valid_signature(url, PARAMS, reference_signature("http://[::1]/path", PARAMS), TOKEN)
    assert not is_valid_signature(url, PARAMS, reference_signature("http://[/path", PARAMS), TOKEN)


def test_userinfo_port_is_stripped_correctly() -> None:
    url = "https://user:pass@host.test:8443/path"
    check(url, PARAMS, reference_signature(url, PARAMS), expected=True)
    stripped = "https://user:pass@host.test/path"
    assert is_valid_signature(url, PARAMS, reference_signature(stripped, PARAMS), TOKEN)
    # The reference would accept a signature made for the unrelated host "user".
    assert reference_valid(url, PARAMS, reference_signature("https://user/path", PARAMS))
    assert not is_valid_signature(
        url, PARAMS, reference_signature("https://user/path", PARAMS), TOKEN
    )


# --- Properties ----------------------------------------------------------------------------------

urls = st.sampled_from(
    [
        URL,
        URL + "?a=1&b=%2F",
        "https://host.test:443/p",
        "http://host.test/p",
        "http://127.0.0.1:3000/path?x=y",
        "https://host.test:8443/",
    ]
)
param_dicts = st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=8)
tokens = st.text(min_size=1, max_size=40)


@given(urls, param_dicts, tokens)
def test_compute_agrees_with_reference(url: str, params: dict[str, str], token: str) -> None:
    assert compute_signature(url, params, token) == reference_signature(url, params, token)


@given(urls, urls, param_dicts, param_dicts, tokens, st.sampled_from(["same", "other", "junk"]))
def test_validate_agrees_with_reference(
    request_url: str,
    signed_url: str,
    params: dict[str, str],
    other_params: dict[str, str],
    token: str,
    kind: str,
) -> None:
    # "same" signs the request's own params, so the URL/port variants decide the outcome.
    signed_params = params if kind == "same" else other_params
    signature = reference_signature(signed_url, signed_params, token)
    if kind == "junk":
        signature = signature[:-2] + "A="
    expected = reference_valid(request_url, params, signature, token)
    assert is_valid_signature(request_url, params, signature, token) is expected
    assert is_valid_signature(request_url, list(params.items()), signature, token) is expected


@given(urls, param_dicts, tokens, st.text(max_size=40))
def test_arbitrary_signature_text_agrees_with_reference(
    url: str, params: dict[str, str], token: str, signature: str
) -> None:
    expected = reference_valid(url, params, signature, token)
    assert is_valid_signature(url, params, signature, token) is expected


@given(
    urls,
    st.lists(st.tuples(st.sampled_from(["a", "B", "MediaUrl", ""]), st.text(max_size=6))),
    tokens,
)
def test_repeated_names_agree_with_reference(
    url: str, pairs: list[tuple[str, str]], token: str
) -> None:
    expected = reference_signature(url, MultiDict(pairs), token)
    assert compute_signature(url, pairs, token) == expected
    assert is_valid_signature(url, pairs, expected, token)
    assert reference_valid(url, MultiDict(pairs), expected, token)
