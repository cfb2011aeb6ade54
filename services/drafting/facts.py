"""Facts read from a case's own words when the CRM leaves a field empty.

`outage_duration` gives the outage duration of a case: the CRM field when it is set, else
the duration the subject or description states ("about 30 hours", "down for 2 days",
"90 minutes", "a day and a half", "half an hour"), with where it was read. The reading is
conservative: a number counts only with a unit of time and not in a phrase that makes it
something else ("3 days ago", "within 24 hours", "24 hours a day", "a 30-day trial",
"took 5 hours to answer"); amounts, dates, times of day, "24/7" and "99.9%" carry no unit
of time and are never read. A range counts as its lower end, "less than an hour" as just
under it, and of several different durations the smallest is taken, preferring those said
in a sentence about the outage. A day is 24 hours. Vague words ("hours", "a few hours",
"all weekend") are not a duration: the case then has none, and a reviewer decides.

`requested_remedy` says whether the customer asks for a refund or an account credit, when
the text asks for exactly one of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from models.domain import CRMCase

# The risk flag of an outage whose duration is neither in the CRM field nor in the text.
OUTAGE_HOURS_UNKNOWN_FLAG = "outage_hours_unknown"
FROM_CRM_FIELD = "from the CRM field"

HOUR_PLACES = Decimal("0.01")
# "less than an hour": just under the bound, so it falls in the band below it.
JUST_UNDER = Decimal("0.01")

_UNIT_HOURS = {
    "min": Decimal(1) / 60,
    "h": Decimal(1),
    "d": Decimal(24),
    "w": Decimal(168),
}
_UNIT = r"(?P<{name}>minutes?|mins?|m(?=\b|\d)|hours?|hrs?|h(?=\b|\d)|days?|weeks?|wks?)"
_SMALL = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_ONES = "one|two|three|four|five|six|seven|eight|nine"
_WORD_NUMBER = (
    rf"(?:a\s+couple(?:\s+of)?|(?:{'|'.join(_TENS)})(?:[- ](?:{_ONES}))?"
    rf"|{'|'.join(sorted(_SMALL, key=len, reverse=True))})\b"
)
# Not inside a word, an amount ("$5m"), a decimal or a date ("05/30").
_NOT_AFTER = r"(?<![\w.,/$£€])"
_NUMBER = rf"(?:{_NOT_AFTER}(?:\d+(?:\.\d+)?\s*½?|½|{_WORD_NUMBER}))"
_HALF = r"(?:\s+and\s+a\s+half)"
_ADJECTIVE = r"(?:\s+(?:full|whole|entire|solid|straight|consecutive|long))"
_LOWER = (
    r"about|around|roughly|approximately|approx\.?|some|over|more\s+than|longer\s+than|"
    r"at\s+least|in\s+excess\s+of|upwards\s+of|just\s+over|a\s+good"
)
_UPPER = r"nearly|almost|under|less\s+than|below|just\s+under|not\s+quite|up\s+to"

# One duration: [qualifier] [between] number [-|to|or|and number] [and a half] [adjective]
# unit [and a half] [and number unit]; or "half an hour" / "half a day".
_DURATION = re.compile(
    rf"(?:\b(?P<qualifier>{_LOWER}|{_UPPER})\s+)?"
    rf"(?:(?P<between>between)\s+)?"
    rf"(?:\b(?P<half_of>half)(?:\s+an?\s+|\s*-\s*|\s+)"
    rf"|(?P<number>{_NUMBER})"
    rf"(?:\s*(?:-|–|—|\bto\b|\bor\b|\band\b)\s*(?P<upper>{_NUMBER})"
    rf"(?=\s*-?\s*(?:{_ADJECTIVE}\s*)?[a-z]))?"
    rf"(?P<half_before>{_HALF})?{_ADJECTIVE}?\s*(?P<hyphen>-)?\s*)"
    + _UNIT.format(name="unit")
    + rf"\b(?P<half_after>{_HALF})?"
    rf"(?:,?\s*(?:and\s+)?(?P<number2>\d+|(?!an?\b){_WORD_NUMBER})\s*"
    + _UNIT.format(name="unit2")
    + r"\b)?",
    re.IGNORECASE,
)
# "2h30": hours and minutes without the minutes' unit.
_CLOCK_DURATION = re.compile(
    r"\b(?P<hours>\d{1,2})\s*h\s*(?P<minutes>[0-5]\d)\b(?!\s*(?:am|pm))", re.IGNORECASE
)

# Words just before a duration that make it something other than the outage's length.
_STOP_BEFORE = re.compile(
    r"(?:\b(?:within|every|each|per|in|after|before|next|once|twice|times|at|from|until"
    r"|till|since|by)"
    r"|\b(?:wait(?:ed|ing)?|hold|respon(?:d|se|ded)|repl(?:y|ied)|answer(?:ed)?|trial|notice"
    r"|customer|subscriber|member)\b[^.!?;]{0,25}"
    r"|\b(?:minutes?|hours?|hrs?|days?|weeks?))\s*$",
    re.IGNORECASE,
)
# Words just after a duration that make it something else.
_STOP_AFTER = re.compile(
    r"^\s*(?:ago|later|earlier|after|before|from\s+now|in\s+advance|a\s+(?:day|week|month|year)"
    r"|per\b|each|every|notice|of\s+notice|trial|window|grace|old|late|overdue|left|remaining"
    r"|to\s+(?:respond|reply|answer|get\s+back|hear|resolve)|for\s+a\s+(?:reply|response)"
    r"|on\s+hold|waiting|support|coverage|availability|uptime|sla\b|guarantee|turnaround"
    r"|money[- ]back|refund|free|prior|since\s+(?:i|we)\s+(?:signed|joined|subscribed))",
    re.IGNORECASE,
)
# A hyphenated "30-day" is an adjective: a duration only before one of these nouns.
_OUTAGE_NOUN = re.compile(
    r"^\s*(?:outage|downtime|interruption|disruption|blackout|failure|incident|"
    r"(?:service\s+)?(?:loss|gap))\b",
    re.IGNORECASE,
)
# A sentence that speaks of the outage itself.
_OUTAGE_WORDS = re.compile(
    r"\b(?:down|outage|offline|unavailable|unreachable|inaccessible|interrupt\w*|disrupt\w*"
    r"|not\s+(?:working|loading|available|accessible|load|work)|did\s*n[o']?t\s+(?:work|load)"
    r"|could\s*n[o']?t|could\s+not|can\s*n[o']?t|cannot|fail\w*|errors?|broken|crash\w*"
    r"|blackout|no\s+service|lost\s+(?:access|service)|without\s+(?:service|access)"
    r"|stopped\s+working|degraded|unusable|went\s+dark)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?;](?:\s|$)|\n")


@dataclass(frozen=True)
class Mention:
    """A duration stated in a text: its length in hours and the words that state it."""

    hours: Decimal
    quote: str
    start: int
    about_outage: bool  # said in a sentence about the outage


@dataclass(frozen=True)
class OutageDuration:
    """An outage's length and where it was read."""

    hours: Decimal
    source: str  # "from the CRM field", or "from description: '…about 30 hours…'"

    @property
    def from_crm_field(self) -> bool:
        """Whether the CRM's own field gave it (not the case text)."""
        return self.source == FROM_CRM_FIELD

    @property
    def label(self) -> str:
        """The hours as a reviewer reads them: "30 h", "1.5 h"."""
        return f"{format_hours(self.hours)} h"


