"""Amounts at the precision a rep gave them: ``300万``, ``大概300万``, ``80-100万``, ``2000多``,
``100万以内``, ``软件150 实施80 运维40，合计270万``.

An ``Amount`` is a closed or open interval with an "approximately" flag:

=====================  ==========================  ======================================
said                   Amount                      stored (JSON, in the field's units)
=====================  ==========================  ======================================
``300万``               low = high = 300万          ``3000000`` (a plain number, as always)
``大概300万``           low = high, approx          ``{"amount": 3000000, "approx": true}``
``80-100万``            low < high                  ``{"low": 800000, "high": 1000000}``
``估计100到150万``       low < high, approx          ``{"low": …, "high": …, "approx": true}``
``2000多``, ``1万以上``   low only                    ``{"low": 2000}``
``100万以内``            high only                   ``{"high": 1000000}``
=====================  ==========================  ======================================

A written-out sum counts as its total (``合计270万`` → 270万); the rep's words stay with the answer
as its evidence. Parts without a stated total are not added up: the units of the parts are
ambiguous (``软件150`` may be 150万), so the rep is asked instead of a sum being invented.

Totals and weighting need one number (``figure``): the amount itself when exact or approximate,
the middle of a range, and the known bound of an open one (a floor for ``2000多``, the ceiling
for ``100万以内``): never more than the rep said.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

Reader = Callable[[str], Decimal | None]

# The words around a figure (folded text, reading.fold), as regex alternatives; the visit-note
# reader (flows.extract) finds amounts in a note by the same words.
APPROX_BEFORE = (
    r"大概|大约|大致|约莫|约|估计|预计|预估|粗估|差不多|将近|接近|可能"
    r"|about|around|approx(?:imately|\.)?|roughly|circa|ca\.|est(?:imated|\.)?|~|≈"
)
APPROX_AFTER = r"左右|上下|前后|ish|or so"
FLOOR_BEFORE = r"至少|起码|最少|超过|不少于|不低于|at least|over|more than|above"
FLOOR_AFTER = r"以上|出头|多一点|\+|or more|plus"
CEILING_BEFORE = (
    r"不超过|最多|至多|不到|不高于|少于|up to|at most|under|less than|below|capped at"
    r"|no more than|within|max\.?"
)
CEILING_AFTER = r"以内|以下|之内|封顶|or less|max"
RANGE_WORDS = r"-|–|—|~|～|〜|到|至|to"
TOTAL_WORDS = r"合计|总计|总共|一共|共计|总价|总额|加起来|in total|total|sum"

_APPROX_BEFORE = re.compile(rf"^(?:{APPROX_BEFORE})\s*")
_APPROX_AFTER = re.compile(rf"\s*(?:{APPROX_AFTER})$")
_FLOOR_BEFORE = re.compile(rf"^(?:{FLOOR_BEFORE})\s*")
_FLOOR_AFTER = re.compile(rf"\s*(?:{FLOOR_AFTER})$")
_CEILING_BEFORE = re.compile(rf"^(?:{CEILING_BEFORE})\s*")
_CEILING_AFTER = re.compile(rf"\s*(?:{CEILING_AFTER})$")
# "2000多", "300多万", "1万多", "300余万": 多/余 after the figure, before or after its unit.
_MORE = re.compile(
    r"^(?P<head>.*?\d)\s*(?:多|余)\s*(?P<unit>[^\d多余]*)$|^(?P<whole>.+?)(?:多|余)$"
)
# Between the two ends of a range; a leading minus is a sign, not a range.
_RANGE = re.compile(
    rf"(?<=[\d万千亿kmwb元])\s*(?:{RANGE_WORDS})\s*"
    r"(?=[^\s\d]{0,4}[\d〇零一二两三四五六七八九十])"  # the right end may start with "¥"
)
_TOTAL = re.compile(rf"(?:{TOTAL_WORDS})\s*[:：是为]?\s*")
_TRAILING_PUNCT = re.compile(r"[\s。.,，!！;；]+$")


@dataclass(frozen=True)
class Amount:
    low: Decimal | None
    high: Decimal | None
    approx: bool = False

    @property
    def exact(self) -> bool:
        return self.low is not None and self.low == self.high and not self.approx


def read_amount(text: str, read_one: Reader) -> Amount | None:
    """An Amount from folded text, using ``read_one`` for each figure; None if it is not one."""
    text = _TRAILING_PUNCT.sub("", text)
    totals = list(_TOTAL.finditer(text))
    if totals:  # the total is what counts; the parts before it stay in the rep's words
        text = text[totals[-1].end() :]
    approx, text = _strip(text, _APPROX_BEFORE, _APPROX_AFTER)
    floor, text = _strip(text, _FLOOR_BEFORE, _FLOOR_AFTER)
    ceiling, text = _strip(text, _CEILING_BEFORE, _CEILING_AFTER)
    if not floor and (more := _MORE.match(text)):
        floor, text = True, more["whole"] or more["head"] + more["unit"]
    if floor and ceiling:
        return None
    ends = _RANGE.split(text, maxsplit=1)
    if len(ends) == 2:
        return None if floor or ceiling else _range(*ends, read_one, approx)
    if not floor and not ceiling and (pair := _neighbours(text.strip(), read_one)):
        return pair
    figure = read_one(text.strip())
    if figure is None:
        return None
    if floor:
        return Amount(figure, None, approx)
    if ceiling:
        return Amount(None, figure, approx)
    return Amount(figure, figure, approx)


def has_parts(text: str) -> bool:
    """Whether folded text names parts before its total (``软件150 实施80，合计230万``)."""
    total = _TOTAL.search(text)
    return total is not None and any(char.isalnum() for char in text[: total.start()])


# Two neighbouring digits before a unit say a range, approximately: 五六十万 is 50–60万,
# 两三百万 200–300万, 七八千 7,000–8,000.
_NEIGHBOURS = re.compile(r"([一二两三四五六七八九])([二三四五六七八九])([十百千万亿].*)")
_DIGIT = {c: n for n, c in enumerate("零一二三四五六七八九")} | {"两": 2}


def _neighbours(text: str, read_one: Reader) -> Amount | None:
    match = _NEIGHBOURS.fullmatch(text)
    if not match or _DIGIT[match[2]] != _DIGIT[match[1]] + 1:
        return None
    low, high = read_one(match[1] + match[3]), read_one(match[2] + match[3])
    return None if low is None or high is None else Amount(low, high, approx=True)


def _strip(text: str, before: re.Pattern[str], after: re.Pattern[str]) -> tuple[bool, str]:
    stripped = after.sub("", before.sub("", text.strip()))
    return stripped != text.strip(), stripped


def _range(left: str, right: str, read_one: Reader, approx: bool) -> Amount | None:
    """``80-100万``: a left end without a unit (it ends in a digit) takes the right end's unit,
    when that makes a range."""
    left, right = left.strip(), right.strip()
    high = read_one(right)
    if high is None:
        return None
    unit = re.search(r"[^\d.,\s]*$", right)[0]
    candidates = [left + unit] if unit and left[-1:].isdigit() else []
    for candidate in [*candidates, left]:
        low = read_one(candidate)
        if low is not None and low < high:
            return Amount(low, high, approx)
    return None


def to_json(amount: Amount, convert: Callable[[Decimal], Any]) -> Any:
    """The stored form (see the module's table); ``convert`` maps a figure to its JSON number."""
    if amount.exact:
        return convert(amount.low)
    if amount.low is not None and amount.low == amount.high:
        return {"amount": convert(amount.low), "approx": True}
    shape: dict[str, Any] = {}
    if amount.low is not None:
        shape["low"] = convert(amount.low)
    if amount.high is not None:
        shape["high"] = convert(amount.high)
    if amount.approx:
        shape["approx"] = True
    return shape


def from_json(value: Any) -> Amount:
    """Back from the stored form; figures come back as Decimal in the stored units."""
    if not isinstance(value, dict):
        return Amount(Decimal(str(value)), Decimal(str(value)))
    if "amount" in value:
        figure = Decimal(str(value["amount"]))
        return Amount(figure, figure, bool(value.get("approx")))
    low, high = value.get("low"), value.get("high")
    return Amount(
        None if low is None else Decimal(str(low)),
        None if high is None else Decimal(str(high)),
        bool(value.get("approx")),
    )


def figure(value: Any) -> Decimal | None:
    """The one number used for totals and weighting (see the module docstring)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = from_json(value)
    except (ArithmeticError, ValueError, TypeError):
        return None
    if amount.low is not None and amount.high is not None:
        return (amount.low + amount.high) / 2
    return amount.low if amount.low is not None else amount.high


def whole_figure(value: Any) -> int | None:
    """``figure`` rounded half up to a whole number of the stored units (fen, for money)."""
    found = figure(value)
    return None if found is None else int(found.quantize(Decimal(1), rounding=ROUND_HALF_UP))
