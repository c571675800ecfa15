"""Reading dates the way reps type them: ``2026-12-01``, ``12月1日``, ``下周三``, ``next Friday``.

Our own readers come first because they are exact and fast; dateparser is the fallback for
relative phrases (``in 3 days``, ``3天后``, ``下个月``) and gets the Chinese week forms wrong.

Rules (``today`` is the member's local date):
* Weeks start on Monday. ``本周五``/``这周五``/``this Friday`` is the Friday of the current week,
  ``下周五``/``next Friday`` the Friday of the following week (never the coming Friday of this
  week), ``下下周五`` the week after that, ``上周五``/``last Friday`` the previous week's.
* A bare weekday (``周五``, ``Friday``) is the next such day, today included.
* A day without a year (``12月1日``, ``Dec 1``, ``12/1``) falls in the current year unless that is
  more than 30 days ago; then it is next year's (a rep logging last week's meeting still gets this
  year, a rep planning for January in December gets next year).
* Years outside 2000..2100 are rejected.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import lru_cache

from babel.dates import format_date
from dateparser.date import DateDataParser

FIRST_YEAR, LAST_YEAR = 2000, 2100
PAST_GRACE = timedelta(days=30)
# dateparser is slow and lenient on long text; nobody types a date in more than this.
_FALLBACK_MAX_CHARS = 40
_DATEPARSER_SETTINGS = {
    "PREFER_DATES_FROM": "future",
    "RETURN_AS_TIMEZONE_AWARE": False,
    # Without the timestamp and no-spaces parsers, "1700000000" or "20261201" are not dates.
    "PARSERS": ["relative-time", "absolute-time"],
}


class DateProblem(ValueError):
    """The text is not a usable date; ``code`` is the i18n key explaining why."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def read_date(text: str, now: datetime, *, fallback: bool = True) -> date:
    """A date from folded text (``reading.fold``), relative to ``now.date()``.

    Raises:
        DateProblem: ``parse.date_invalid`` (unreadable or impossible, e.g. 2026-02-30) or
            ``parse.date_out_of_range`` (year outside 2000..2100).
    """
    if any(unicodedata.category(char) == "Sc" for char in text):
        raise DateProblem("parse.date_invalid")  # an amount ("¥1", "€12") is never a date
    today = now.date()
    for reader in _READERS:
        found = reader(text, today)
        if found is not None:
            return found
    found = _dateparser(text, now) if fallback else None
    if found is None:
        raise DateProblem("parse.date_invalid")
    return _checked(found.year, found.month, found.day)


def show_date(iso: str, locale: str) -> str:
    """``2026年12月1日`` (zh_CN) · ``Dec 1, 2026`` (en_US); both read back exactly."""
    return format_date(date.fromisoformat(iso), "medium", locale=locale)


# -- exact shapes ---------------------------------------------------------------------------------
_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?")
_MD = re.compile(r"(\d{1,2})\s*(?:月\s*(\d{1,2})\s*[日号]?|/\s*(\d{1,2}))")
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_ORDINAL = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:\s*,?\s*(?P<year>\d{4}))?"
_MONTH_DAY = re.compile(rf"(?P<month>[a-z]+)\.?\s*(?P<day>\d{{1,2}}){_ORDINAL}{_YEAR}")
_DAY_MONTH = re.compile(rf"(?P<day>\d{{1,2}}){_ORDINAL}\s*(?P<month>[a-z]+)\.?{_YEAR}")


def _ymd(text: str, today: date) -> date | None:
    match = _YMD.fullmatch(arabic(text))
    return _checked(*map(int, match.groups())) if match else None


def _month_day(text: str, today: date) -> date | None:
    match = _MD.fullmatch(arabic(text))
    if not match:
        return None
    return _without_year(int(match[1]), int(match[2] or match[3]), today)


def _english(text: str, today: date) -> date | None:
    match = _MONTH_DAY.fullmatch(text) or _DAY_MONTH.fullmatch(text)
    if not match or match["month"] not in _MONTHS:
        return None
    month, day = _MONTHS[match["month"]], int(match["day"])
    if match["year"]:
        return _checked(int(match["year"]), month, day)
    return _without_year(month, day, today)


def month_number(name: str) -> int | None:
    """``mar`` · ``march`` → 3 (folded English month names)."""
    return _MONTHS.get(name)


def _without_year(month: int, day: int, today: date) -> date:
    candidate = _checked(today.year, month, day)
    if candidate < today - PAST_GRACE:
        return _checked(today.year + 1, month, day)
    return candidate


def _checked(year: int, month: int, day: int) -> date:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise DateProblem("parse.date_out_of_range")
    try:
        return date(year, month, day)
    except ValueError:
        raise DateProblem("parse.date_invalid") from None


