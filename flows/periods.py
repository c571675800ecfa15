"""Dates at the precision a rep gave them: a day, a week, part of a month, a month, a quarter, a
half year or a year. ``明年3月`` is March 2027, never 2027-03-07.

Stored as text (the ``key``), which sorts and reads without this module:

==============  =====================  =========================  ==========================
precision       key                    zh                         en
==============  =====================  =========================  ==========================
day             ``2027-03-15``         2027年3月15日               Mar 15, 2027
week            ``2027-W11``           2027年第11周                week 11, 2027
part of month   ``2027-03-late``       2027年3月下旬               late March 2027
month           ``2027-03``            2027年3月                   March 2027
quarter         ``2027-Q2``            2027年第2季度               Q2 2027
half year       ``2027-H1``            2027年上半年                H1 2027
year            ``2027``               2027年                      2027
==============  =====================  =========================  ==========================

Parts of a month: ``early`` is days 1–10 (月初, 上旬), ``mid`` 11–20 (月中, 中旬), ``late`` 21 to
the end (月底, 月末, 下旬). Weeks are ISO weeks (Monday first).

Named periods, by rule:
* ``年初`` is January, ``年底``/``年末`` December, ``年中`` June of the year meant (this year,
  unless a year is named).
* ``春节后``/``年后``/``过完年`` is the part of the month holding the Lantern Festival (the 15th day
  of the new year, when the holiday season ends): 2027's new year is 6 Feb and its Lantern
  Festival 20 Feb, so ``2027-02-mid``.
  ``春节前``/``年前`` is the part of the month holding the festival's eve. The festival is the
  next one whose season has not ended (dates from the Chinese calendar, 2024–2040).
* ``下个月``, ``下季度``, ``下半年``, ``明年``, ``下周`` and their English forms are the next one
  after today's; ``本月``, ``this quarter`` and so on today's own.

A month, quarter, half or year without a year is the next one that has not ended more than 30
days ago (the same rule as a day without a year, ``flows.dates``).

Two points stand for a period where one date is needed: reminders count back from its **start**
(a rep told about "March" is reminded before March begins), and overdue checks and forecasts use
its **end** (a deal due "in March" is not late until March is over).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from babel.dates import format_date

from flows.dates import (
    FIRST_YEAR,
    LAST_YEAR,
    PAST_GRACE,
    DateProblem,
    arabic,
    month_number,
    read_date,
)

PARTS = {"early": (1, 10), "mid": (11, 20), "late": (21, 31)}
# 正月初一 of each year, from the Chinese calendar (Hong Kong Observatory's tables). A library
# for the lunar calendar would be a dependency for one date a year.
SPRING_FESTIVALS = {
    year: date(year, month, day)
    for year, month, day in (
        (2024, 2, 10), (2025, 1, 29), (2026, 2, 17), (2027, 2, 6), (2028, 1, 26),
        (2029, 2, 13), (2030, 2, 3), (2031, 1, 23), (2032, 2, 11), (2033, 1, 31),
        (2034, 2, 19), (2035, 2, 8), (2036, 1, 28), (2037, 2, 15), (2038, 2, 4),
        (2039, 1, 24), (2040, 2, 12),
    )
}  # fmt: skip
LANTERN_FESTIVAL_DAY = 14  # days after the new year: 正月十五


@dataclass(frozen=True)
class Period:
    precision: str  # "day", "week", "part", "month", "quarter", "half", "year"
    start: date
    end: date
    key: str


# -- building periods -----------------------------------------------------------------------------
def day_period(day: date) -> Period:
    return Period("day", day, day, day.isoformat())


def week_period(year: int, week: int) -> Period:
    start = _calendar(date.fromisocalendar, year, week, 1)
    return Period("week", start, start + timedelta(days=6), f"{year}-W{week:02d}")


def month_period(year: int, month: int) -> Period:
    start = _calendar(date, year, month, 1)
    end = start.replace(day=calendar.monthrange(year, month)[1])
    return Period("month", start, end, f"{year}-{month:02d}")


def part_period(year: int, month: int, part: str) -> Period:
    whole = month_period(year, month)
    first, last = PARTS[part]
    start, end = whole.start.replace(day=first), whole.end.replace(day=min(last, whole.end.day))
    return Period("part", start, end, f"{whole.key}-{part}")


def quarter_period(year: int, quarter: int) -> Period:
    start, end = month_period(year, quarter * 3 - 2), month_period(year, quarter * 3)
    return Period("quarter", start.start, end.end, f"{year}-Q{quarter}")


def half_period(year: int, half: int) -> Period:
    start, end = month_period(year, half * 6 - 5), month_period(year, half * 6)
    return Period("half", start.start, end.end, f"{year}-H{half}")


def year_period(year: int) -> Period:
    return Period("year", _calendar(date, year, 1, 1), date(year, 12, 31), str(year))


def _calendar(build: Callable[..., date], year: int, *args: int) -> date:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise DateProblem("parse.date_out_of_range")
    try:
        return build(year, *args)
    except ValueError:
        raise DateProblem("parse.date_invalid") from None


_KEYS: tuple[tuple[re.Pattern[str], Callable[..., Period]], ...] = (
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), lambda y, m, d: day_period(_calendar(date, y, m, d))),
    (re.compile(r"(\d{4})-W(\d{2})"), week_period),
    (re.compile(r"(\d{4})-(\d{2})-(early|mid|late)"), part_period),
    (re.compile(r"(\d{4})-(\d{2})"), month_period),
    (re.compile(r"(\d{4})-Q([1-4])"), quarter_period),
    (re.compile(r"(\d{4})-H([12])"), half_period),
    (re.compile(r"(\d{4})"), year_period),
)


def from_key(key: object) -> Period | None:
    """The period a stored key stands for; None if it is not one (a team's odd old data)."""
    if not isinstance(key, str):
        return None
    for pattern, build in _KEYS:
        if match := pattern.fullmatch(key):
            args = [int(g) if g.isdigit() else g for g in match.groups()]
            try:
                return build(*args)
            except DateProblem:
                return None
    return None


def starts(key: object) -> date | None:
    """Where reminders count back from (see the module docstring); None if not a period."""
    period = from_key(key)
    return None if period is None else period.start


def ends(key: object) -> date | None:
    """What overdue checks and forecasts use (see the module docstring)."""
    period = from_key(key)
    return None if period is None else period.end


# -- reading --------------------------------------------------------------------------------------
def read_period(text: str, now: datetime, *, fallback: bool = True) -> Period:
    """A period from folded text (``reading.fold``), relative to ``now.date()``.

    Raises:
        DateProblem: as ``flows.dates.read_date`` does.
    """
    try:
        return day_period(read_date(text, now, fallback=False))
    except DateProblem as problem:
        if problem.code == "parse.date_out_of_range":
            raise
    today = now.date()
    plain = arabic(text)
    for reader in _READERS:
        found = reader(plain, today)
        if found is not None:
            return found
    if not fallback:
        raise DateProblem("parse.date_invalid")
    return day_period(read_date(text, now))


def _year_rule(build: Callable[[int], Period], today: date) -> Period:
    """This year's, unless it ended more than 30 days ago: then next year's."""
    this = build(today.year)
    return this if this.end >= today - PAST_GRACE else build(today.year + 1)


def _in_year(year: int | None, build: Callable[[int], Period], today: date) -> Period:
    return build(year) if year is not None else _year_rule(build, today)


_ZH_YEARS = {"去年": -1, "今年": 0, "明年": 1, "后年": 2}
_ZH_YEAR = r"(?:(?P<year>\d{4})\s*年?|(?P<rel>去年|今年|明年|后年))?\s*的?\s*"
_ZH_PARTS = {
    "初": "early", "上旬": "early", "头": "early", "中": "mid", "中旬": "mid",
    "下旬": "late", "底": "late", "末": "late", "尾": "late",
}  # fmt: skip
_ZH_PART = "|".join(sorted(_ZH_PARTS, key=len, reverse=True))


def _zh_year(match: re.Match[str], today: date) -> int | None:
    if match["year"]:
        return int(match["year"])
    return today.year + _ZH_YEARS[match["rel"]] if match["rel"] else None


_ZH_MONTH = re.compile(rf"{_ZH_YEAR}(?P<month>\d{{1,2}})\s*月份?\s*(?P<part>{_ZH_PART})?")


def _zh_month(text: str, today: date) -> Period | None:
    match = _ZH_MONTH.fullmatch(text)
    if not match:
        return None
    month, part = int(match["month"]), _ZH_PARTS.get(match["part"] or "")
    if not 1 <= month <= 12:
        raise DateProblem("parse.date_invalid")
    if part:
        return _in_year(_zh_year(match, today), lambda y: part_period(y, month, part), today)
    return _in_year(_zh_year(match, today), lambda y: month_period(y, month), today)


_ZH_RELATIVE_MONTH = re.compile(rf"(?P<which>下下|下|上|本|这)\s*个?\s*月\s*(?P<part>{_ZH_PART})?")
_ZH_THIS_MONTH_PART = re.compile(rf"月\s*(?P<part>{_ZH_PART})")
_RELATIVE = {"上": -1, "last": -1, "本": 0, "这": 0, "this": 0, "下": 1, "next": 1, "下下": 2}


def _zh_relative_month(text: str, today: date) -> Period | None:
    match = _ZH_RELATIVE_MONTH.fullmatch(text)
    if match:
        return _month_from(today, _RELATIVE[match["which"]], _ZH_PARTS.get(match["part"] or ""))
    match = _ZH_THIS_MONTH_PART.fullmatch(text)  # 月底: this month's; 月初, once past: next's
    if not match:
        return None
    part = _ZH_PARTS[match["part"]]
    this = _month_from(today, 0, part)
    return this if this.end >= today else _month_from(today, 1, part)


def _month_from(today: date, months: int, part: str | None) -> Period:
    index = today.year * 12 + today.month - 1 + months
    year, month = divmod(index, 12)
    return part_period(year, month + 1, part) if part else month_period(year, month + 1)


_ZH_QUARTER = re.compile(rf"{_ZH_YEAR}(?:(?:第\s*)?(?P<quarter>[1-4])\s*(?:季度|季)|q(?P<q>[1-4]))")
_ZH_HALF = re.compile(rf"{_ZH_YEAR}(?P<half>上|下)\s*半年")
_ZH_YEAR_PART = re.compile(rf"{_ZH_YEAR}(?P<which>年初|年中|年底|年末|年终|年尾)")
_ZH_YEAR_PART_MONTH = {"年初": 1, "年中": 6, "年底": 12, "年末": 12, "年终": 12, "年尾": 12}
_ZH_RELATIVE = re.compile(r"(?P<which>下下|下|上|本|这)\s*个?\s*(?P<unit>季度|周|星期|礼拜)")


def _zh_quarter(text: str, today: date) -> Period | None:
    match = _ZH_QUARTER.fullmatch(text)
    if not match:
        return None
    quarter = int(match["quarter"] or match["q"])
    return _in_year(_zh_year(match, today), lambda y: quarter_period(y, quarter), today)


def _zh_half(text: str, today: date) -> Period | None:
    match = _ZH_HALF.fullmatch(text)
    if not match:
        return None
    half = 1 if match["half"] == "上" else 2
    return _in_year(_zh_year(match, today), lambda y: half_period(y, half), today)


def _zh_year_part(text: str, today: date) -> Period | None:
    match = _ZH_YEAR_PART.fullmatch(text)
    if not match:
        return None
    month = _ZH_YEAR_PART_MONTH[match["which"]]
    return _in_year(_zh_year(match, today), lambda y: month_period(y, month), today)


def _zh_relative(text: str, today: date) -> Period | None:
    match = _ZH_RELATIVE.fullmatch(text)
    if not match:
        return None
    return _relative(
        today, _RELATIVE[match["which"]], "quarter" if match["unit"] == "季度" else "week"
    )


def _relative(today: date, steps: int, unit: str) -> Period:
    if unit == "week":
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=steps)
        year, week, _ = monday.isocalendar()
        return week_period(year, week)
    if unit == "quarter":
        index = today.year * 4 + (today.month - 1) // 3 + steps
        return quarter_period(index // 4, index % 4 + 1)
    return year_period(today.year + steps)


_ZH_WHOLE_YEAR = re.compile(r"(?P<year>\d{4})\s*年?|(?P<rel>明年|今年|后年)(?:全年|一年|内)?")
_WEEK = re.compile(
    r"(?P<year>\d{4})\s*年\s*第\s*(?P<week>\d{1,2})\s*周|week\s*(?P<week2>\d{1,2}),?\s*(?P<year2>\d{4})"
)


def _week_number(text: str, today: date) -> Period | None:
    match = _WEEK.fullmatch(text)
    if not match:
        return None
    return week_period(int(match["year"] or match["year2"]), int(match["week"] or match["week2"]))


def _zh_whole_year(text: str, today: date) -> Period | None:
    match = _ZH_WHOLE_YEAR.fullmatch(text)
    if not match:
        return None
    return year_period(
        int(match["year"]) if match["year"] else today.year + _ZH_YEARS[match["rel"]]
    )


_FESTIVAL = re.compile(
    rf"{_ZH_YEAR}(?:(?:春节|过年|新年)\s*(?P<when>后|以后|之后|过后|前|以前|之前)|(?P<after>年后|节后|过完年|年前))"
)


def _spring_festival(text: str, today: date) -> Period | None:
    match = _FESTIVAL.fullmatch(text)
    if not match:
        return None
    before = (match["when"] or match["after"] or "").endswith("前") or match["after"] == "年前"
    year = _zh_year(match, today)
    years = [year] if year is not None else [today.year, today.year + 1]
    for candidate in years:
        festival = SPRING_FESTIVALS.get(candidate)
        if festival is None:
            raise DateProblem("parse.date_out_of_range")
        point = (
            festival - timedelta(days=1)
            if before
            else festival + timedelta(days=LANTERN_FESTIVAL_DAY)
        )
        if year is not None or point >= today - PAST_GRACE:
            return _part_holding(point)
    return None


def _part_holding(day: date) -> Period:
    part = next(name for name, (first, last) in PARTS.items() if first <= day.day <= last)
    return part_period(day.year, day.month, part)


# English: "March", "March 2027", "late March", "end of March", "Q2", "Q2 2027", "H1", "first
# half of 2027", "next month", "end of the month", "next quarter", "next week", "next year".
_EN_PARTS = {
    "early": "early", "beginning of": "early", "start of": "early",
    "mid": "mid", "middle of": "mid", "late": "late", "end of": "late",
}  # fmt: skip
_EN_PART = "|".join(_EN_PARTS)
_EN_MONTH = re.compile(
    rf"(?:(?P<part>{_EN_PART})[\s-]*)?(?P<month>[a-z]+)\.?(?:\s*,?\s*(?P<year>\d{{4}}))?"
)
_EN_QUARTER = re.compile(
    r"q(?P<q>[1-4])(?:\s*,?\s*(?P<year>\d{4}))?|(?P<year2>\d{4})\s*-?\s*q(?P<q2>[1-4])"
)
_EN_HALF = re.compile(
    r"(?:h(?P<h>[12])|(?P<which>first|second) half(?: of)?)(?:\s*,?\s*(?P<year>\d{4}))?"
)
_EN_RELATIVE = re.compile(
    r"(?:(?P<part>early|mid|late|end of|beginning of|start of)\s+)?(?:the\s+)?"
    r"(?P<which>this|next|last)\s+(?P<unit>week|month|quarter|year)"
)
_EN_MONTH_PART = re.compile(rf"(?P<part>{_EN_PART})\s+(?:the\s+|this\s+)?month")
_EN_YEAR_END = re.compile(
    r"(?:the\s+)?(?:end of (?:the |this )?year|year[\s-]end|end of (?P<year>\d{4}))"
)


def _en_month(text: str, today: date) -> Period | None:
    match = _EN_MONTH.fullmatch(text)
    if not match:
        return None
    month = month_number(match["month"])
    if month is None:
        return None
    year = int(match["year"]) if match["year"] else None
    if match["part"]:
        part = _EN_PARTS[match["part"]]
        return _in_year(year, lambda y: part_period(y, month, part), today)
    return _in_year(year, lambda y: month_period(y, month), today)


def _en_quarter(text: str, today: date) -> Period | None:
    match = _EN_QUARTER.fullmatch(text)
    if not match:
        return None
    quarter = int(match["q"] or match["q2"])
    year = match["year"] or match["year2"]
    return _in_year(int(year) if year else None, lambda y: quarter_period(y, quarter), today)


def _en_half(text: str, today: date) -> Period | None:
    match = _EN_HALF.fullmatch(text)
    if not match:
        return None
    half = int(match["h"]) if match["h"] else (1 if match["which"] == "first" else 2)
    year = int(match["year"]) if match["year"] else None
    return _in_year(year, lambda y: half_period(y, half), today)


def _en_relative(text: str, today: date) -> Period | None:
    match = _EN_RELATIVE.fullmatch(text)
    if not match:
        return None
    steps, unit = _RELATIVE[match["which"]], match["unit"]
    if unit == "month":
        return _month_from(today, steps, _EN_PARTS[match["part"]] if match["part"] else None)
    if match["part"]:
        return None
    return _relative(today, steps, unit)


def _en_month_part(text: str, today: date) -> Period | None:
    match = _EN_MONTH_PART.fullmatch(text)
    return _month_from(today, 0, _EN_PARTS[match["part"]]) if match else None


def _en_year_end(text: str, today: date) -> Period | None:
    match = _EN_YEAR_END.fullmatch(text)
    if not match:
        return None
    return month_period(int(match["year"]) if match["year"] else today.year, 12)


_READERS: tuple[Callable[[str, date], Period | None], ...] = (
    _zh_month,
    _zh_relative_month,
    _zh_quarter,
    _zh_half,
    _zh_year_part,
    _zh_relative,
    _zh_whole_year,
    _spring_festival,
    _week_number,
    _en_month,
    _en_quarter,
    _en_half,
    _en_relative,
    _en_month_part,
    _en_year_end,
)


# -- display --------------------------------------------------------------------------------------
_ZH_PART_NAMES = {"early": "上旬", "mid": "中旬", "late": "下旬"}


def show_period(key: str, lang: str) -> str:
    """A stored key as the reader reads it (the module's table); it reads back to the same key."""
    period = from_key(key)
    if period is None:
        return key
    zh = lang == "zh"
    start = period.start
    if period.precision == "day":
        return format_date(start, "medium", locale="zh_CN" if zh else "en_US")
    if period.precision == "week":
        year, week, _ = start.isocalendar()
        return f"{year}年第{week}周" if zh else f"week {week}, {year}"
    month = f"{start.year}年{start.month}月" if zh else format_date(start, "MMMM y", locale="en_US")
    if period.precision == "month":
        return month
    if period.precision == "part":
        part = period.key.rsplit("-", 1)[1]
        return f"{month}{_ZH_PART_NAMES[part]}" if zh else f"{part} {month}"
    if period.precision == "quarter":
        quarter = (start.month + 2) // 3
        return f"{start.year}年第{quarter}季度" if zh else f"Q{quarter} {start.year}"
    if period.precision == "half":
        half = 1 if start.month == 1 else 2
        return f"{start.year}年{'上' if half == 1 else '下'}半年" if zh else f"H{half} {start.year}"
    return f"{start.year}年" if zh else str(start.year)
