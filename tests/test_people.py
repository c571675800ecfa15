"""A person in one line (flows.people)."""

from __future__ import annotations

import pytest

from flows.people import read_person


@pytest.mark.parametrize(
    ("text", "person"),
    [
        ("王总 CIO 支持", {"name": "王总", "title": "CIO", "attitude": 2}),
        (
            "李处长 人力部培训处 项目负责人 影响力大 +1",
            {
                "name": "李处长",
                "title": "人力部培训处",
                "role": "project_manager",
                "influence": "high",
                "attitude": 1,
            },
        ),
        (
            "Zhang Wei, CIO, decision maker, high, +2",
            {
                "name": "Zhang Wei",
                "title": "CIO",
                "role": "decision_maker",
                "influence": "high",
                "attitude": 2,
            },
        ),
        ("郑总 项目经理", {"name": "郑总", "role": "project_manager"}),
        ("陈工 小组成员 中立", {"name": "陈工", "role": "team_member", "attitude": 0}),
        ("刘教授 外请专家 有顾虑", {"name": "刘教授", "role": "outside_expert", "attitude": -1}),
        (
            "赵主任 信息中心 负责人 低 -2",
            {
                "name": "赵主任",
                "title": "信息中心",
                "role": "project_manager",
                "influence": "low",
                "attitude": -2,
            },
        ),  # fmt: skip
        ("王总", {"name": "王总"}),
        ("孙处 信息中心 副主任 中立", {"name": "孙处", "title": "信息中心 副主任", "attitude": 0}),
        ("Zhang Wei", {"name": "Zhang Wei"}),  # spaces alone do not split a name
        ("孙处, 信息中心副主任", {"name": "孙处", "title": "信息中心副主任"}),
    ],
)
def test_one_line_gives_the_parts_it_names(text, person):
    assert read_person(text) == person


@pytest.mark.parametrize("text", ["", "支持 高 +2", "王" * 101])
def test_no_name_or_too_long_is_not_a_person(text):
    assert read_person(text) is None