# -- words ----------------------------------------------------------------------------------------
_DAY_WORDS = {
    "前天": -2,
    "昨天": -1,
    "yesterday": -1,
    "今天": 0,
    "今日": 0,
    "today": 0,
    "明天": 1,
    "明日": 1,
    "tomorrow": 1,
    "后天": 2,
    "day after tomorrow": 2,
    "大后天": 3,
}
_ZH_WEEKS = {"上上": -2, "上": -1, "本": 0, "这": 0, "下": 1, "下下": 2}
_ZH_DAYS = {c: n for n, c in enumerate("一二三四五六日")} | {"天": 6}
_ZH_WEEKDAY = re.compile(
    r"(上上|上|本|这|下下|下)?\s*个?\s*(?:周|星期|礼拜)\s*([一二三四五六日天1-7])"
)
_EN_WEEKS = {"last": -1, "this": 0, "next": 1}
_EN_DAYS = {
    name: n
    for n, names in enumerate(
        [
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "weds", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ]
    )
    for name in names
}
_EN_WEEKDAY = re.compile(r"(?:(last|this|next)\s+)?([a-z]+)\.?")


def _day_word(text: str, today: date) -> date | None:
    offset = _DAY_WORDS.get(text)
    return None if offset is None else today + timedelta(days=offset)


def _zh_weekday(text: str, today: date) -> date | None:
    match = _ZH_WEEKDAY.fullmatch(text)
    if not match:
        return None
    day = match[2]
    weekday = int(day) - 1 if day.isdigit() else _ZH_DAYS[day]
    return _weekday(today, None if match[1] is None else _ZH_WEEKS[match[1]], weekday)


def _en_weekday(text: str, today: date) -> date | None:
    match = _EN_WEEKDAY.fullmatch(text)
    if not match or match[2] not in _EN_DAYS:
        return None
    return _weekday(today, None if match[1] is None else _EN_WEEKS[match[1]], _EN_DAYS[match[2]])


def _weekday(today: date, weeks: int | None, weekday: int) -> date:
    """``weeks`` from the current (Monday-based) week, or the next such day if None."""
    if weeks is None:
        return today + timedelta(days=(weekday - today.weekday()) % 7)
    monday = today - timedelta(days=today.weekday())
    return monday + timedelta(weeks=weeks, days=weekday)


_READERS: tuple[Callable[[str, date], date | None], ...] = (
    _ymd,
    _month_day,
    _english,
    _day_word,
    _zh_weekday,
    _en_weekday,
)


# -- Chinese numerals -----------------------------------------------------------------------------
_ZH_DIGITS = {c: n for n, c in enumerate("〇一二三四五六七八九")} | {"零": 0, "两": 2}
_ZH_NUMBER = re.compile(r"[〇零一两二三四五六七八九十]+")


def arabic(text: str) -> str:
    """``二〇二六年十二月一日`` → ``2026年12月1日``; used where no weekday can be meant."""
    return _ZH_NUMBER.sub(lambda m: _zh_number(m[0]), text)


def _zh_number(run: str) -> str:
    if "十" not in run:  # read digit by digit, as years are: 二〇二六
        return "".join(str(_ZH_DIGITS[c]) for c in run)
    tens, _, units = run.partition("十")
    if len(tens) > 1 or len(units) > 1:
        return run  # not a day or month number; leave it unreadable
    return str(_ZH_DIGITS.get(tens, 1) * 10 + _ZH_DIGITS.get(units, 0))


# -- dateparser fallback --------------------------------------------------------------------------
# dateparser reads "5" as a month and "1.5m" as minutes from now; only hand it text with a real
# word in it: two Latin letters, or a letter of another script such as 天/后/周 (not a sign).
_LATIN_WORD = re.compile(r"[a-z]{2}")


def _wordy(text: str) -> bool:
    if _LATIN_WORD.search(text):
        return True
    return any(ord(char) > 0x7F and unicodedata.category(char)[0] == "L" for char in text)


def _dateparser(text: str, now: datetime) -> date | None:
    if len(text) > _FALLBACK_MAX_CHARS or not _wordy(text):
        return None
    try:
        found = _parser(now.replace(tzinfo=None)).get_date_data(arabic(text)).date_obj
    # A third-party parser fed arbitrary text: it has raised OverflowError on huge offsets and
    # ValueError/KeyError on odd input. Any failure there just means "not a date".
    except Exception:
        return None
    return found.date() if found else None


@lru_cache(maxsize=4)
def _parser(relative_base: datetime) -> DateDataParser:
    """One parser per reference time: its settings are fixed at construction."""
    settings = {**_DATEPARSER_SETTINGS, "RELATIVE_BASE": relative_base}
    return DateDataParser(languages=["zh", "en"], settings=settings)
