"""Turn what a rep types into a normalised answer, or a friendly error that shows an example.

``parse_answer`` never raises: every outcome is ``Valid(value)`` with a JSON-serialisable value, or
``Invalid(code, params)`` whose ``message(lang)`` is ready to send. ``format_value`` shows a stored
value so that reading it back gives the same value (the bot echoes answers and lets reps edit them).

Invalid params are plain data. A param that depends on the reply language (the example, option
labels, formatted bounds) is a table ``{lang: text}``, rendered by ``message`` in that language.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from flows.amounts import Amount, from_json, has_parts, read_amount, to_json
from flows.choices import pick_many, pick_one
from flows.dates import FIRST_YEAR, LAST_YEAR, DateProblem, show_date
from flows.i18n import normalise_language, t
from flows.numbers import (
    plain,
    read_number,
    read_percent,
    show_money,
    show_number,
    strip_counter,
    strip_currency,
    to_minor,
)
from flows.periods import Period, read_period, show_period
from flows.playbook import FieldSpec, Option
from flows.reading import Invalid, Valid, clean, fold, has_words, per_language
from flows.stakeholder import describe
from flows.yesno import read_yes_no

DEFAULT_CURRENCY = "CNY"
MAX_TEXT = 1000
MAX_ITEM = 200
# A date inside a milestone answer is never longer than this ("2026年12月15日", "Dec 15, 2026").
_MAX_DATE_CHARS = 40
_BABEL_LOCALES = {"zh": "zh_CN", "en": "en_US"}


# -- text preparation -----------------------------------------------------------------------------
# -- public API -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Context:
    now: datetime
    currency: str


def parse_answer(
    spec: FieldSpec, text: str, *, now: datetime, currency: str = DEFAULT_CURRENCY
) -> Valid | Invalid:
    """Read one answer. ``now`` is aware, in the member's zone; ``currency`` is the playbook's."""
    text = clean(text)
    if not text:
        return _fail(spec, "parse.empty")
    if len(text) > MAX_TEXT:
        return _fail(spec, "parse.too_long", limit=MAX_TEXT)
    return _PARSERS[spec.type](spec, text, _Context(now, currency))


def parse_checklist(text: str) -> Valid | Invalid:
    """``是，客户已口头确认`` → ``{"checked": True, "note": "客户已口头确认"}``."""
    text = clean(text)
    shown = {"example": per_language(lambda lang: t(lang, "parse.example_checklist"))}
    if not text:
        return Invalid("parse.empty", shown)
    if len(text) > MAX_TEXT:
        return Invalid("parse.too_long", {**shown, "limit": MAX_TEXT})
    said = read_yes_no(text)
    if said is None:
        return Invalid("parse.checklist_invalid", shown)
    return Valid({"checked": said[0], "note": said[1]})


def format_value(
    spec: FieldSpec, value: Any, lang: str, *, currency: str = DEFAULT_CURRENCY
) -> str:
    """Display text for a stored value; ``parse_answer`` reads it back to the same value."""
    return _FORMATTERS[spec.type](spec, value, normalise_language(lang), currency)


def example(spec: FieldSpec, lang: str) -> str:
    """The playbook's example for the field, else one that fits its type."""
    lang = normalise_language(lang)
    if spec.example and spec.example.get(lang):
        return spec.example[lang]
    if spec.type == "choice" and spec.options:
        return label(spec.options[0], lang)
    if spec.type == "multichoice" and spec.options:
        return t(lang, "parse.list_separator").join(label(o, lang) for o in spec.options[:2])
    return t(lang, f"parse.example_{spec.type}")


def label(option: Option, lang: str) -> str:
    return option.label.get(lang) or next(iter(option.label.values()))


def _fail(spec: FieldSpec, code: str, **params: Any) -> Invalid:
    return Invalid(code, {"example": per_language(lambda lang: example(spec, lang)), **params})


