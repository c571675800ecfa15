"""Reading amounts the way reps type them: ``1,200``, ``1.2万``, ``500k``, ``五十万``, ``¥500,000``.

Everything is exact: digits go straight into ``Decimal`` (never through ``float``), so ``0.1`` yuan
is exactly 10 fen. Readers take *folded* text (see ``reading.fold``: NFKC, lower case, ASCII
minus) and return ``None`` when the text is not an amount; they never raise.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import cn2an
from babel.numbers import (
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
)

# Beyond a quadrillion it is a typo, and Babel's formatting runs out of Decimal precision.
LIMIT = Decimal(10) ** 15
_MAX_CHARS = 40

# Multipliers reps put after a number; longest first so 百万 wins over 万.
_UNITS = {
    "千万": 10**7,
    "百万": 10**6,
    "亿": 10**8,
    "万": 10**4,
    "千": 10**3,
    "bn": 10**9,
    "b": 10**9,
    "m": 10**6,
    "w": 10**4,  # pinyin shorthand for 万, common in chat
    "k": 10**3,
}
_UNIT_PATTERN = "|".join(_UNITS)
_DIGITS = re.compile(
    rf"(?P<sign>[+-]?)\s*(?P<int>\d{{1,3}}(?:,\d{{3}})+|\d*)(?:\.(?P<frac>\d+))?"
    rf"\s*(?P<unit>{_UNIT_PATTERN})?"
)
_CHINESE = re.compile(r"负?[零〇一二两三四五六七八九十百千万亿点壹贰叁肆伍陆柒捌玖拾佰仟]+")
_CHINESE_UNIT = re.compile(rf"(?P<head>.+?)(?P<unit>{_UNIT_PATTERN})")

# Words around an amount that only name the currency; the playbook's currency is implied.
_CURRENCY_WORDS = {"CNY": ("人民币", "块钱", "rmb", "元", "块", "¥")}


def read_number(text: str) -> Decimal | None:
    """``1,200`` · ``1.2万`` · ``-5`` · ``五百`` · ``一千二`` · ``三点五万`` → Decimal."""
    if not text or len(text) > _MAX_CHARS:
        return None
    value = _read_digits(text)
    if value is None and _CHINESE.fullmatch(text):
        value = _read_chinese(text)
    if value is None or abs(value) >= LIMIT:
        return None
    return value


def strip_currency(text: str, currency: str) -> str:
    """Folded text without the currency's symbols, codes and words (the playbook's is implied)."""
    for word in currency_words(currency):
        text = text.replace(word, " ")
    return " ".join(text.split())


# Measure words after a count ("50人", "3套", "20 users"): they name what is counted, which the
# question already says, so they are dropped before the number is read.
_COUNTER = re.compile(r"\s*(?:人|个|位|名|家|台|套|次|户|所|间|项|条|份|users?|people|seats?)$")


def strip_counter(text: str) -> str:
    return _COUNTER.sub("", text)


def read_percent(text: str) -> Decimal | None:
    """``30`` · ``30%`` · ``百分之三十`` → 30."""
    text = text.removeprefix("百分之").removesuffix("%").removesuffix("percent").strip()
    return read_number(text)


def currency_words(currency: str) -> list[str]:
    """Folded spellings of a currency, longest first (so ``cn¥`` goes before ``¥``)."""
    words = {currency.lower(), *_CURRENCY_WORDS.get(currency, ())}
    for locale in ("zh_CN", "en_US"):
        words.add(get_currency_symbol(currency, locale).lower())
    return sorted(words, key=len, reverse=True)


def to_minor(amount: Decimal, currency: str) -> int:
    """Major units → integer minor units (fen, cents), rounding half up below a cent."""
    scaled = amount.scaleb(get_currency_precision(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_major(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-get_currency_precision(currency))


def show_number(value: int | float | Decimal, locale: str) -> str:
    """``1,200`` · ``2.5``: grouped, and every digit kept so that it reads back the same."""
    return format_decimal(value, locale=locale, decimal_quantization=False)


def show_money(minor: int, currency: str, locale: str) -> str:
    """``50万`` · ``1.2亿`` · ``8,000元`` (zh_CN, yuan counted the Chinese way) · ``CN¥500,000.00``
    (en_US and other currencies, as Babel writes them). Every digit is kept, so it reads back."""
    major = to_major(minor, currency)
    if currency == "CNY" and locale.startswith("zh"):
        for unit, size in (("亿", 10**8), ("万", 10**4)):
            if abs(major) >= size:
                return f"{show_number(major / size, locale)}{unit}"
        return f"{show_number(major, locale)}元"
    return format_currency(major, currency, locale=locale)


def plain(value: Decimal) -> int | float:
    """The JSON-friendly form: int when integral, else float."""
    return int(value) if value == value.to_integral_value() else float(value)


def _read_digits(text: str) -> Decimal | None:
    match = _DIGITS.fullmatch(text)
    if not match or not (match["int"] or match["frac"]):
        return None
    number = Decimal(f"{match['int'].replace(',', '') or '0'}.{match['frac'] or '0'}")
    if match["unit"]:
        number *= _UNITS[match["unit"]]
    return -number if match["sign"] == "-" else number


def _read_chinese(text: str) -> Decimal | None:
    """Chinese numerals via cn2an; ``三点五万`` (which cn2an rejects) as 三点五 × 万."""
    value = _cn2an(text)
    if value is None and (match := _CHINESE_UNIT.fullmatch(text)):
        head = _cn2an(match["head"])
        value = None if head is None else head * _UNITS[match["unit"]]
    return value


def _cn2an(text: str) -> Decimal | None:
    try:
        return Decimal(str(cn2an.cn2an(text, "normal")))
    # cn2an signals unreadable input with ValueError, but odd input has also hit its internals.
    except (ValueError, KeyError, IndexError, TypeError, InvalidOperation):
        return None
