"""Stakeholders, asked part by part."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.reading import Invalid, Valid
from flows.stakeholder import PARTS, describe, option_label, parse_part, part_prompt

NAME, TITLE, ROLE, INFLUENCE, ATTITUDE = PARTS
LANGS = ("zh", "en")


def test_parts_in_asking_order():
    assert [p.id for p in PARTS] == ["name", "title", "role", "influence", "attitude"]
    assert ROLE.options == (
        "decision_maker",
        "project_manager",
        "team_member",
        "outside_expert",
        "other",
    )
    assert NAME.options == TITLE.options == ()


@pytest.mark.parametrize(
    ("part", "text", "expected"),
    [
        (NAME, "  王总 ", "王总"),
        (TITLE, "CIO", "CIO"),
        (ROLE, "decision_maker", "decision_maker"),
        (ROLE, "决策者", "decision_maker"),
        (ROLE, "Outside Expert", "outside_expert"),
        (ROLE, "2", "project_manager"),
        (ROLE, "５", "other"),
        (INFLUENCE, "高", "high"),
        (INFLUENCE, "中", "medium"),
        (INFLUENCE, "低", "low"),
        (INFLUENCE, "HIGH", "high"),
        (INFLUENCE, "medium", "medium"),
        (INFLUENCE, "l", "low"),
        (INFLUENCE, "m", "medium"),
        (INFLUENCE, "h", "high"),
        (ATTITUDE, "+2", 2),
        (ATTITUDE, "2", 2),
        (ATTITUDE, "-1", -1),
        (ATTITUDE, "−1", -1),  # unicode minus
        (ATTITUDE, "２", 2),
        (ATTITUDE, "＋３", 3),
        (ATTITUDE, "0", 0),
        (ATTITUDE, "-3", -3),
        (ATTITUDE, "+2 支持", 2),
        (ATTITUDE, "支持", 2),
        (ATTITUDE, "champion", 3),
    ],
)
def test_parse_part(part, text, expected):
    result = parse_part(part, text)
    assert result == Valid(expected)
    assert type(result.value) is type(expected)


@pytest.mark.parametrize(
    ("part", "text", "expected"),
    [
        (NAME, "", "parse.empty"),
        (NAME, "🙂" * 10_000, "parse.too_long"),
        (ROLE, "boss", "parse.choice_invalid"),
        (ROLE, "6", "parse.choice_invalid"),
        (INFLUENCE, "🙂🙂", "parse.choice_invalid"),
        (ATTITUDE, "4", "stakeholder.attitude_invalid"),
        (ATTITUDE, "-4", "stakeholder.attitude_invalid"),
        (ATTITUDE, "great", "stakeholder.attitude_invalid"),
        (ATTITUDE, "   ", "parse.empty"),
    ],
)
def test_parse_part_invalid(part, text, expected):
    result = parse_part(part, text)
    assert isinstance(result, Invalid) and result.code == expected


def test_invalid_messages_show_options_and_example():
    result = parse_part(ROLE, "boss")
    assert "决策者 / 项目负责人" in result.message("zh")
    assert result.message("en").endswith("For example: Decision maker")
    assert parse_part(ATTITUDE, "9").message("zh").endswith("例如：+2")


@pytest.mark.parametrize("part", [p for p in PARTS if p.options])
@pytest.mark.parametrize("lang", LANGS)
def test_every_label_parses_back(part, lang):
    for option in part.options:
        expected = int(option) if part.id == "attitude" else option
        assert parse_part(part, option_label(part, option, lang)) == Valid(expected)


@pytest.mark.parametrize("lang", LANGS)
def test_prompts_and_labels_exist(lang):
    for part in PARTS:
        assert part_prompt(part, lang).strip()
    assert part_prompt(TITLE, "zh") == "这个人的职务是？"
    assert part_prompt(TITLE, "en") == "What is their title?"
    assert option_label(ATTITUDE, "+2", "zh") == "+2 支持"
    assert option_label(INFLUENCE, "high", "en") == "High"


def test_describe():
    person = {
        "name": "王总",
        "title": "CIO",
        "role": "decision_maker",
        "influence": "high",
        "attitude": 2,
    }
    assert describe(person, "zh") == "王总 · CIO · 决策者 · 影响力高 · 态度 +2"
    assert describe(person, "en") == "王总 · CIO · Decision maker · high influence · attitude +2"
    assert describe({**person, "attitude": 0}, "zh").endswith("态度 0")
    assert describe({**person, "attitude": -1}, "en").endswith("attitude -1")


def test_describe_a_partial_stakeholder():
    assert describe({"name": "Lisa", "role": "other"}, "en") == "Lisa · Other"


@settings(max_examples=60, deadline=None)
@given(part=st.sampled_from(PARTS), text=st.text(max_size=200))
def test_parse_part_never_raises(part, text):
    result = parse_part(part, text)
    assert isinstance(result, (Valid, Invalid))
    if isinstance(result, Invalid):
        assert result.message("zh") and result.message("en")
