"""What a message costs: a per-segment price for its destination country, committed at send.

Prices are decimal strings, never floats: `unit_price * segments` is exact. The bundled table
below is the default; an operator overrides a country's price with the CLI (`price set`), and
the stored price wins over the bundled one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from pydantic import BaseModel, Field

# A price: up to 6 digits before the point and up to 6 after (a hundredth of a cent and finer).
UNIT_PRICE_PATTERN = r"^[0-9]{1,6}(\.[0-9]{1,6})?$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
_UNIT_PRICE = re.compile(UNIT_PRICE_PATTERN)
_CURRENCY = re.compile(CURRENCY_PATTERN)

# The currency of the bundled table, and of a test message's zero cost when its country has no
# price.
DEFAULT_CURRENCY: Final = "USD"

# Outbound SMS, USD per segment, by destination (ISO 3166-1 alpha-2). Source: Twilio's US SMS
# price page (twilio.com/en-us/sms/pricing/us: $0.0083 per segment, outbound, long code,
# toll-free and short code alike, carrier fees not included), as quoted "current as of October
# 2026". Only what could be sourced is bundled: every other country has no price (a live
# message's cost is null) until the operator sets the price of its own contract (`price set`).
BUNDLED_PRICES: Final[dict[str, str]] = {
    "US": "0.0083",
}
BUNDLED_PRICES_DATE: Final = "2026-10"


def is_unit_price(text: str) -> bool:
    return _UNIT_PRICE.fullmatch(text) is not None


def is_currency(text: str) -> bool:
    return _CURRENCY.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Price:
    country: str
    unit_price: str
    currency: str
    source: str  # "operator" or "bundled"


def bundled_price(country: str) -> Price | None:
    unit_price = BUNDLED_PRICES.get(country)
    if unit_price is None:
        return None
    return Price(country, unit_price, DEFAULT_CURRENCY, "bundled")


class Cost(BaseModel):
    """What a message costs, committed when it is accepted."""

    amount: str = Field(
        description="unit_price times segments, a decimal string", examples=["0.0158"]
    )
    currency: str = Field(description="ISO 4217", examples=["USD"])
    unit_price: str = Field(description="Price of one segment, a decimal string")
    segments: int = Field(description="The segments charged: the message's `segments`")


def cost_of(price: Price | None, segments: int, *, test: bool) -> Cost | None:
    """A test message costs nothing; a live one to a country with no price has no cost (null)."""
    if test:
        currency = price.currency if price else DEFAULT_CURRENCY
        return Cost(amount="0", currency=currency, unit_price="0", segments=segments)
    if price is None:
        return None
    amount = Decimal(price.unit_price) * segments
    return Cost(
        amount=format(amount, "f"),
        currency=price.currency,
        unit_price=price.unit_price,
        segments=segments,
    )
