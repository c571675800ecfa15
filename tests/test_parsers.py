"""Answer parsers: examples for every field type, the date rules, and property tests."""

from __future__ import annotations

import re
import tomllib
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flows.amounts import figure
from flows.parsers import example, format_value, parse_answer, parse_checklist
from flows.playbook import FieldSpec, FieldType, Option
from flows.reading import Invalid, Valid

# A Thursday; this week runs Mon 23 Nov .. Sun 29 Nov.
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
LANGS = ("zh", "en")
TYPES: tuple[FieldType, ...] = FieldType.__args__
OPTIONS = [
    Option(id="price", label={"zh": "价格", "en": "Price"}),
    Option(id="delivery", label={"zh": "交付周期", "en": "Delivery time"}),
    Option(id="support", label={"zh": "售后服务", "en": "After-sales support"}),
]
LOCALES = Path(__file__).resolve().parents[1] / "flows" / "locales"
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spec(type_: str, **extra) -> FieldSpec:
    if type_ in ("choice", "multichoice") and "options" not in extra:
        extra["options"] = OPTIONS
    return FieldSpec(id="x", type=type_, question={"zh": "q", "en": "q"}, **extra)


def parse(type_: str, text: str, **extra) -> Valid | Invalid:
    return parse_answer(spec(type_, **extra), text, now=NOW)


def code(result: Valid | Invalid) -> str | None:
    return result.code if isinstance(result, Invalid) else None


