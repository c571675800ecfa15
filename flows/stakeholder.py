"""A stakeholder on the decision-maker map, collected one part at a time.

A stakeholder value is ``{"name": str, "title": str, "role": str, "influence": str,
"attitude": int}``; a deal has several. Option labels live in ``locales/<lang>/stakeholder.toml``
under ``<part>_<option>`` (attitude ``+2`` is ``attitude_p2``, ``-1`` is ``attitude_m1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flows.i18n import LANGUAGES, t
from flows.reading import Invalid, Valid, clean, fold, match_option, per_language

MAX_CHARS = 100


@dataclass(frozen=True)
class Part:
    id: str  # "name", "title", "role", "influence", "attitude"
    options: tuple[str, ...] = ()  # empty for free text


PARTS: tuple[Part, ...] = (
    Part("name"),
    Part("title"),
    Part("role", ("decision_maker", "project_manager", "team_member", "outside_expert", "other")),
    Part("influence", ("high", "medium", "low")),
    Part("attitude", ("-3", "-2", "-1", "0", "+1", "+2", "+3")),
)
PART_BY_ID = {part.id: part for part in PARTS}

# Shorthands reps type besides the labels (高/中/低 and High/Medium/Low are labels already).
_ALIASES = {
    "influence": {"h": "high", "m": "medium", "med": "medium", "l": "low", "中等": "medium"}
}
# A score with an optional sign; fold() has turned "＋２" and "−1" into ASCII already.
_SCORE = re.compile(r"([+-]?)\s*(\d{1,2})")


def parse_part(part: Part, text: str) -> Valid | Invalid:
    """Read one part: free text for name and title, an option id (str) or attitude (int)."""
    text = clean(text)
    if not text:
        return _fail(part, "parse.empty")
    if not part.options:
        too_long = len(text) > MAX_CHARS
        return _fail(part, "parse.too_long", limit=MAX_CHARS) if too_long else Valid(text)
    if part.id == "attitude":
        return _attitude(part, fold(text))
    found = match_option(fold(text), _choices(part))
    if found is None:
        return _fail(part, "parse.choice_invalid", options=_option_list(part))
    return Valid(found)


def _attitude(part: Part, folded: str) -> Valid | Invalid:
    """``+2`` · ``2`` · ``-1`` · a label (``+2 支持``) or its words (``支持``) → int -3..3."""
    score = _SCORE.fullmatch(folded)
    if score:
        value = int(score[1] + score[2])
    else:
        found = match_option(folded, _choices(part), by_number=False)
        value = None if found is None else int(found)
    if value is None or not -3 <= value <= 3:
        return _fail(part, "stakeholder.attitude_invalid")
    return Valid(value)


def part_prompt(part: Part, lang: str) -> str:
    return t(lang, f"stakeholder.prompt_{part.id}")


def option_label(part: Part, option: str, lang: str) -> str:
    return t(lang, f"stakeholder.{part.id}_{_key(option)}")


def describe(person: dict[str, Any], lang: str) -> str:
    """One line, skipping parts not given yet: ``王总 · CIO · 决策者 · 影响力高 · 态度 +2``."""
    bits = [person.get("name"), person.get("title")]
    if person.get("role") in PART_BY_ID["role"].options:
        bits.append(option_label(PART_BY_ID["role"], person["role"], lang))
    if person.get("influence") in PART_BY_ID["influence"].options:
        bits.append(t(lang, f"stakeholder.describe_influence_{person['influence']}"))
    if isinstance(person.get("attitude"), int):
        bits.append(t(lang, "stakeholder.describe_attitude", value=signed(person["attitude"])))
    return " · ".join(str(bit) for bit in bits if bit)


def signed(attitude: int) -> str:
    """The attitude option id: ``+2``, ``0``, ``-1``."""
    return f"{attitude:+d}" if attitude else "0"


def _key(option: str) -> str:
    return option.replace("+", "p").replace("-", "m")


def _choices(part: Part) -> list[tuple[str, list[str]]]:
    aliases = _ALIASES.get(part.id, {})
    return [(option, _names(part, option, aliases)) for option in part.options]


def _names(part: Part, option: str, aliases: dict[str, str]) -> list[str]:
    labels = [option_label(part, option, lang) for lang in LANGUAGES]
    if part.id == "attitude":  # "+2 支持" may be typed as just "支持"
        labels += [text.split(" ", 1)[-1] for text in labels]
    return labels + [alias for alias, target in aliases.items() if target == option]


def _option_list(part: Part) -> dict[str, str]:
    return per_language(
        lambda lang: t(lang, "parse.option_separator").join(
            option_label(part, option, lang) for option in part.options
        )
    )


def _fail(part: Part, code: str, **params: Any) -> Invalid:
    shown = per_language(lambda lang: t(lang, f"stakeholder.example_{part.id}"))
    return Invalid(code, {"example": shown, **params})
