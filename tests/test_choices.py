"""Typed answers to choices (flows.choices) on the shipped playbook's own options."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from flows.parsers import parse_answer
from flows.playbook import Option, PlaybookError, load_playbook, shipped_playbook_path
from flows.reading import Invalid, Valid

PLAYBOOK = load_playbook()
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def answer(field_id: str, text: str) -> Valid | Invalid:
    return parse_answer(PLAYBOOK.field(field_id), text, now=NOW)


@pytest.mark.parametrize(
    ("field_id", "text", "value", "evidence"),
    [
        ("industry", "电信运营商", "telecom", "电信运营商"),
        ("industry", "广东移动", "telecom", "广东移动"),
        ("industry", "城商行，南京银行", "finance", "南京银行"),  # an alias, then more words
        ("industry", "金融", "finance", None),
        ("industry", "其他：制造业", "other", "制造业"),
        ("industry", "Other: manufacturing", "other", "manufacturing"),
        ("industry", "a regional bank", "finance", "a regional bank"),
        ("current_system", "有但不完善", "incomplete", "有但不完善"),
        ("current_system", "有系统，不好用", "works_badly", "有系统，不好用"),
        ("current_system", "有，且应用效果好", "works_well", None),
        ("deployment", "要求私有化部署", "private", "要求私有化部署"),
        ("deployment", "SaaS", "saas", None),
    ],
)
def test_choices_read_synonyms_and_phrases(field_id, text, value, evidence):
    result = answer(field_id, text)
    assert result == Valid(value) and result.evidence == evidence


@pytest.mark.parametrize(
    ("field_id", "text", "value", "evidence"),
    [
        ("tech_database", "Oracle、MySQL", ["oracle", "mysql"], None),
        (
            "tech_database",
            "要信创，达梦或者oceanbase",
            ["dameng", "oceanbase", "other"],
            "要信创，达梦或者oceanbase",
        ),
        ("tech_database", "dm8 and postgres", ["dameng", "postgresql"], None),
        ("tech_database", "1 3", ["oracle", "mysql"], None),
        ("tech_platform", "银河麒麟和统信", ["kylin", "uos"], None),  # aliases are names
        ("tech_platform", "Linux, Windows", ["linux", "windows"], None),
    ],
)
def test_multiple_choices_mix_options_and_words(field_id, text, value, evidence):
    result = answer(field_id, text)
    assert result == Valid(value) and result.evidence == evidence


@pytest.mark.parametrize(
    ("field_id", "text"),
    [
        ("industry", "金融和电信"),  # two options: not guessed between
        ("industry", "制造业"),  # names none: "其他" must be said
        ("tech_management", "速度快"),  # names none, and there is no "other"
        ("deployment", "mother"),  # Latin names match whole words only
    ],
)
def test_what_names_no_single_option_is_asked_again(field_id, text):
    assert isinstance(answer(field_id, text), Invalid)


def test_a_name_shared_by_two_options_is_a_playbook_problem(tmp_path):
    shipped = shipped_playbook_path().read_text(encoding="utf-8")
    clash = shipped.replace('aliases = ["政务"', 'aliases = ["运营商", "政务"', 1)  # telecom's
    assert clash != shipped
    (tmp_path / "team.toml").write_text(clash, encoding="utf-8")
    with pytest.raises(PlaybookError) as error:
        load_playbook(tmp_path / "team.toml")
    assert "field 'industry' › '运营商' names several options (gov, telecom)" in str(error.value)


def test_aliases_are_optional():
    assert Option(id="a", label={"zh": "甲", "en": "A"}).aliases == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ('cues = ["覆盖",', 'cues = ["预算", "覆盖",'),  # the headcount's, beside the budget
            "stage 'potential' › cue '预算' is given to several fields (headcount, budget)",
        ),
        (
            (
                'id = "project_team"\ntype = "stakeholder"\n',
                'id = "project_team"\ntype = "stakeholder"\ncues = ["项目组"]\n',
            ),
            "cues are not read for stakeholder fields",
        ),
    ],
)
def test_cues_a_reader_cannot_use_are_playbook_problems(tmp_path, change, problem):
    shipped = shipped_playbook_path().read_text(encoding="utf-8")
    changed = shipped.replace(*change, 1)
    assert changed != shipped
    (tmp_path / "team.toml").write_text(changed, encoding="utf-8")
    with pytest.raises(PlaybookError) as error:
        load_playbook(tmp_path / "team.toml")
    assert problem in str(error.value)