# -- valid input per type -------------------------------------------------------------------------
VALID = [
    ("text", "  客户关心交付周期 \n", "客户关心交付周期"),
    ("number", "1,200", 1200),
    ("number", "1200", 1200),
    ("number", "1.2万", 12000),
    ("number", "３０", 30),
    ("number", "五百", 500),
    ("number", "一千二", 1200),
    ("number", "2.5", 2.5),
    ("number", "-5", -5),
    ("money", "50万", 50_000_000),
    ("money", "50万元", 50_000_000),
    ("money", "1.2亿", 12_000_000_000),
    ("money", "¥500,000", 50_000_000),
    ("money", "￥500000", 50_000_000),
    ("money", "RMB 500000", 50_000_000),
    ("money", "500k", 50_000_000),
    ("money", "500K", 50_000_000),
    ("money", "1.5m", 150_000_000),
    ("money", "五十万", 50_000_000),
    ("money", "五十万元", 50_000_000),
    ("money", "500000.50", 50_000_050),
    ("money", "0.1", 10),
    ("money", "５０万", 50_000_000),
    # Reps talk in approximations; the qualifier is kept (flows.amounts).
    ("money", "大概300万", {"amount": 300_000_000, "approx": True}),
    ("money", "300万左右", {"amount": 300_000_000, "approx": True}),
    ("money", "约2M", {"amount": 200_000_000, "approx": True}),
    ("money", "about 2M", {"amount": 200_000_000, "approx": True}),
    ("money", "80-100万", {"low": 80_000_000, "high": 100_000_000}),
    ("money", "¥80～100万元", {"low": 80_000_000, "high": 100_000_000}),
    ("money", "估计100到150万", {"low": 100_000_000, "high": 150_000_000, "approx": True}),
    ("money", "8000-1万", {"low": 800_000, "high": 1_000_000}),
    ("money", "1万以上", {"low": 1_000_000}),
    ("money", "300多万", {"low": 300_000_000}),
    ("money", "10k+", {"low": 1_000_000}),
    ("money", "at least 500k", {"low": 50_000_000}),
    ("money", "100万以内", {"high": 100_000_000}),
    ("money", "capped at 2M", {"high": 200_000_000}),
    ("money", "软件150 实施80 运维40，合计270万", 270_000_000),
    ("money", "五六十万", {"low": 50_000_000, "high": 60_000_000, "approx": True}),
    ("money", "两三百万", {"low": 200_000_000, "high": 300_000_000, "approx": True}),
    ("number", "七八千", {"low": 7000, "high": 8000, "approx": True}),
    ("money", "software 1.5m, services 0.8m, total 2.3m", 230_000_000),
    ("number", "2000多", {"low": 2000}),
    ("number", "大概50人", {"amount": 50, "approx": True}),
    ("number", "20 users", 20),
    ("percent", "30", 30),
    ("percent", "30%", 30),
    ("percent", "３０％", 30),
    ("percent", "百分之三十", 30),
    ("percent", "12.5%", 12.5),
    ("yesno", "是", True),
    ("yesno", "是的", True),
    ("yesno", "对", True),
    ("yesno", "有", True),
    ("yesno", "YES", True),
    ("yesno", "ok", True),
    ("yesno", "否", False),
    ("yesno", "不是", False),
    ("yesno", "没有", False),
    ("yesno", "不", False),
    ("yesno", " No ", False),
    ("yesno", "n", False),
    # What people say, in both languages.
    ("yesno", "需要", True),
    ("yesno", "符合", True),
    ("yesno", "认同", True),
    ("yesno", "对 很需要", True),
    ("yesno", "没问题", True),
    ("yesno", "yeah", True),
    ("yesno", "不需要", False),
    ("yesno", "不用", False),
    ("yesno", "不符合", False),
    ("yesno", "nope", False),
    ("yesno", "not yet, next month", False),
    ("list", "价格，交付周期、售后;价格\n\n付款方式", ["价格", "交付周期", "售后", "付款方式"]),
    ("list", "price, delivery ; price", ["price", "delivery"]),
    ("list", "用友和金蝶", ["用友", "金蝶"]),
    ("list", "用友 金蝶 云学堂", ["用友", "金蝶", "云学堂"]),
    ("list", "时代光华还有云学堂", ["时代光华", "云学堂"]),
    ("list", "Acme and Globex", ["Acme", "Globex"]),
    ("list", "Acme Corp, Globex", ["Acme Corp", "Globex"]),
    ("list", "和利时", ["和利时"]),
    ("choice", "delivery", "delivery"),
    ("choice", "2", "delivery"),
    ("choice", "２", "delivery"),
    ("choice", "交付周期", "delivery"),
    ("choice", " delivery TIME ", "delivery"),
    ("multichoice", "价格、售后服务", ["price", "support"]),
    ("multichoice", "3，1；3", ["price", "support"]),
    ("multichoice", "1 3", ["price", "support"]),
    ("multichoice", "after-sales support\ndelivery time", ["delivery", "support"]),
    ("multichoice", "support/price", ["price", "support"]),
    ("milestone", "2026-12-15, 信息中心", {"date": "2026-12-15", "owner": "信息中心"}),
    ("milestone", "下周三，IT部", {"date": "2026-12-02", "owner": "IT部"}),
    ("milestone", "2026-12-15", {"date": "2026-12-15", "owner": None}),
    ("milestone", "Dec 15, 2026, IT, Finance", {"date": "2026-12-15", "owner": "IT, Finance"}),
    ("milestone", "in 3 days, IT", {"date": "2026-11-29", "owner": "IT"}),
    # No comma needed, and the date keeps its precision (flows.periods).
    ("milestone", "1月15日 采购中心", {"date": "2027-01-15", "owner": "采购中心"}),
    ("milestone", "1月15日采购中心", {"date": "2027-01-15", "owner": "采购中心"}),
    (
        "milestone",
        "15 Jan procurement office",
        {"date": "2027-01-15", "owner": "procurement office"},
    ),
    ("milestone", "3月底 招标办", {"date": "2027-03-late", "owner": "招标办"}),
    ("milestone", "Q2 - IT", {"date": "2027-Q2", "owner": "IT"}),
    ("date", "明年3月", "2027-03"),
    ("date", "2027年3月", "2027-03"),
    ("date", "春节后", "2027-02-mid"),
    ("date", "二季度", "2027-Q2"),
]


@pytest.mark.parametrize(("type_", "text", "expected"), VALID)
def test_valid_answers(type_, text, expected):
    assert parse(type_, text) == Valid(expected)


def test_money_is_exact_decimal_not_float():
    result = parse("money", "0.29")
    assert result == Valid(29) and isinstance(result.value, int)


def test_money_uses_the_currency_precision():
    assert parse_answer(spec("money"), "500", now=NOW, currency="JPY") == Valid(500)
    assert parse_answer(spec("money"), "$5.25", now=NOW, currency="USD") == Valid(525)


def test_number_is_int_when_integral():
    assert type(parse("number", "1.0").value) is int
    assert type(parse("number", "1.5").value) is float


