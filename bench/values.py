"""Realistic answer values for every playbook field, made by the product's own parsers.

Each field gets a small pool of values parsed from text a rep would type, so stored answers
have exactly the shapes the dialog saves (money in minor units, ISO dates, option ids, people).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from flows.parsers import parse_answer
from flows.playbook import FieldSpec, Playbook
from flows.reading import Valid

TEXTS = (
    "Head office training centre",
    "总部培训中心，约 300 个座位",
    "Regional branches want e-learning for new staff",
    "客户希望统一各分公司的培训平台",
    "Current LMS is ten years old and slow",
    "IT team of 12, mostly outsourced",
    "Board approved a digital workplace programme",
    "需要和 HR 系统打通",
)
NUMBERS = ("80", "250", "1200", "4800", "15000")
MONEY = ("30万", "50万", "120万", "800k", "1.2亿", "¥2,500,000", "95万")
LISTS = ("Acme, Globex", "华为, 用友", "Initech", "金蝶, Umbrella, Hooli")
PEOPLE = (
    {"name": "王伟", "title": "CIO", "role": "decision_maker", "influence": "high", "attitude": 2},
    {"name": "Li Na", "title": "HR director", "role": "project_manager", "influence": "medium"}
    | {"attitude": 1},
    {"name": "赵强", "title": "IT manager", "role": "team_member", "influence": "low"}
    | {"attitude": 0},
    {"name": "Chen", "title": "CFO", "role": "decision_maker", "influence": "high", "attitude": -1},
)
OWNERS = ("IT", "HR", "采购部", "Procurement")


def _parsed(spec: FieldSpec, texts: list[str], now: datetime) -> list[Any]:
    values = []
    for text in texts:
        result = parse_answer(spec, text, now=now)
        if not isinstance(result, Valid):
            raise ValueError(f"bench value {text!r} does not parse as {spec.id} ({spec.type})")
        values.append(result.value)
    return values


def _texts(spec: FieldSpec, now: datetime) -> list[str]:
    days = [now.date() + timedelta(days=d) for d in (-45, -10, 5, 20, 40, 75, 120)]
    by_type = {
        "text": list(TEXTS),
        "number": list(NUMBERS),
        "money": list(MONEY),
        "percent": ["10%", "35%", "60%"],
        "date": [d.isoformat() for d in days],
        "milestone": [f"{d.isoformat()}, {OWNERS[i % len(OWNERS)]}" for i, d in enumerate(days)],
        "choice": [o.id for o in spec.options],
        "multichoice": [
            ", ".join(o.id for o in spec.options[i : i + 2]) for i in range(len(spec.options))
        ],
        "yesno": ["yes", "yes", "yes", "no"],
        "list": list(LISTS),
    }
    return by_type[spec.type]


def value_pools(playbook: Playbook, now: datetime) -> dict[str, list[Any]]:
    """A few valid values per field id and checklist id."""
    pools: dict[str, list[Any]] = {}
    for stage in playbook.stages:
        for spec in stage.fields:
            if spec.type == "stakeholder":
                pools[spec.id] = [[PEOPLE[i]] for i in range(len(PEOPLE))] + [list(PEOPLE[:2])]
            elif spec.expect is not None:
                pools[spec.id] = [spec.expect]  # target-group criteria: mostly in the group
            else:
                pools[spec.id] = _parsed(spec, _texts(spec, now), now)
        for item in stage.checklist:
            pools[item.id] = [
                {"checked": True, "note": None},
                {"checked": True, "note": "客户口头确认"},
                {"checked": True, "note": "confirmed by email"},
            ]
    return pools


def pick(pools: dict[str, list[Any]], key: str, rng: random.Random) -> Any:
    return rng.choice(pools[key])