# -- parsers per type -----------------------------------------------------------------------------
def _text(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    return Valid(text) if has_words(text) else _fail(spec, "parse.no_words")


def _number(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    amount = read_amount(strip_counter(fold(text)), read_number)
    if amount is None:
        return _fail(spec, "parse.number_invalid")
    return _bounded_amount(spec, amount, _show_number) or Valid(to_json(amount, plain))


def _money(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    amount = read_amount(fold(text), lambda end: read_number(strip_currency(end, ctx.currency)))
    if amount is None:
        return _fail(spec, "parse.money_invalid")
    if any(end is not None and end < 0 for end in (amount.low, amount.high)):
        return _fail(spec, "parse.money_negative")

    def show(bound: Decimal, lang: str) -> str:
        return show_money(to_minor(bound, ctx.currency), ctx.currency, _BABEL_LOCALES[lang])

    minor = partial(to_minor, currency=ctx.currency)
    evidence = text if has_parts(fold(text)) else None  # "软件150 实施80，合计230万"
    return _bounded_amount(spec, amount, show) or Valid(to_json(amount, minor), evidence)


def _bounded_amount(
    spec: FieldSpec, amount: Amount, show: Callable[[Decimal, str], str]
) -> Invalid | None:
    for end in (amount.low, amount.high):
        if end is not None and (problem := _bounded(spec, end, spec.min, spec.max, show)):
            return problem
    return None


def _percent(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    value = read_percent(fold(text))
    if value is None:
        return _fail(spec, "parse.percent_invalid")
    low = 0 if spec.min is None else spec.min
    high = 100 if spec.max is None else spec.max
    return _bounded(spec, value, low, high, _show_percent) or Valid(plain(value))


def _bounded(
    spec: FieldSpec,
    value: Decimal,
    low: float | None,
    high: float | None,
    show: Callable[[Decimal, str], str],
) -> Invalid | None:
    """An Invalid naming the bounds if ``value`` is outside them (bounds shown per language)."""
    low_d = None if low is None else Decimal(str(low))
    high_d = None if high is None else Decimal(str(high))
    if (low_d is None or value >= low_d) and (high_d is None or value <= high_d):
        return None
    bounds = {
        name: per_language(lambda lang, b=bound: show(b, lang))
        for name, bound in (("min", low_d), ("max", high_d))
        if bound is not None
    }
    if len(bounds) == 2:
        code = "parse.out_of_range"
    else:
        code = "parse.too_small" if "min" in bounds else "parse.too_large"
    return _fail(spec, code, **bounds)


def _date(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    try:
        return Valid(read_period(fold(text), ctx.now).key)
    except DateProblem as problem:
        return _date_problem(spec, problem)


def _date_problem(spec: FieldSpec, problem: DateProblem) -> Invalid:
    years = {"first": FIRST_YEAR, "last": LAST_YEAR}
    return _fail(spec, problem.code, **(years if problem.code == "parse.date_out_of_range" else {}))


def _milestone(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    try:
        when, owner = _split_milestone(text, ctx.now)
    except DateProblem as problem:
        return _date_problem(spec, problem)
    if owner and len(owner) > MAX_ITEM:
        return _fail(spec, "parse.item_too_long", limit=MAX_ITEM)
    return Valid({"date": when.key, "owner": owner})


_COMMA = re.compile(r"[,，]")


def _split_milestone(text: str, now: datetime) -> tuple[Period, str | None]:
    """A date or period, then who owns it, with or without a comma: ``1月15日 采购中心``,
    ``15 Jan procurement office``, ``Dec 15, 2026, IT``. The date is the longest start of the
    text read exactly; failing that, all before the first comma, read leniently ("in 3 days")."""
    for cut in range(min(len(text), _MAX_DATE_CHARS), 0, -1):
        if not _word_boundary(text, cut):
            continue
        try:
            return read_period(fold(text[:cut]), now, fallback=False), _owner(text[cut:])
        except DateProblem:
            continue
    head, _, tail = _COMMA.sub(",", text, count=1).partition(",")
    return read_period(fold(head), now), _owner(tail)


def _word_boundary(text: str, cut: int) -> bool:
    """Where an owner may start: the end, a space or comma, or a Chinese character ("1月15日采购
    中心"); never inside a word or a number ("march 3" is not the start of "march 31")."""
    if cut >= len(text):
        return True
    after = text[cut]
    return after in _OWNER_STARTS or (not after.isascii() and after.isalpha())


_OWNER_STARTS = " \t,，:：;；、"  # not "-" or "/": those are inside dates
_OWNER_SEPARATORS = _OWNER_STARTS + "-–—"


def _owner(text: str) -> str | None:
    return text.strip().lstrip(_OWNER_SEPARATORS).strip() or None


def _choice(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    found = pick_one(text, spec.options)
    if found is None:
        return _fail(spec, "parse.choice_invalid", options=_option_list(spec.options))
    return Valid(*found)


def _multichoice(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    picked = pick_many(text, spec.options)
    if picked.unknown is not None:
        options = _option_list(spec.options)
        return _fail(spec, "parse.multichoice_unknown", item=picked.unknown, options=options)
    if not picked.ids:
        return _fail(spec, "parse.empty")
    if spec.max_items and len(picked.ids) > spec.max_items:
        return _fail(spec, "parse.too_many", limit=spec.max_items)
    return Valid(picked.ids, picked.evidence)


def _option_list(options: Sequence[Option]) -> dict[str, str]:
    return per_language(
        lambda lang: t(lang, "parse.option_separator").join(label(o, lang) for o in options)
    )


def _yesno(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    said = read_yes_no(text)
    return _fail(spec, "parse.yesno_invalid") if said is None else Valid(*said)


# Between items: punctuation, "and", 和 / 还有 / 以及 between two names of two characters or
# more (so 和利时 stays whole), and spaces between Chinese names.
_LIST_SEPARATORS = re.compile(
    r"[,，、;；\n]|\s+(?:and|&)\s+"
    r"|(?<=[\u4e00-\u9fff]{2})(?:和|还有|以及)(?=[\u4e00-\u9fff]{2})"
    r"|(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])"
)


def _list(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    pieces = (piece.strip() for piece in _LIST_SEPARATORS.split(text))
    items = list(dict.fromkeys(piece for piece in pieces if piece))  # dedupe, keep order
    if not items:
        return _fail(spec, "parse.empty")
    if spec.max_items and len(items) > spec.max_items:
        return _fail(spec, "parse.too_many", limit=spec.max_items)
    if any(len(item) > MAX_ITEM for item in items):
        return _fail(spec, "parse.item_too_long", limit=MAX_ITEM)
    if not all(has_words(item) for item in items):
        return _fail(spec, "parse.no_words")
    return Valid(items)


def _stakeholder(spec: FieldSpec, text: str, ctx: _Context) -> Valid | Invalid:
    # Stakeholders are asked part by part (flows.stakeholder); a single text cannot answer one.
    return _fail(spec, "parse.use_steps")


_PARSERS: dict[str, Callable[[FieldSpec, str, _Context], Valid | Invalid]] = {
    "text": _text,
    "number": _number,
    "money": _money,
    "percent": _percent,
    "date": _date,
    "milestone": _milestone,
    "choice": _choice,
    "multichoice": _multichoice,
    "yesno": _yesno,
    "list": _list,
    "stakeholder": _stakeholder,
}


# -- display --------------------------------------------------------------------------------------
def _show_number(value: Any, lang: str) -> str:
    return show_number(value, _BABEL_LOCALES[lang])


def _show_amount(value: Any, lang: str, show_one: Callable[[Decimal], str]) -> str:
    """``约300万`` · ``80–100万`` · ``2,000以上`` · ``about CN¥3,000,000.00``; reads back."""
    amount = from_json(value)
    low = None if amount.low is None else show_one(amount.low)
    high = None if amount.high is None else show_one(amount.high)
    if amount.exact:
        return str(low)
    if low is not None and high is not None and low != high:
        unit = re.search(r"[^\d]+$", high)  # 80–100万, not 80万–100万
        if unit and low.endswith(unit[0]) and low[: -len(unit[0])][-1:].isdigit():
            low = low[: -len(unit[0])]
        shown = t(lang, "parse.amount_range", low=low, high=high)
    elif low is not None and high is not None:
        return t(lang, "parse.amount_approx", value=low)
    elif low is not None:
        shown = t(lang, "parse.amount_floor", value=low)
    else:
        shown = t(lang, "parse.amount_ceiling", value=high)
    return t(lang, "parse.amount_approx", value=shown) if amount.approx else shown


def _show_money_value(value: Any, lang: str, currency: str) -> str:
    def one(minor: Decimal) -> str:
        return show_money(int(minor), currency, _BABEL_LOCALES[lang])

    return _show_amount(value, lang, one)


def _show_percent(value: Any, lang: str) -> str:
    return f"{_show_number(value, lang)}%"


def _show_milestone(value: dict[str, Any], lang: str) -> str:
    shown = show_period(value["date"], lang)
    owner = value.get("owner")
    return f"{shown}{t(lang, 'parse.owner_separator')}{owner}" if owner else shown


def _show_choices(spec: FieldSpec, ids: Sequence[str], lang: str) -> str:
    by_id = {o.id: o for o in spec.options}
    return t(lang, "parse.list_separator").join(
        label(by_id[i], lang) if i in by_id else str(i) for i in ids
    )


def _show_stakeholders(value: dict | list, lang: str) -> str:
    people = value if isinstance(value, list) else [value]
    return "\n".join(describe(person, lang) for person in people)


def format_money(minor: int, lang: str, currency: str = DEFAULT_CURRENCY) -> str:
    """An amount in minor units as the member reads it: ``¥500,000.00``."""
    return show_money(minor, currency, _BABEL_LOCALES[lang])


def format_date(iso: str, lang: str) -> str:
    """An ISO date as the member reads it: ``2026年12月1日`` · ``Dec 1, 2026``."""
    return show_date(iso, _BABEL_LOCALES[lang])


_Formatter = Callable[[FieldSpec, Any, str, str], str]
_FORMATTERS: dict[str, _Formatter] = {
    "text": lambda spec, v, lang, cur: str(v),
    "number": lambda spec, v, lang, cur: _show_amount(v, lang, partial(_show_number, lang=lang)),
    "money": lambda spec, v, lang, cur: _show_money_value(v, lang, cur),
    "percent": lambda spec, v, lang, cur: _show_percent(v, lang),
    "date": lambda spec, v, lang, cur: show_period(v, lang),
    "milestone": lambda spec, v, lang, cur: _show_milestone(v, lang),
    "choice": lambda spec, v, lang, cur: _show_choices(spec, [v], lang),
    "multichoice": lambda spec, v, lang, cur: _show_choices(spec, v, lang),
    "yesno": lambda spec, v, lang, cur: t(lang, "parse.yes" if v else "parse.no"),
    "list": lambda spec, v, lang, cur: t(lang, "parse.list_separator").join(v),
    "stakeholder": lambda spec, v, lang, cur: _show_stakeholders(v, lang),
}