# -- dates ---------------------------------------------------------------------------------------
DATES = [
    ("2026-12-01", "2026-12-01"),
    ("2026/12/1", "2026-12-01"),
    ("2026年12月1日", "2026-12-01"),
    ("二〇二六年十二月一日", "2026-12-01"),
    ("12月1日", "2026-12-01"),
    ("12月1号", "2026-12-01"),
    ("12/1", "2026-12-01"),
    ("Dec 1", "2026-12-01"),
    ("Dec 1, 2026", "2026-12-01"),
    ("1 December 2026", "2026-12-01"),
    ("明天", "2026-11-27"),
    ("后天", "2026-11-28"),
    ("tomorrow", "2026-11-27"),
    ("in 3 days", "2026-11-29"),
    ("3天后", "2026-11-29"),
    ("三天后", "2026-11-29"),
    # Weeks start on Monday; 下周/next = the following week, 本周/这周/this = the current week.
    ("下周三", "2026-12-02"),
    ("下星期三", "2026-12-02"),
    ("本周五", "2026-11-27"),
    ("这周五", "2026-11-27"),
    ("这个礼拜天", "2026-11-29"),
    ("下下周一", "2026-12-07"),
    ("上周五", "2026-11-20"),
    ("next Friday", "2026-12-04"),
    ("this Friday", "2026-11-27"),
    ("last Friday", "2026-11-20"),
    # A bare weekday is the next such day, today included.
    ("周五", "2026-11-27"),
    ("Thursday", "2026-11-26"),
    ("周三", "2026-12-02"),
    # Year omitted: this year unless more than 30 days ago, then next year.
    ("10月27日", "2026-10-27"),
    ("10月26日", "2027-10-26"),
    ("1月5日", "2027-01-05"),
]


@pytest.mark.parametrize(("text", "expected"), DATES)
def test_dates(text, expected):
    assert parse("date", text) == Valid(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-30", "parse.date_invalid"),
        ("13月1日", "parse.date_invalid"),
        ("2月30日", "parse.date_invalid"),
        ("someday", "parse.date_invalid"),
        ("5", "parse.date_invalid"),
        ("1.5m", "parse.date_invalid"),
        ("1999-12-31", "parse.date_out_of_range"),
        ("2101-01-01", "parse.date_out_of_range"),
        ("Dec 1, 1999", "parse.date_out_of_range"),
    ],
)
def test_bad_dates(text, expected):
    assert code(parse("date", text)) == expected


@pytest.mark.parametrize("text", ["¥1", "¥-30", "€12", "$5", "£3", "¥1万", "-30", "+3", "½", "²"])
def test_amounts_and_signs_are_never_dates(text):
    assert code(parse("date", text)) == "parse.date_invalid"
    assert code(parse("milestone", f"{text}, IT")) == "parse.date_invalid"


def test_milestone_with_impossible_date():
    assert code(parse("milestone", "2026-02-30，IT部")) == "parse.date_invalid"
    assert code(parse("milestone", "，IT部")) == "parse.date_invalid"


# -- invalid input ------------------------------------------------------------------------------
@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("text", ["", "   \n\t", "\x00\x01"])
def test_empty_text(type_, text):
    assert code(parse(type_, text)) == "parse.empty"


@pytest.mark.parametrize("type_", TYPES)
def test_huge_text(type_):
    result = parse(type_, "1" * 10_000)
    assert code(result) == "parse.too_long" and result.params["limit"] == 1000


def test_text_limit_is_inclusive():
    assert parse("text", "字" * 1000) == Valid("字" * 1000)


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        ("number", "parse.number_invalid"),
        ("money", "parse.money_invalid"),
        ("percent", "parse.percent_invalid"),
        ("date", "parse.date_invalid"),
        ("milestone", "parse.date_invalid"),
        ("choice", "parse.choice_invalid"),
        ("multichoice", "parse.multichoice_unknown"),
        ("yesno", "parse.yesno_invalid"),
        ("text", "parse.no_words"),
        ("list", "parse.no_words"),
    ],
)
def test_emoji_only(type_, expected):
    assert code(parse(type_, "🙂🙂")) == expected


