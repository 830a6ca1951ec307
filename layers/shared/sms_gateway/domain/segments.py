"""SMS segment counting for GSM-7 (3GPP TS 23.038 / GSM 03.38) and UCS-2 bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["Encoding", "SegmentCount", "count_segments", "is_gsm7"]

# The API's names of the two encodings (the second reference API's spelling).
Encoding = Literal["GSM7", "UCS2"]

# The basic table in septet order (0x00-0x7F). 0x1B is the escape to the extension table, not a
# character, so it is left out; 0x09 is the capital Ç and the Greek letters are the real Greek
# code points (not look-alikes such as U+2126 OHM SIGN), as in the 3GPP mapping.
_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# Each of these is sent as ESC plus one septet, so it costs two septets.
_GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

_GSM7_SINGLE_LIMIT: Final = 160
# 7 septets of every part go to the concatenation header (6-byte UDH padded to a septet boundary).
_GSM7_PART_LIMIT: Final = 153
_UCS2_SINGLE_LIMIT: Final = 70
# 3 UTF-16 code units of every part go to the 6-byte concatenation header.
_UCS2_PART_LIMIT: Final = 67


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: Encoding
    segments: int  # number of SMS parts; an empty body counts as 1
    units: int  # septets for GSM-7 (extension chars count 2), UTF-16 code units for UCS-2
    # How many more one-unit characters (a basic GSM-7 character, or a BMP character in UCS-2)
    # fit before one more part is needed.
    units_left: int


def is_gsm7(body: str) -> bool:
    """True if every character of ``body`` is in the GSM 03.38 basic or extension table."""
    return all(char in _GSM7_BASIC or char in _GSM7_EXTENSION for char in body)


def _pack(costs: list[int], single_limit: int, part_limit: int) -> tuple[int, int, int]:
    """Return ``(segments, units, units_left)`` for characters of the given unit costs.

    Packing is greedy and a character never straddles a part boundary, because handsets cannot
    reassemble an escape sequence or a surrogate pair split across two messages.
    """
    units = sum(costs)
    if units <= single_limit:
        return 1, units, single_limit - units
    segments = 1
    used = 0
    for cost in costs:
        if used + cost > part_limit:
            segments += 1
            used = 0
        used += cost
    return segments, units, part_limit - used


def count_segments(body: str) -> SegmentCount:
    """Count the SMS parts needed to send ``body``, picking GSM-7 when every character allows it."""
    if is_gsm7(body):
        septets = [2 if char in _GSM7_EXTENSION else 1 for char in body]
        return SegmentCount("GSM7", *_pack(septets, _GSM7_SINGLE_LIMIT, _GSM7_PART_LIMIT))
    # Outside the BMP a character is a surrogate pair on the wire (UTF-16, which carriers accept
    # under the UCS-2 data coding scheme).
    code_units = [2 if ord(char) > 0xFFFF else 1 for char in body]
    return SegmentCount("UCS2", *_pack(code_units, _UCS2_SINGLE_LIMIT, _UCS2_PART_LIMIT))
