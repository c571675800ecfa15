"""A person on the decision-maker map in one line: ``王总 CIO 支持``,
``李处长 人力部培训处 项目负责人 影响力大 +1``, ``Zhang Wei, CIO, decision maker, high, +2``.

The line is cut into pieces (at commas when it has any, else at spaces). A piece that is a
role, an influence or an attitude, by the option labels of ``flows.stakeholder`` or the words
below (among them the seed's own 项目经理, 小组成员, 外请专家), fills that part; the other pieces
are the name and then the title, in that order (more words join the title); without commas, that
split is only made beside a role, influence or attitude ("Zhang Wei" stays one name). Parts the
line does not give are left out, for the dialog to ask: nothing is guessed.
"""

from __future__ import annotations

import re
from typing import Any

from flows.reading import Valid, clean, fold
from flows.stakeholder import MAX_CHARS, PART_BY_ID, parse_part

# Words reps use besides the option labels, folded.
_WORDS: dict[str, dict[str, Any]] = {
    "role": {
        "decision_maker": (
            "决策人",
            "拍板",
            "拍板人",
            "一把手",
            "decision-maker",
            "economic buyer",
        ),
        "project_manager": ("项目经理", "负责人", "牵头人", "项目牵头", "pm", "project lead"),
        "team_member": ("小组成员", "组员", "项目组", "成员", "member"),
        "outside_expert": ("外请专家", "专家", "顾问", "expert", "consultant", "advisor"),
    },
    "influence": {
        "high": ("影响力大", "影响力高", "影响力很大", "影响大", "high influence", "influential"),
        "medium": ("影响力一般", "影响力中", "影响力中等", "medium influence"),
        "low": ("影响力小", "影响力低", "影响小", "low influence"),
    },
    "attitude": {
        3: ("强烈支持", "铁杆", "坚定支持", "champion", "strong supporter"),
        2: ("支持", "支持我们", "supportive", "supporter", "support", "positive"),
        1: ("略有好感", "倾向我们", "偏向我们", "有好感", "leaning our way", "leaning", "friendly"),
        0: ("中立", "neutral"),
        -1: ("有顾虑", "顾虑", "犹豫", "疑虑", "doubts", "has doubts", "concerned", "skeptical"),
        -2: ("反对", "不支持", "against", "negative", "opposed"),
        -3: ("强烈反对", "strongly against", "hostile"),
    },
}
_LOOKUP = {
    part: {fold(word): value for value, words in table.items() for word in words}
    for part, table in _WORDS.items()
}
_COMMAS = re.compile(r"\s*[,，、;；]\s*")


def read_person(text: str) -> dict[str, Any] | None:
    """The parts a one-line description gives (always a name); None if it gives none, or a
    name or title too long to be one."""
    text = clean(text)
    commas = _COMMAS.search(text) is not None
    pieces = _COMMAS.split(text) if commas else text.split()
    person: dict[str, Any] = {}
    free: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        placed = _place(piece, person)
        if placed is None:
            free.append(piece)
        else:
            person[placed[0]] = placed[1]
    if not free or not any(char.isalpha() for char in free[0]):
        return None  # no name, or a second attitude ("支持 +2") where the name should be
    if not commas and not person:  # "Zhang Wei" is a name, not a name and a title
        free = [text]
    person["name"] = free[0]
    if len(free) > 1:
        person["title"] = " ".join(free[1:])
    if any(len(person.get(key, "")) > MAX_CHARS for key in ("name", "title")):
        return None
    return person


def _place(piece: str, person: dict[str, Any]) -> tuple[str, Any] | None:
    """The part a piece fills (one not filled yet), and its value."""
    folded = fold(piece)
    for part_id in ("attitude", "influence", "role"):
        if part_id in person:
            continue
        value = _LOOKUP[part_id].get(folded)
        if value is None:
            found = parse_part(PART_BY_ID[part_id], piece)
            value = found.value if isinstance(found, Valid) else None
        if value is not None:
            return part_id, value
    return None


# Said about a person inside a longer sentence ("郑总很支持", "he is skeptical"). Only forms that
# cannot be about something else: "支持" alone may be a feature ("系统要支持达梦").
_ATTITUDE_IN_SENTENCE = (
    (3, r"强烈支持|坚定支持|铁杆|champion|strongly supports?"),
    (-3, r"强烈反对|hostile|strongly against"),
    (-2, r"反对|不支持我们|against us|opposed"),
    (-1, r"有顾虑|有疑虑|有些顾虑|有点顾虑|顾虑|犹豫|skeptical|has doubts|concerned"),
    (0, r"中立|neutral"),
    (1, r"有好感|倾向我们|偏向我们|比较认可|印象挺好|印象不错|leaning our way|friendly"),
    (
        2,
        "|".join(
            (
                r"(?:很|比较|挺|非常|大力|也|都|是)支持|支持我们|支持我方|支持这个项目|支持$"
                r"|很认可|非常认可",
                "supportive|supports us|on our side",
            )
        ),
    ),
)
_ROLE_IN_SENTENCE = (
    (
        "decision_maker",
        r"拍板|说了算|最终决策|决策人|一把手|decision maker|final say|final call|signs off",
    ),
    (
        "project_manager",
        r"项目负责人|(?<!中心)(?<!部门)(?<!单位)(?<!他们)牵头|负责这个项目|项目经理"
        r"|project manager|leads the project|runs the project",
    ),
    ("outside_expert", r"外请专家|外部专家|顾问|consultant|outside expert"),
)


def attitude_word(folded: str) -> tuple[int, int] | None:
    """(where, attitude) a sentence states about a person, if it states one."""
    for value, pattern in _ATTITUDE_IN_SENTENCE:
        match = re.search(pattern, folded)
        if match:
            return match.start(), value
    return None


def role_word(folded: str) -> tuple[int, str] | None:
    """(where, role) a sentence gives a person, if it gives one."""
    for role, pattern in _ROLE_IN_SENTENCE:
        match = re.search(pattern, folded)
        if match:
            return match.start(), role
    return None