@pytest.mark.parametrize(
    ("type_", "text", "expected"),
    [
        ("number", "a lot", "parse.number_invalid"),
        ("number", "1,2,3", "parse.number_invalid"),
        ("number", "10" * 10, "parse.number_invalid"),  # beyond any sane amount
        ("money", "很多", "parse.money_invalid"),
        ("money", "-500", "parse.money_negative"),
        ("money", "负五十万", "parse.money_negative"),
        ("money", "$500", "parse.money_invalid"),  # not the playbook's currency
        ("money", "100万-80万", "parse.money_invalid"),  # a range runs upwards
        ("money", "软件150 实施80", "parse.money_invalid"),  # parts without a total: not added up
        ("money", "至少100万以内", "parse.money_invalid"),
        ("money", "五七十万", "parse.money_invalid"),  # not neighbours: no range is guessed
        ("percent", "half", "parse.percent_invalid"),
        ("percent", "120%", "parse.out_of_range"),
        ("percent", "-1", "parse.out_of_range"),
        ("choice", "4", "parse.choice_invalid"),
        ("choice", "价格、售后服务", "parse.choice_invalid"),
        ("multichoice", "价格、质量", "parse.multichoice_unknown"),
        ("yesno", "maybe", "parse.yesno_invalid"),
        ("yesno", "有点需要", "parse.yesno_invalid"),  # a hedge is neither
        ("yesno", "可能吧", "parse.yesno_invalid"),
        ("yesno", "nothing", "parse.yesno_invalid"),  # "no" starts it, but as part of a word
        ("yesno", "yesterday", "parse.yesno_invalid"),
        ("list", "，、；", "parse.empty"),
        ("list", "a, " + "b" * 201, "parse.item_too_long"),
        ("stakeholder", "王总", "parse.use_steps"),
    ],
)
def test_wrong_input(type_, text, expected):
    assert code(parse(type_, text)) == expected


def test_bounds():
    assert parse("number", "5", min=1, max=10) == Valid(5)
    result = parse("number", "11", min=1, max=10)
    assert code(result) == "parse.out_of_range"
    assert result.message("en").startswith("Please give a value between 1 and 10.")
    assert code(parse("number", "0", min=1)) == "parse.too_small"
    assert code(parse("number", "1000", max=100)) == "parse.too_large"
    assert code(parse("percent", "60", max=50)) == "parse.out_of_range"


def test_money_bounds_are_major_units_and_shown_as_money():
    assert parse("money", "10万", min=100000) == Valid(10_000_000)
    result = parse("money", "5万", min=100000)
    assert code(result) == "parse.too_small"
    assert "10万" in result.message("zh")


def test_max_items():
    assert code(parse("list", "a, b, c", max_items=2)) == "parse.too_many"
    assert code(parse("multichoice", "1 2 3", max_items=2)) == "parse.too_many"


def test_messages_show_an_example_in_the_reply_language():
    result = parse("money", "很多")
    assert result.message("zh") == "这不像是一个金额。例如：50万"
    assert result.message("en") == "That doesn't look like an amount. For example: 500k"


def test_playbook_example_wins():
    custom = spec("money", example={"zh": "80万", "en": "800k"})
    result = parse_answer(custom, "?", now=NOW)
    assert result.message("zh").endswith("例如：80万")
    assert example(custom, "en") == "800k"


def test_choice_error_lists_labels_per_language():
    result = parse("choice", "quality")
    assert "价格 / 交付周期 / 售后服务" in result.message("zh")
    assert "Price / Delivery time / After-sales support" in result.message("en")


def test_multichoice_error_names_the_item():
    assert "“质量”" in parse("multichoice", "价格、质量").message("zh")


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("lang", LANGS)
def test_every_invalid_shows_the_example(type_, lang):
    result = parse(type_, "🙂🙂" if type_ not in ("text", "list") else "")
    assert isinstance(result, Invalid)
    if type_ != "stakeholder":
        assert example(spec(type_), lang) in result.message(lang)


@pytest.mark.parametrize("type_", [t for t in TYPES if t != "stakeholder"])
@pytest.mark.parametrize("lang", LANGS)
def test_default_examples_parse(type_, lang):
    assert isinstance(parse(type_, example(spec(type_), lang)), Valid)


