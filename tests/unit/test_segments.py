from __future__ import annotations

import sys
from typing import NamedTuple

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sms_gateway.domain.segments import SegmentCount, count_segments, is_gsm7

# Written out independently of the module, in septet order, so its position is the septet value.
# "\x1b" holds the escape slot (0x1B); it is not a character of the alphabet.
GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
ESC = 0x1B
GSM7_EXTENSION_TABLE = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
GSM7_CHARS = "".join(c for c in GSM7_BASIC_TABLE if c != "\x1b") + "".join(GSM7_EXTENSION_TABLE)


class Counted(NamedTuple):
    encoding: str
    segments: int
    units: int


def counted(result: SegmentCount) -> Counted:
    return Counted(result.encoding, result.segments, result.units)


def in_gsm7_table(char: str) -> bool:
    return (char in GSM7_BASIC_TABLE and char != "\x1b") or char in GSM7_EXTENSION_TABLE


# --- Reference split: works on the encoded wire form, not on characters ---------------------


def gsm7_parts(body: str) -> list[str]:
    """Split into concatenated-SMS parts by cutting the septet stream, never after an ESC."""
    septets: list[int] = []
    for char in body:
        if char in GSM7_EXTENSION_TABLE:
            septets += [ESC, GSM7_EXTENSION_TABLE[char]]
        else:
            septets.append(GSM7_BASIC_TABLE.index(char))
    if len(septets) <= 160:
        chunks = [septets]
    else:
        chunks = []
        rest = septets
        while rest:
            cut = min(153, len(rest))
            # A part ending in ESC would leave the escaped septet stranded in the next part.
            if rest[cut - 1] == ESC and cut < len(rest):
                cut -= 1
            chunks.append(rest[:cut])
            rest = rest[cut:]
    parts = []
    for chunk in chunks:
        assert len(chunk) <= (160 if len(chunks) == 1 else 153)
        assert not chunk or chunk[-1] != ESC
        inverse = {v: k for k, v in GSM7_EXTENSION_TABLE.items()}
        text = []
        i = 0
        while i < len(chunk):
            if chunk[i] == ESC:
                text.append(inverse[chunk[i + 1]])
                i += 2
            else:
                text.append(GSM7_BASIC_TABLE[chunk[i]])
                i += 1
        parts.append("".join(text))
    return parts


def ucs2_parts(body: str) -> list[str]:
    """Split into parts by cutting the UTF-16 byte stream, never after a high surrogate."""
    data = body.encode("utf-16-be")
    if len(data) <= 140:
        chunks = [data]
    else:
        chunks = []
        while data:
            cut = min(134, len(data))
            if 0xD800 <= int.from_bytes(data[cut - 2 : cut], "big") <= 0xDBFF:
                cut -= 2
            chunks.append(data[:cut])
            data = data[cut:]
    # Strict decoding fails on a split surrogate pair.
    return [chunk.decode("utf-16-be") for chunk in chunks]


def reference_parts(body: str) -> list[str]:
    return gsm7_parts(body) if all(in_gsm7_table(c) for c in body) else ucs2_parts(body)


# --- The table -------------------------------------------------------------------------------


def test_table_sizes() -> None:
    assert len(GSM7_BASIC_TABLE) == 128
    assert len(set(GSM7_CHARS)) == 127 + 10


def test_table_spot_checks() -> None:
    # Escapes, so a look-alike typed into the table above cannot pass unnoticed.
    expected = {
        0x00: "@", 0x01: "\u00a3", 0x02: "$", 0x03: "\u00a5", 0x09: "\u00c7", 0x0A: "\n",
        0x0D: "\r", 0x10: "\u0394", 0x11: "_", 0x12: "\u03a6", 0x13: "\u0393",
        0x14: "\u039b", 0x15: "\u03a9", 0x16: "\u03a0", 0x17: "\u03a8", 0x18: "\u03a3",
        0x19: "\u0398", 0x1A: "\u039e", 0x1F: "\u00c9", 0x24: "\u00a4", 0x40: "\u00a1",
        0x5B: "\u00c4", 0x5F: "\u00a7", 0x60: "\u00bf", 0x7F: "\u00e0",
    }  # fmt: skip
    for septet, char in expected.items():
        assert GSM7_BASIC_TABLE[septet] == char, hex(septet)
    assert "\u20ac" in GSM7_EXTENSION_TABLE


def test_every_code_point_against_the_table() -> None:
    for code_point in range(sys.maxunicode + 1):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        char = chr(code_point)
        assert is_gsm7(char) is in_gsm7_table(char), hex(code_point)


# Look-alikes of table members: OHM SIGN and INCREMENT are not the Greek capitals.
@pytest.mark.parametrize("char", ["ç", "`", "\t", "\x1b", "\u2126", "\u2206", "ê", "á", "A\u0308"])
def test_non_gsm_lookalikes(char: str) -> None:
    assert not is_gsm7(char)
    assert count_segments(char).encoding == "UCS2"


@pytest.mark.parametrize(
    "char", ["Ç", "é", "É", "\u03a9", "\u0394", "¤", "$", "§", "¿", "¡", "ß", "\n", "\r"]
)
def test_basic_table_members(char: str) -> None:
    assert counted(count_segments(char)) == Counted("GSM7", 1, 1)


@pytest.mark.parametrize("char", list(GSM7_EXTENSION_TABLE))
def test_extension_chars_cost_two_septets(char: str) -> None:
    assert counted(count_segments(char)) == Counted("GSM7", 1, 2)


