"""Which callback URLs may be called (the SSRF rules at creation time), and which addresses are
refused at delivery time."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_gateway.domain.callback_urls import (
    MAX_CALLBACK_URL_CHARS,
    CallbackTarget,
    address_refused,
    callback_url_problem,
    check_callback_url,
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def problem(url: str, *, allow_loopback_http: bool = False) -> str | None:
    return callback_url_problem(url, allow_loopback_http=allow_loopback_http)


def literal_url(address: Address) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"https://{host}/hook"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "https://example.com/",
        "HTTPS://Example.COM/Hooks",
        "https://hooks.example.com:8443/sms/status",
        "https://example.com/status?customer=42&kind=sms",
        "https://example.com:1/",
        "https://example.com:65535/",
        "https://example.com./",
        "https://bücher.example/é?q=ü",
        "https://xn--bcher-kva.example/",
        "https://my_service.example.com/",
        "https://8.8.8.8/hook",
        "https://[2606:4700::1111]:8443/hook",
    ],
)
def test_accepts_https_urls(url: str) -> None:
    assert problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "example.com/hook",
        "//example.com/hook",
        "",
        "https://",
        "https:///hook",
        "https://:443/hook",
    ],
)
def test_refuses_other_schemes_and_urls_without_a_host(url: str) -> None:
    assert problem(url) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@example.com/",
        "https://user@example.com/",
        "https://@example.com/",
        "https://example.com\\@evil.example/",
        "https://example.com/hook#fragment",
        "https://example.com/hook#",
        "https://example.com:0/",
        "https://example.com:65536/",
        "https://example.com:http/",
        "https://example.com:/",
        "https://exa mple.com/",
        "https://example.com/a b",
        "https://example.com/\thook",
        "https://example.com/hook\n",
        " https://example.com/",
        "https://example.com/\x00",
        "https://example.com/\u200b",
        "https://example.com\\evil.example/",
        "https://exa$mple.com/",
        "https://a..example.com/",
        "https://" + "a" * 64 + ".example.com/",
        "https://[v1.fe]/",
        "https://[127.0.0.1]/",
    ],
)
def test_refuses_urls_that_hide_where_they_point(url: str) -> None:
    assert problem(url) is not None


def test_refuses_urls_longer_than_the_limit() -> None:
    base = "https://example.com/"
    longest = base + "a" * (MAX_CALLBACK_URL_CHARS - len(base))
    assert problem(longest) is None
    assert problem(longest + "a") is not None


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.255.0.9",
        "0.0.0.0",  # noqa: S104 (a host refused, not an interface bound)
        "0.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "169.254.0.1",
        "100.64.0.1",  # shared address space (carrier-grade NAT)
        "100.127.255.254",
        "224.0.0.1",
        "239.255.255.250",
        "233.252.0.1",  # multicast that Python calls global
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "198.18.0.1",
        "[::1]",
        "[::]",
        "[fc00::1]",
        "[fd00:ec2::254]",  # the AWS metadata service over IPv6
        "[fe80::1]",
        "[fec0::1]",
        "[ff02::1]",
        "[ff0e::1]",
        "[2001:db8::1]",
        "[::ffff:10.0.0.1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[::10.0.0.1]",  # IPv4-compatible
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
        "[2002:a00:1::1]",  # 6to4 of 10.0.0.1
        "[2001::1]",  # Teredo
    ],
)
def test_refuses_hosts_that_are_refused_addresses(host: str) -> None:
    assert problem(f"https://{host}/hook") is not None
    assert problem(f"https://{host}:8443/hook") is not None


def test_refuses_ipv6_zone_ids() -> None:
    assert problem("https://[fe80::1%25eth0]/") is not None
    assert problem("https://[fe80::1%25eth0]/", allow_loopback_http=True) is not None
    assert problem("https://[::1%25lo]/", allow_loopback_http=True) is not None


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "0x7f000001",
        "0X7F000001",
        "0177.0.0.1",
        "0177.0000.0000.0001",
        "127.1",
        "127.0.1",
        "0x7f.1",
        "127.0.0.1.",
        "017700000001",
        "0",
        "167772161",  # 10.0.0.1
        "0xa9.0xfe.0xa9.0xfe",  # 169.254.169.254
        "0251.0376.0251.0376",
        "2852039166",
        "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # full-width digits: IDNA makes them 127.0.0.1
        "127。0。0。1",  # ideographic full stops
    ],
)
def test_refuses_legacy_forms_of_refused_ipv4_addresses(host: str) -> None:
    assert problem(f"https://{host}/hook") is not None


@pytest.mark.parametrize("host", ["1.2.3.4.5", "0x", "08.0.0.1", "example.123"])
def test_refuses_numeric_hosts_that_are_no_address(host: str) -> None:
    assert problem(f"https://{host}/") is not None


def test_reads_a_legacy_form_of_a_global_address_as_that_address() -> None:
    target = check_callback_url("https://134744072/hook", allow_loopback_http=False)
    assert isinstance(target, CallbackTarget)
    assert target.host == "8.8.8.8"


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "localhost.", "foo.localhost", "a.b.localhost", "foo.localhost."],
)
def test_refuses_localhost_names(host: str) -> None:
    assert problem(f"https://{host}/hook") is not None
    assert problem(f"http://{host}/hook") is not None
    assert problem(f"https://{host}:8443/hook", allow_loopback_http=True) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://127.0.0.9/x",
        "http://localhost:9/x",
        "http://localhost./x",
        "http://[::1]:8080/x",
        "https://127.0.0.1:8443/x",
        "https://localhost:9/x",
    ],
)
def test_allows_loopback_when_asked(url: str) -> None:
    assert problem(url, allow_loopback_http=True) is None
    assert problem(url) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "https://10.0.0.1/",
        "https://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "http://0.0.0.0:8080/",
        "http://example.com",
        "http://8.8.8.8/",
        "http://user:pw@127.0.0.1/",
        "http://127.0.0.1/#x",
    ],
)
def test_allowing_loopback_refuses_everything_else_still(url: str) -> None:
    assert problem(url, allow_loopback_http=True) is not None


def test_a_problem_is_a_short_sentence() -> None:
    message = problem("http://example.com/")
    assert message is not None
    assert "https" in message
    assert len(message) < 100


def test_the_target_holds_what_a_request_needs() -> None:
    target = check_callback_url(
        "https://Bücher.Example.:8443/é/status?to=%2B1&x=ü", allow_loopback_http=False
    )
    assert target == CallbackTarget(
        scheme="https",
        host="xn--bcher-kva.example",
        port=8443,
        host_header="xn--bcher-kva.example:8443",
        request_target="/%C3%A9/status?to=%2B1&x=%C3%BC",
    )


@pytest.mark.parametrize(
    ("url", "host", "port", "host_header", "request_target"),
    [
        ("https://example.com", "example.com", 443, "example.com", "/"),
        ("https://example.com:443?a=1", "example.com", 443, "example.com", "/?a=1"),
        (
            "https://[2606:4700::1111]:8443/h",
            "2606:4700::1111",
            8443,
            "[2606:4700::1111]:8443",
            "/h",
        ),
        ("http://127.0.0.1:8080/x", "127.0.0.1", 8080, "127.0.0.1:8080", "/x"),
        ("http://localhost/x", "localhost", 80, "localhost", "/x"),
    ],
)
def test_the_target_s_parts(
    url: str, host: str, port: int, host_header: str, request_target: str
) -> None:
    target = check_callback_url(url, allow_loopback_http=True)
    assert isinstance(target, CallbackTarget)
    assert (target.host, target.port, target.host_header, target.request_target) == (
        host,
        port,
        host_header,
        request_target,
    )


# --- address_refused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8"],
)
def test_global_addresses_are_not_refused(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    assert not address_refused(parsed, allow_loopback=False)
    assert problem(literal_url(parsed)) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_refused_unless_allowed(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    assert address_refused(parsed, allow_loopback=False)
    assert not address_refused(parsed, allow_loopback=True)


# --- properties ---------------------------------------------------------------------------------

REFUSED_NETWORKS = [
    ipaddress.ip_network(network)
    for network in [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
        "2001:db8::/32",
        "::ffff:10.0.0.0/104",
        "::ffff:127.0.0.0/104",
        "::ffff:169.254.0.0/112",
        "::ffff:192.168.0.0/112",
        "::10.0.0.0/104",
        "64:ff9b::a00:0/104",
        "64:ff9b::a9fe:0/112",
        "2002:a00::/24",
        "2002:c0a8::/32",
    ]
]
LOOPBACK_NETWORKS = {
    ipaddress.ip_network(network) for network in ["127.0.0.0/8", "::1/128", "::ffff:127.0.0.0/104"]
}


def addresses_in(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> st.SearchStrategy[Address]:
    first, last = int(network.network_address), int(network.broadcast_address)
    return st.integers(first, last).map(ipaddress.ip_address)


refused_addresses = st.one_of([addresses_in(network) for network in REFUSED_NETWORKS])
refused_non_loopback = st.one_of(
    [addresses_in(network) for network in REFUSED_NETWORKS if network not in LOOPBACK_NETWORKS]
)


@given(refused_addresses)
def test_every_address_of_a_refused_network_is_refused(address: Address) -> None:
    assert address_refused(address, allow_loopback=False)
    assert problem(literal_url(address)) is not None


@given(refused_non_loopback)
def test_allowing_loopback_refuses_every_other_refused_address(address: Address) -> None:
    assert address_refused(address, allow_loopback=True)
    assert problem(literal_url(address), allow_loopback_http=True) is not None
    assert problem(literal_url(address).replace("https:", "http:"), allow_loopback_http=True)


@given(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
def test_a_literal_ipv4_host_is_judged_as_its_address_in_every_form(
    address: ipaddress.IPv4Address,
) -> None:
    expected = address_refused(address, allow_loopback=False)
    number = int(address)
    octets = address.packed
    forms = [
        str(address),
        str(number),
        hex(number),
        ".".join(f"0{octet:o}" for octet in octets),
        f"{octets[0]}.{number & 0xFFFFFF}",
        f"{address}.",
    ]
    for form in forms:
        assert (problem(f"https://{form}/") is not None) == expected, form


@given(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
def test_an_ipv4_mapped_address_is_judged_as_its_ipv4_address(
    address: ipaddress.IPv4Address,
) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    for allow_loopback in (False, True):
        assert address_refused(mapped, allow_loopback=allow_loopback) == address_refused(
            address, allow_loopback=allow_loopback
        )