@pytest.mark.parametrize(
    ("text", "value", "evidence"),
    [
        ("否，要看郑总那边技术评审", False, "要看郑总那边技术评审"),
        ("对 很需要", True, "很需要"),
        ("Yes - CIO Wang Signed It Off", True, "CIO Wang Signed It Off"),  # the rep's own case
        ("需要", True, None),
    ],
)
def test_yes_or_no_keeps_the_rest_as_evidence(text, value, evidence):
    result = parse("yesno", text)
    assert result == Valid(value) and result.evidence == evidence


def test_a_written_out_sum_keeps_its_parts_as_evidence():
    result = parse("money", "软件150 实施80 运维40，合计270万")
    assert result.value == 270_000_000 and result.evidence == "软件150 实施80 运维40，合计270万"
    assert parse("money", "合计270万").evidence is None


# -- checklist ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("是，客户已口头确认", {"checked": True, "note": "客户已口头确认"}),
        ("no", {"checked": False, "note": None}),
        ("不是：还没签", {"checked": False, "note": "还没签"}),
        ("yes - confirmed by email", {"checked": True, "note": "confirmed by email"}),
        ("ＹＥＳ， ok", {"checked": True, "note": "ok"}),
        ("是的。", {"checked": True, "note": None}),
        ("符合，合同已经盖章", {"checked": True, "note": "合同已经盖章"}),
        ("Nope, still waiting on legal", {"checked": False, "note": "still waiting on legal"}),
    ],
)
def test_checklist(text, expected):
    assert parse_checklist(text) == Valid(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "parse.empty"),
        ("yesterday", "parse.checklist_invalid"),
        ("maybe, later", "parse.checklist_invalid"),
        ("y" * 10_000, "parse.too_long"),
    ],
)
def test_checklist_invalid(text, expected):
    result = parse_checklist(text)
    assert code(result) == expected
    assert "是，客户已口头确认" in result.message("zh")


# -- display --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("type_", "value", "zh", "en"),
    [
        ("money", 50_000_000, "50万", "CN¥500,000.00"),
        ("number", 1200, "1,200", "1,200"),
        ("percent", 12.5, "12.5%", "12.5%"),
        ("date", "2026-12-01", "2026年12月1日", "Dec 1, 2026"),
        (
            "milestone",
            {"date": "2026-12-01", "owner": "IT"},
            "2026年12月1日，IT",
            "Dec 1, 2026, IT",
        ),
        ("choice", "delivery", "交付周期", "Delivery time"),
        ("multichoice", ["price", "support"], "价格、售后服务", "Price, After-sales support"),
        ("yesno", True, "是", "Yes"),
        ("yesno", False, "否", "No"),
        ("list", ["a", "b"], "a、b", "a, b"),
    ],
)
def test_format_value(type_, value, zh, en):
    assert format_value(spec(type_), value, "zh") == zh
    assert format_value(spec(type_), value, "en") == en


def test_format_stakeholder():
    person = {"name": "王总", "title": "CIO", "role": "decision_maker"}
    assert format_value(spec("stakeholder"), [person], "zh") == "王总 · CIO · 决策者"


# -- properties -----------------------------------------------------------------------------------
DATEISH = st.text(
    alphabet="0123456789,.-/+%¥元万亿kmK 年月日号周下本这上个一二三十天后 ，、：", max_size=30
)


@QUICK
@given(type_=st.sampled_from(TYPES), text=st.one_of(st.text(max_size=300), DATEISH))
def test_parse_answer_never_raises(type_, text):
    result = parse(type_, text, min=0, max=1000) if type_ == "number" else parse(type_, text)
    assert isinstance(result, (Valid, Invalid))
    if isinstance(result, Invalid):
        assert result.message("zh") and result.message("en")


@QUICK
@given(text=st.text(max_size=300))
def test_parse_checklist_never_raises(text):
    assert isinstance(parse_checklist(text), (Valid, Invalid))


def assert_round_trip(type_: str, value, **extra) -> None:
    field = spec(type_)
    for lang in LANGS:
        shown = format_value(field, value, lang, **extra)
        assert parse_answer(field, shown, now=NOW, **extra) == Valid(value), (lang, shown)


@QUICK
@given(minor=st.integers(0, 10**15 - 1), currency=st.sampled_from(["CNY", "USD", "JPY"]))
def test_money_round_trip(minor, currency):
    assert_round_trip("money", minor, currency=currency)


