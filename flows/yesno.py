"""Yes or no the way people say it, with the rest of the sentence kept as evidence.

``需要`` · ``对 很需要`` · ``符合`` · ``yeah`` are yes; ``不需要`` · ``没有`` · ``nope`` are no;
``否，要看郑总那边技术评审`` is no, with ``要看郑总那边技术评审`` kept as what the rep said besides.
The answer is the word the text starts with, longest word first (``不需要`` before ``需要``,
``没问题`` before ``没``). Hedges (``有点``, ``可能``, ``partly``) are neither: the rep is asked
again rather than a yes or no being guessed.
"""

from __future__ import annotations

import re

from flows.reading import fold, unfolded_index

_YES = (
    "是", "是的", "对", "对的", "有", "有的", "要", "好", "好的", "可以", "行", "嗯", "确认",
    "已确认", "需要", "符合", "认同", "同意", "认可", "支持", "没问题", "当然", "肯定", "必须",
    "已经", "已", "会", "能", "确定", "具备", "满足",
    "yes", "y", "yeah", "yep", "yup", "true", "ok", "okay", "sure", "correct", "right",
    "definitely", "absolutely", "agreed", "of course", "✓", "✔",
)  # fmt: skip
_NO = (
    "否", "不", "不是", "没有", "没", "无", "不对", "不要", "不行", "还没", "还没有", "不用",
    "不需要", "不符合", "不认同", "不同意", "不认可", "不支持", "不会", "不能", "未", "尚未",
    "暂无", "没必要", "并不", "不具备", "不满足",
    "no", "n", "nope", "nah", "false", "not yet", "not really", "never", "×", "✗",
)  # fmt: skip
# Starts that hedge: neither yes nor no, whatever follows.
_HEDGES = (
    "有点", "有些", "有一点", "不一定", "不太", "不完全", "可能", "也许", "或许", "看情况",
    "不好说", "说不好", "部分", "一部分", "基本", "差不多", "maybe", "perhaps", "partly",
    "partially", "kind of", "sort of", "not sure", "depends", "somewhat", "mostly",
)  # fmt: skip
_WORDS = sorted(
    [(fold(w), None) for w in _HEDGES]
    + [(fold(w), True) for w in _YES]
    + [(fold(w), False) for w in _NO],
    key=lambda pair: len(pair[0]),
    reverse=True,
)
_SEPARATORS = " \t\n,，.。:：;；、!！~～-–—()（）"
_LATIN = re.compile(r"[a-z0-9_]")


def read_yes_no(text: str) -> tuple[bool, str | None] | None:
    """``(answer, evidence)``: the yes/no the text starts with and the rest of what it says
    (None if nothing more); None when the text is not a yes or no."""
    folded = fold(text)
    for word, answer in _WORDS:
        if not folded.startswith(word) or _inside_a_word(folded, len(word)):
            continue
        if answer is None:
            return None
        return answer, _rest(text, word)
    return None


def _inside_a_word(folded: str, end: int) -> bool:
    """ "no" is not the start of "not yet", nor "y" of "yes": Latin words end at a non-letter."""
    return (
        end < len(folded)
        and bool(_LATIN.match(folded[end - 1]))
        and bool(_LATIN.match(folded[end]))
    )


def _rest(text: str, word: str) -> str | None:
    """The rep's own words (not their folded form) after the yes/no word."""
    text = text.strip()
    return text[unfolded_index(text, len(word)) :].strip(_SEPARATORS) or None
