"""What every reader of typed answers shares: the outcome (``Valid`` or ``Invalid``) and how
text is cleaned, folded for matching and matched to an option.

The answer parsers (``flows.parsers``) and the stakeholder parts (``flows.stakeholder``) build on
it; it imports neither.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flows.i18n import DEFAULT_LANGUAGE, LANGUAGES, normalise_language, t

# Control characters (keeping tab and newline) come from copy-paste and are never meant.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Valid:
    value: Any  # JSON-serialisable normalised value
    # The rep's words beyond the value, kept with the answer: "否，要看郑总那边技术评审" is no,
    # and "要看郑总那边技术评审" is its evidence. Not part of equality: the value is the answer.
    evidence: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Invalid:
    code: str  # an i18n key, e.g. "parse.money_invalid"
    params: dict[str, Any] = field(default_factory=dict)

    def message(self, lang: str) -> str:
        lang = normalise_language(lang)
        return t(lang, self.code, **{k: _in_language(v, lang) for k, v in self.params.items()})


def _in_language(value: Any, lang: str) -> Any:
    if isinstance(value, dict):
        return value.get(lang) or value.get(DEFAULT_LANGUAGE, "")
    return value


def per_language(render: Callable[[str], str]) -> dict[str, str]:
    """A language-dependent Invalid param: ``{lang: render(lang)}`` for every language."""
    return {lang: render(lang) for lang in LANGUAGES}


def clean(text: str) -> str:
    """Drop control characters and surrounding whitespace; the rep's wording is kept."""
    return _CONTROL.sub("", text).strip()


def has_words(text: str) -> bool:
    """Whether text holds a letter or digit: emoji or punctuation alone say nothing."""
    return any(unicodedata.category(char)[0] in "LN" for char in text)


def fold(text: str) -> str:
    """For matching only: full-width → ASCII (NFKC), case-folded, one space between words."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2212", "-")
    return " ".join(text.split())


# What reps type when they do not know yet, in both languages. Saved as an answer, "不清楚" would
# close the gap it stands for; read as "not known yet", the gap stays open and is asked again.
_UNKNOWN = frozenset(
    fold(phrase)
    for phrase in (
        "不清楚", "不知道", "不确定", "还不清楚", "还不知道", "暂不清楚", "暂时不清楚",
        "暂时不知道", "未知", "不详", "待定", "待确认", "还没问", "没问", "说不好", "不好说",
        "还没定", "没定", "还不确定", "还没确定", "unsure", "not decided", "undecided",
        "unknown", "not known", "not known yet", "don't know", "dont know", "do not know",
        "not sure", "no idea", "idk", "tbd", "to be confirmed",
    )
)  # fmt: skip


def unfolded_index(text: str, folded_index: int) -> int:
    """Where a position of ``fold(text)`` falls in ``text`` (folding collapses spaces and
    narrows full-width letters), so that what is found in folded text is cut from the rep's own
    words."""
    if len(text) == len(fold(text)):
        return folded_index
    for end in range(len(text) + 1):
        if len(fold(text[:end])) >= folded_index:
            return end
    return len(text)


def says_unknown(text: str) -> bool:
    """Whether the whole text says "not known yet" (``不清楚``, ``don't know``, ``TBD``), and
    nothing more: ``不清楚预算，大概100万`` is an answer."""
    return fold(text).rstrip("。.!！~～ ") in _UNKNOWN


def match_option(
    folded: str, choices: Sequence[tuple[str, Iterable[str]]], *, by_number: bool = True
) -> str | None:
    """The id of the choice named by its id, any of its labels, or its 1-based number."""
    for option_id, labels in choices:
        if folded == fold(option_id) or folded in {fold(label) for label in labels}:
            return option_id
    if by_number and folded.isdecimal() and len(folded) <= 3 and 0 < int(folded) <= len(choices):
        return choices[int(folded) - 1][0]
    return None