def format_hours(hours: Decimal) -> str:
    """`hours` without trailing zeros: 30, 1.5, 0.75."""
    return format(hours.normalize(), "f")


def _number(text: str) -> Decimal:
    word = " ".join(text.lower().replace("-", " ").split())
    if word.startswith("a couple"):
        return Decimal(2)
    if word in _SMALL:
        return Decimal(_SMALL[word])
    parts = word.split(" ")
    if parts[0] in _TENS:
        ones = {w: i + 1 for i, w in enumerate(_ONES.split("|"))}
        return Decimal(_TENS[parts[0]] + (ones.get(parts[1], 0) if len(parts) > 1 else 0))
    half = "½" in word
    digits = word.replace("½", "").strip()
    value = Decimal(digits) if digits else Decimal(0)
    return value + (Decimal("0.5") if half else 0)


def _unit_hours(unit: str) -> Decimal:
    unit = unit.lower()
    if unit.startswith("mi") or unit == "m":
        return _UNIT_HOURS["min"]
    return _UNIT_HOURS[unit[0]]


def _hours(match: re.Match[str]) -> Decimal:
    per_unit = _unit_hours(match["unit"])
    count = Decimal("0.5") if match["half_of"] else _number(match["number"])
    if match["half_before"] or match["half_after"]:
        count += Decimal("0.5")
    hours = count * per_unit
    if match["unit2"] and _unit_hours(match["unit2"]) < per_unit:
        hours += _number(match["number2"]) * _unit_hours(match["unit2"])
    return hours


def _sentence_of(text: str, start: int, end: int) -> str:
    begin = 0
    for found in _SENTENCE_END.finditer(text, 0, start):
        begin = found.end()
    after = _SENTENCE_END.search(text, end)
    return text[begin : after.start() if after else len(text)]


def _end(match: re.Match[str]) -> int:
    """Where the duration ends: a second unit counts only when smaller ("2 hours 30
    minutes"), not in "24 hours, 7 days"."""
    if match["unit2"] and _unit_hours(match["unit2"]) < _unit_hours(match["unit"]):
        return match.end()
    return match.end("half_after") if match["half_after"] else match.end("unit")


