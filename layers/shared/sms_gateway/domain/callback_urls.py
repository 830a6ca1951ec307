"""Which status callback URLs we may call (the SSRF rules). Pure: no DNS, no network.

A URL is checked when the caller gives it: https, a host, no user info and no fragment. A host
that is an IP address, read as the resolver would read it (127.1 and 2130706433 are 127.0.0.1),
must not be a loopback, private, link-local or reserved one (`address_refused`). A host name is
only checked for its form here: store/webhook_http.py resolves it at each delivery and checks
every address it gets with the same rule.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

MAX_CALLBACK_URL_CHARS = 2048

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"https": 443, "http": 80}

# A label of a host name once IDNA-encoded (underscores occur in real names, so allowed).
_NAME_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_MAX_NAME_CHARS = 253
# A part of an IPv4 address as inet_aton and getaddrinfo read it: decimal, octal (leading 0) or
# hex. A host whose last label is one is an address, never a name (no top-level domain is
# numeric): either one we can read, or refused.
_NUMERIC_LABEL = r"(?:0x[0-9a-f]*|[0-9]+)"
_LEGACY_IPV4 = re.compile(rf"{_NUMERIC_LABEL}(?:\.{_NUMERIC_LABEL}){{0,3}}")

# Addresses that reach an IPv4 host as its IPv4 address does: what they are worth is its worth.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

# What a request line may carry as written: printable ASCII (existing escapes included).
_AS_WRITTEN = "".join(map(chr, range(0x21, 0x7F)))

_BAD_PORT = "its port must be a number from 1 to 65535"
_REFUSED_ADDRESS = "its host is a loopback, private, link-local or reserved address"


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """A URL we may call, in the parts a request is made of."""

    scheme: str
    # ASCII: an IDNA-encoded name without a trailing dot, or an IP address without brackets;
    # what is resolved and what the TLS certificate must name.
    host: str
    port: int
    # The Host header: host[:port], the port only when it is not the scheme's default.
    host_header: str
    # Path and query for the request line, non-ASCII characters percent-encoded.
    request_target: str


def callback_url_problem(url: str, *, allow_loopback_http: bool) -> str | None:
    """None when `url` may be called; otherwise a short sentence saying why not."""
    checked = check_callback_url(url, allow_loopback_http=allow_loopback_http)
    return checked if isinstance(checked, str) else None


def check_callback_url(url: str, *, allow_loopback_http: bool) -> CallbackTarget | str:
    """The parts of `url` to call, or a short sentence saying why it may not be called.

    `allow_loopback_http` (local runs only) lets this machine be called, over http too."""
    if len(url) > MAX_CALLBACK_URL_CHARS:
        return f"it is longer than {MAX_CALLBACK_URL_CHARS} characters"
    # Checked before parsing: urlsplit drops tabs and newlines silently, so the URL it read would
    # not be the one stored.
    if any(c.isspace() or not c.isprintable() for c in url):
        return "it contains whitespace or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme not in _DEFAULT_PORTS:
        return "it must use https"
    if "@" in parts.netloc:
        return "it must not contain a user name or password"
    if "#" in url:
        return "it must not have a fragment"
    if not parts.hostname:
        return "it has no host"
    try:
        port = parts.port  # raises for a port that is not a number or is above 65535
    except ValueError:
        return _BAD_PORT
    if port == 0 or parts.netloc.endswith(":"):
        return _BAD_PORT
    host = _read_host(parts)
    if isinstance(host, str):
        return host
    if host.address is not None and address_refused(
        host.address, allow_loopback=allow_loopback_http
    ):
        return _REFUSED_ADDRESS
    if host.loopback_name and not allow_loopback_http:
        return "its host names this machine (localhost)"
    loopback = host.loopback_name or (host.address is not None and host.address.is_loopback)
    if parts.scheme != "https" and not (allow_loopback_http and loopback):
        return "it must use https"
    return _target(parts, host.text, port)


def address_refused(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool
) -> bool:
    """Whether we refuse to connect to this address."""
    if address.is_loopback:
        return not allow_loopback
    translated = _translated_ipv4(address)
    if translated is not None:
        return address_refused(translated, allow_loopback=allow_loopback)
    if isinstance(address, ipaddress.IPv6Address):
        tunnelled = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if tunnelled is not None and address_refused(tunnelled, allow_loopback=False):
            return True
        if address.is_site_local:
            return True
    # is_global alone is not enough: Python counts multicast, and some ranges IANA reserves
    # (IPv4-compatible ::a.b.c.d among them), as global.
    return not address.is_global or address.is_multicast or address.is_reserved


def _translated_ipv4(address: _Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, IPv4-compatible, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


@dataclass(frozen=True, slots=True)
class _Host:
    text: str
    address: _Address | None
    loopback_name: bool


def _read_host(parts: SplitResult) -> _Host | str:
    """The URL's host as an address or an ASCII name, or why it is neither."""
    hostname = parts.hostname or ""
    if "[" in parts.netloc:
        # urlsplit has already checked the brackets hold an IPv6 address or an IPvFuture.
        if "%" in hostname:
            return "its host must not carry an IPv6 zone id"
        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError:
            return "its host is not a valid IPv6 address"
        return _Host(str(address), address, loopback_name=False)
    try:
        # As getaddrinfo would encode it; full-width digits and dots become ASCII ones here, so
        # the checks below see the host that would be resolved.
        name = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return "its host is not a valid name"
    name = name.removesuffix(".")
    labels = name.split(".")
    if re.fullmatch(_NUMERIC_LABEL, labels[-1]):
        ipv4 = _legacy_ipv4(name)
        if ipv4 is None:
            return "its host is not a valid IPv4 address"
        return _Host(str(ipv4), ipv4, loopback_name=False)
    if len(name) > _MAX_NAME_CHARS or not all(_NAME_LABEL.fullmatch(label) for label in labels):
        return "its host is not a valid name"
    loopback = name == "localhost" or name.endswith(".localhost")
    return _Host(name, None, loopback_name=loopback)


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address the resolver reads in `host`, in any form it accepts (127.1,
    2130706433, 0x7f000001, 0177.0.0.1), or None."""
    if not _LEGACY_IPV4.fullmatch(host):
        return None
    try:
        # Pure parsing, no lookup.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _target(parts: SplitResult, host: str, port: int | None) -> CallbackTarget:
    default_port = _DEFAULT_PORTS[parts.scheme]
    shown_host = f"[{host}]" if ":" in host else host
    port = port or default_port
    request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return CallbackTarget(
        scheme=parts.scheme,
        host=host,
        port=port,
        host_header=shown_host if port == default_port else f"{shown_host}:{port}",
        request_target=quote(request_target, safe=_AS_WRITTEN),
    )