# --- Worked examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", Counted("GSM7", 1, 0)),
        ("a" * 160, Counted("GSM7", 1, 160)),
        ("a" * 161, Counted("GSM7", 2, 161)),
        ("a" * 306, Counted("GSM7", 2, 306)),
        ("a" * 307, Counted("GSM7", 3, 307)),
        ("€" * 80, Counted("GSM7", 1, 160)),
        ("€" * 81, Counted("GSM7", 2, 162)),
        ("a" * 159 + "€", Counted("GSM7", 2, 161)),
        # The 153 boundary only matters once the body needs concatenation.
        ("a" * 152 + "€" + "a" * 6, Counted("GSM7", 1, 160)),
        # 306 septets fit two 153-septet parts only if no escape pair straddles the boundary:
        # here the euro would need septets 153-154, so it moves whole and needs a third part.
        ("a" * 152 + "€" + "a" * 152, Counted("GSM7", 3, 306)),
        ("a" * 151 + "€" + "a" * 153, Counted("GSM7", 2, 306)),
        ("a" * 152 + "€" * 77, Counted("GSM7", 3, 306)),
        ("a" * 153 + "€" * 76 + "a", Counted("GSM7", 2, 306)),
        ("ж" * 70, Counted("UCS2", 1, 70)),
        ("ж" * 71, Counted("UCS2", 2, 71)),
        ("ж" * 134, Counted("UCS2", 2, 134)),
        ("ж" * 135, Counted("UCS2", 3, 135)),
        ("😀" * 35, Counted("UCS2", 1, 70)),
        ("😀" * 36, Counted("UCS2", 2, 72)),
        # 134 units fit two 67-unit parts only if no surrogate pair straddles the boundary.
        ("ж" * 66 + "😀" + "ж" * 66, Counted("UCS2", 3, 134)),
        ("ж" * 65 + "😀" + "ж" * 67, Counted("UCS2", 2, 134)),
        # One character outside GSM-7 switches the whole body to UCS-2.
        ("a" * 69 + "ç", Counted("UCS2", 1, 70)),
        ("a" * 70 + "ç", Counted("UCS2", 2, 71)),
        ("Grüße € 😀", Counted("UCS2", 1, 10)),
        ("Price: 5€ [ok]", Counted("GSM7", 1, 17)),
    ],
)
def test_worked_examples(body: str, expected: Counted) -> None:
    assert counted(count_segments(body)) == expected
    assert len(reference_parts(body)) == expected.segments


def test_result_is_frozen() -> None:
    result = count_segments("hi")
    with pytest.raises(AttributeError):
        result.segments = 2  # type: ignore[misc]


# --- Properties ------------------------------------------------------------------------------

gsm_text = st.text(alphabet=st.sampled_from(GSM7_CHARS), max_size=700)
# Mostly-GSM text with the odd extension char, so escape pairs land on boundaries often.
extension_heavy = st.text(alphabet=st.sampled_from("a€{"), min_size=140, max_size=700)
ucs2_text = st.text(alphabet=st.sampled_from("жa€😀𝄞"), min_size=50, max_size=400)
any_text = st.one_of(st.text(max_size=400), gsm_text, extension_heavy, ucs2_text)


def single_limit(encoding: str) -> int:
    return 160 if encoding == "GSM7" else 70


@given(any_text)
@example("")
@example("a" * 152 + "€" * 80)
@example("ж" * 66 + "😀" * 40)
def test_segment_count_properties(body: str) -> None:
    result = count_segments(body)
    assert result.segments >= 1
    assert (result.segments == 1) == (result.units <= single_limit(result.encoding))
    assert (result.encoding == "GSM7") == all(in_gsm7_table(c) for c in body)
    assert is_gsm7(body) == (result.encoding == "GSM7")


@given(any_text)
@example("a" * 152 + "€" * 80)
@example("ж" * 66 + "😀" * 40)
def test_counts_agree_with_wire_level_split(body: str) -> None:
    result = count_segments(body)
    parts = reference_parts(body)
    assert "".join(parts) == body
    assert len(parts) == result.segments
    if result.encoding == "GSM7":
        assert result.units == sum(2 if c in GSM7_EXTENSION_TABLE else 1 for c in body)
    else:
        assert result.units == len(body.encode("utf-16-le")) // 2


# --- Room left in the last part ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "units_left"),
    [
        ("", 160),
        ("a" * 150, 10),
        ("a" * 160, 0),
        # The 161st character makes two parts of 153: 145 more fit in the second.
        ("a" * 161, 145),
        ("€" * 80, 0),
        ("ж" * 60, 10),
        ("ж" * 71, 63),
        # A pair moved whole into the next part leaves its part's last unit unused.
        ("ж" * 66 + "😀" * 3, 61),
    ],
)
def test_units_left_worked_examples(body: str, units_left: int) -> None:
    assert count_segments(body).units_left == units_left


@given(any_text)
@example("a" * 160)
@example("ж" * 70)
def test_units_left_is_exactly_what_fits_before_one_more_part(body: str) -> None:
    """Appending `units_left` one-unit characters keeps the count; one more adds a part."""
    result = count_segments(body)
    one_unit = "a" if result.encoding == "GSM7" else "ж"
    assert count_segments(body + one_unit * result.units_left).segments == result.segments
    assert count_segments(body + one_unit * (result.units_left + 1)).segments == result.segments + 1