def _is_duration(text: str, start: int, end: int, *, hyphen: bool) -> bool:
    before = text[max(0, start - 40) : start]
    after = text[end : end + 40]
    if _STOP_BEFORE.search(before) or _STOP_AFTER.match(after):
        return False
    # "a 30-day trial", "our 4-hour SLA": an adjective, unless it names the outage.
    return not (hyphen and not _OUTAGE_NOUN.match(after))


def find_durations(text: str) -> list[Mention]:
    """Every duration `text` states, in order, with its quote."""
    found: list[Mention] = []
    taken: list[tuple[int, int]] = []
    for match in _CLOCK_DURATION.finditer(text):
        taken.append(match.span())
        if _is_duration(text, *match.span(), hyphen=False):
            hours = Decimal(match["hours"]) + Decimal(match["minutes"]) / 60
            found.append(_mention(text, match.start(), match.end(), hours))
    for match in _DURATION.finditer(text):
        start, end = match.start(), _end(match)
        if any(s <= start < e for s, e in taken):
            continue
        if not _is_duration(text, start, end, hyphen=bool(match["hyphen"])):
            continue
        hours = _hours(match)
        qualifier = " ".join((match["qualifier"] or "").lower().split())
        if qualifier and re.fullmatch(_UPPER, qualifier, re.IGNORECASE):
            hours = max(hours - JUST_UNDER, Decimal(0))
        found.append(_mention(text, start, end, hours))
    found.sort(key=lambda m: m.start)
    return found


def _mention(text: str, start: int, end: int, hours: Decimal) -> Mention:
    quote = " ".join(text[start:end].split())
    about_outage = bool(_OUTAGE_WORDS.search(_sentence_of(text, start, end)))
    return Mention(hours.quantize(HOUR_PLACES, ROUND_DOWN), quote, start, about_outage)


def _mentions(case: CRMCase) -> Iterator[tuple[str, Mention]]:
    for field_name, text in (("subject", case.subject), ("description", case.description)):
        for mention in find_durations(text):
            yield field_name, mention


def outage_duration(case: CRMCase) -> OutageDuration | None:
    """The case's outage duration: the CRM field, else what its text states, else None."""
    if case.outage_hours is not None and case.outage_hours >= 0:
        return OutageDuration(case.outage_hours, FROM_CRM_FIELD)
    mentions = list(_mentions(case))
    if not mentions:
        return None
    preferred = [(f, m) for f, m in mentions if m.about_outage] or mentions
    field_name, chosen = min(preferred, key=lambda fm: fm[1].hours)
    source = f"from {field_name}: '…{chosen.quote}…'"
    values = {m.hours for _, m in preferred}
    if len(values) > 1:
        source += f" (the shortest of {len(values)} durations stated)"
    return OutageDuration(chosen.hours, source)


def outage_hours_unknown(case: CRMCase) -> bool:
    """Whether an outage case states its duration neither in the CRM field nor in its text."""
    return case.dispute_type == "service_outage" and outage_duration(case) is None


# The remedy a customer asks for.

Remedy = Literal["refund", "credit"]

_REFUND = re.compile(
    r"\b(?:refund(?:s|ed|ing)?|reimburse\w*|money\s+back|pay\s+(?:it|me|us)\s+back"
    r"|reverse\s+(?:it|the\s+charge|this\s+charge)|charge\s*back)\b",
    re.IGNORECASE,
)
# "credit" as a remedy: not a credit card, score or limit, nor "credited back to my card".
_CREDIT = re.compile(
    r"\bcredit(?:ed)?\b"
    r"(?!\s*-?\s*(?:card|union|score|rating|check|limit|history|report)\b)"
    r"(?![^.!?;]{0,20}\b(?:to|on)\s+(?:my|our|the)\s+(?:\w+\s+)?card\b)",
    re.IGNORECASE,
)
_NEGATED = re.compile(
    r"(?:(?:\bnot|\bnever|n't)\s+(?:want|need|accept|asking\s+for|ask\s+for|looking\s+for)\b"
    r"[^.!?;]{0,20}|\b(?:instead\s+of|rather\s+than)\s+(?:an?\s+|any\s+|the\s+)?(?:\w+\s+)?)$",
    re.IGNORECASE,
)


def _asked(pattern: re.Pattern[str], text: str) -> bool:
    """Whether `text` names the remedy other than to turn it down."""
    return any(
        not _NEGATED.search(text[max(0, m.start() - 50) : m.start()])
        for m in pattern.finditer(text)
    )


def requested_remedy(text: str) -> Remedy | None:
    """ "refund" or "credit" when `text` asks for exactly one of them, else None."""
    refund, credit = _asked(_REFUND, text), _asked(_CREDIT, text)
    if refund == credit:
        return None
    return "refund" if refund else "credit"


__all__ = [
    "FROM_CRM_FIELD",
    "OUTAGE_HOURS_UNKNOWN_FLAG",
    "Mention",
    "OutageDuration",
    "Remedy",
    "find_durations",
    "format_hours",
    "outage_duration",
    "outage_hours_unknown",
    "requested_remedy",
]