AMOUNT_SHAPES = st.one_of(
    st.builds(lambda n: {"amount": n, "approx": True}, st.integers(0, 10**14)),
    st.builds(lambda n: {"low": n}, st.integers(0, 10**14)),
    st.builds(lambda n: {"high": n}, st.integers(0, 10**14)),
    st.builds(
        lambda low, gap, approx: (
            {"low": low, "high": low + gap} | ({"approx": True} if approx else {})
        ),
        st.integers(0, 10**14),
        st.integers(1, 10**14),
        st.booleans(),
    ),
)


@QUICK
@given(value=AMOUNT_SHAPES)
def test_qualified_amounts_round_trip(value):
    assert_round_trip("money", value)
    assert_round_trip("number", value)


def test_one_figure_for_totals_never_more_than_said():
    assert figure(270_000_000) == 270_000_000
    assert figure({"amount": 300, "approx": True}) == 300
    assert figure({"low": 80, "high": 100}) == 90
    assert figure({"low": 2000}) == 2000
    assert figure({"high": 100}) == 100
    assert figure(None) is None and figure(True) is None


@QUICK
@given(
    number=st.one_of(
        st.integers(-(10**12), 10**12),
        st.decimals(-(10**9), 10**9, places=4, allow_nan=False, allow_infinity=False),
    )
)
def test_number_round_trip(number):
    first = parse("number", str(number))
    assert isinstance(first, Valid)
    assert_round_trip("number", first.value)


@QUICK
@given(st.decimals(0, 100, places=2, allow_nan=False, allow_infinity=False))
def test_percent_round_trip(number):
    assert_round_trip("percent", parse("percent", str(number)).value)


@QUICK
@given(st.dates(date(2000, 1, 1), date(2100, 12, 31)))
def test_date_round_trip(day):
    assert_round_trip("date", day.isoformat())


WORD = st.text(alphabet="abcdefgxyzABC信息中心部门王总 ", min_size=1, max_size=12).map(str.strip)


@QUICK
@given(day=st.dates(date(2000, 1, 1), date(2100, 12, 31)), owner=st.one_of(st.none(), WORD))
def test_milestone_round_trip(day, owner):
    assert_round_trip("milestone", {"date": day.isoformat(), "owner": owner or None})


# A name that could be typed as one item: not two Chinese names side by side ("信息 中心" is
# two, and so is "信息和中心"), which typing reads as two items.
ONE_ITEM = WORD.filter(lambda w: bool(w) and not re.search(r"[一-鿿]\s+[一-鿿]|[一-鿿]{2}和", w))


@QUICK
@given(st.lists(ONE_ITEM, min_size=1, max_size=6, unique=True))
def test_list_round_trip(items):
    assert_round_trip("list", items)


@QUICK
@given(st.text(max_size=200))
def test_text_round_trip(text):
    first = parse("text", text)
    assume(isinstance(first, Valid))
    assert_round_trip("text", first.value)


@QUICK
@given(st.sets(st.sampled_from([o.id for o in OPTIONS]), min_size=1))
def test_choice_round_trips(ids):
    assert_round_trip("choice", sorted(ids)[0])
    assert_round_trip("multichoice", [o.id for o in OPTIONS if o.id in ids])


@pytest.mark.parametrize("value", [True, False])
def test_yesno_round_trip(value):
    assert_round_trip("yesno", value)


# -- locale files ---------------------------------------------------------------------------------
PLACEHOLDER = re.compile(r"\{(\w*)")


def _strings(lang: str) -> dict[str, dict[str, str]]:
    return {
        path.stem: tomllib.loads(path.read_text(encoding="utf-8"))
        for path in sorted((LOCALES / lang).glob("*.toml"))
    }


def test_locales_have_the_same_keys_and_placeholders():
    zh, en = _strings("zh"), _strings("en")
    assert sorted(zh) == sorted(en), "each topic needs a zh and an en file"
    for topic in zh:
        assert sorted(zh[topic]) == sorted(en[topic]), topic
        for key, text in zh[topic].items():
            placeholders = set(PLACEHOLDER.findall(text))
            assert placeholders == set(PLACEHOLDER.findall(en[topic][key])), f"{topic}.{key}"
