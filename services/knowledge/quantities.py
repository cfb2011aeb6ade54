"""Durations and amounts in a dispute description, and the bands of policy tables.

Policies set out their matrices in bands: "6-12 hours", "1 to 4 hours", "Under 1 hour",
"Over $5,000", "Up to 100" under an "Amount per case (GBP)" header. A customer states a
single value: "down for nine hours", "a 2,500 pound refund". The row whose band holds the
value answers the question, yet neither the embedder nor keyword search can tell that
"nine hours" falls in "6-12 hours". `quantities` reads the values of a text (durations in
minutes, amounts in currency units, the currency itself ignored), `cell_band` the band a
table cell states, and `Band.holds` says whether a value falls in it (both ends included:
documents differ on which end a band includes, and either way the row's section is the
one that answers).

A duration followed by "ago" is a point in time ("two weeks ago"), not a duration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["duration", "money"]

_NUMBER_WORDS = {
    word: float(value)
    for value, word in enumerate(
        (
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        )
    )
} | {"thirty": 30.0, "forty": 40.0, "fifty": 50.0, "sixty": 60.0, "ninety": 90.0}
# "an hour", "a day"; "half a day", "half an hour".
_ARTICLES = {"a": 1.0, "an": 1.0, "half a": 0.5, "half an": 0.5}
_MINUTES = {"min": 1, "minute": 1, "h": 60, "hr": 60, "hour": 60, "day": 1440, "week": 10080}

_DIGITS = r"\d[\d,]*(?:\.\d+)?"
_WORD_NUMBER = "|".join(  # longest first: "half an" before "an", "fourteen" before "four"
    word.replace(" ", r"\s+")
    for word in sorted([*_NUMBER_WORDS, *_ARTICLES], key=len, reverse=True)
)
_UNIT = r"(minutes?|mins?|hours?|hrs?|h|days?|weeks?)"
_DAY_KIND = r"(?:working\s+|business\s+|calendar\s+|whole\s+|full\s+)?"
_DURATION = re.compile(
    rf"\b({_DIGITS}|{_WORD_NUMBER})[\s-]*{_DAY_KIND}{_UNIT}\b(?!\s+ago\b)", re.IGNORECASE
)
_CURRENCY = r"(?:\$|£|€|\b(?:usd|gbp|eur)\b)"
_CURRENCY_WORD = r"(?:pounds?|dollars?|euros?|usd|gbp|eur)"
_MONEY = re.compile(
    rf"(?:{_CURRENCY}\s*({_DIGITS})|\b({_DIGITS})\s*{_CURRENCY_WORD}\b)", re.IGNORECASE
)
_CELL = re.compile(
    rf"^(?:(under|less than|below|up to|over|more than|above)\s+)?"
    rf"{_CURRENCY}?\s*({_DIGITS})\s*"
    rf"(?:(?:-|\u2013|to)\s*{_CURRENCY}?\s*({_DIGITS})\s*)?"
    rf"{_CURRENCY_WORD}?\s*(?:{_DAY_KIND}{_UNIT})?$",
    re.IGNORECASE,
)
# A column holds amounts if its cells or its header name a currency or an amount.
_MONEY_LABEL = re.compile(
    rf"{_CURRENCY}|\((?:usd|gbp|eur|\$|£|€)\)|\b(?:amount|price|fee|refund|credit)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quantity:
    kind: Kind
    value: float  # minutes for a duration, currency units for money


@dataclass(frozen=True)
class Band:
    kind: Kind
    low: float
    high: float  # math.inf for "Over ..."

    def holds(self, quantity: Quantity) -> bool:
        """Whether `quantity` is of this band's kind and within it, both ends included."""
        return quantity.kind == self.kind and self.low <= quantity.value <= self.high

    def encode(self) -> str:
        return f"{self.kind}:{self.low:g}:{self.high:g}"

    @classmethod
    def decode(cls, text: str) -> Band:
        kind, low, high = text.split(":")
        if kind not in ("duration", "money"):
            raise ValueError(f"unknown band kind {kind!r}")
        return cls("duration" if kind == "duration" else "money", float(low), float(high))


def _number(text: str) -> float:
    word = " ".join(text.lower().split())
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    if word in _ARTICLES:
        return _ARTICLES[word]
    return float(word.replace(",", ""))


def _minutes(unit: str) -> int:
    return _MINUTES[unit.lower().rstrip("s")]


def quantities(text: str) -> list[Quantity]:
    """The durations (in minutes) and amounts of money a text states, in order found."""
    found = [
        Quantity("duration", _number(match.group(1)) * _minutes(match.group(2)))
        for match in _DURATION.finditer(text)
    ]
    found += [
        Quantity("money", _number(match.group(1) or match.group(2)))
        for match in _MONEY.finditer(text)
    ]
    return found


def cell_band(cell: str, header: str = "") -> Band | None:
    """The band a table cell states ("6-12 hours", "Over $5,000", "Up to 100" under an
    amount header), or None if it states none (a single value is not a band)."""
    match = _CELL.match(cell.strip())
    if match is None:
        return None
    bound, first, second, unit = match.groups()
    if unit:
        kind: Kind = "duration"
        scale = float(_minutes(unit))
    elif _MONEY_LABEL.search(f"{cell} {header}"):
        kind, scale = "money", 1.0
    else:
        return None
    low = _number(first) * scale
    if second is not None:
        return Band(kind, low, _number(second) * scale)
    bound = (bound or "").lower()
    if bound in ("under", "less than", "below", "up to"):
        return Band(kind, 0.0, low)
    if bound in ("over", "more than", "above"):
        return Band(kind, low, math.inf)
    return None


def encode_bands(bands: tuple[Band, ...]) -> str:
    """Bands as one string, for a vector store's flat metadata."""
    return ";".join(band.encode() for band in bands)


def decode_bands(text: str) -> tuple[Band, ...]:
    return tuple(Band.decode(part) for part in text.split(";") if part)


__all__ = ["Band", "Quantity", "cell_band", "decode_bands", "encode_bands", "quantities"]
