"""Values proposed from a visit note: what a rep wrote after a visit, read for the fields of the
deal's current and earlier stages. Pure and deterministic; nothing here is saved.

The playbook drives it. A field is read from a clause (the note cut at 。，；! ? and new lines)
that holds one of its ``cues`` (words that point to it: 预算 for the budget, 签约 for the close
date); a choice field without cues is read wherever one of its options is named (南京银行 is a
bank, by the finance option's alias 银行). The value in the clause is then read by the field's
own parser (``flows.parsers``), so a proposal has exactly the form a typed answer has.

It never guesses, because a wrong value a rep does not notice is worse than a question asked:
* a clause that negates or defers (没有, 还没, 不, 待定, not, no, yet) gives nothing, once the
  option names and amounts that hold such words (不完善, 不超过100万) are set aside;
* a money clause that names a competitor or the past (用友报了80万, 去年花了30万) gives nothing;
* a clause naming two options of a single choice, or two different amounts, gives nothing;
* people are people of the customer: a surname with a title (郑总, 王处长) or an English name
  with a title; ours (我们的张经理) are not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from flows.amounts import (
    APPROX_AFTER,
    APPROX_BEFORE,
    CEILING_AFTER,
    CEILING_BEFORE,
    FLOOR_AFTER,
    FLOOR_BEFORE,
    RANGE_WORDS,
    TOTAL_WORDS,
)
from flows.choices import OTHER, names
from flows.dates import DateProblem
from flows.numbers import plain, to_major
from flows.parsers import parse_answer
from flows.people import attitude_word, role_word
from flows.periods import from_key, read_period
from flows.playbook import FieldSpec, Playbook
from flows.reading import Valid, fold, unfolded_index

MAX_NOTE = 4000


@dataclass(frozen=True)
class Proposal:
    value: Any  # the stored form, as a typed answer of the field would be saved
    evidence: str  # the words of the note it came from


@dataclass(frozen=True)
class NextStep:
    text: str  # what the rep will do, in their words ("做技术交流")
    when: str  # a period key (flows.periods)
    evidence: str


@dataclass(frozen=True)
class Extraction:
    fields: dict[str, Proposal] = field(default_factory=dict)
    next_step: NextStep | None = None


def extract(note: str, playbook: Playbook, *, stage_id: str, now: datetime) -> Extraction:
    """Proposals for the fields of ``stage_id`` and the stages before it."""
    clauses = list(_clauses(note[:MAX_NOTE]))
    found: dict[str, Proposal] = {}
    used: set[tuple[str, str]] = set()  # (type, clause): a later stage's field took it
    context = _Context(now, playbook.currency, playbook)
    fields = list(reversed(list(_fields_up_to(playbook, stage_id))))
    for spec in (f for f in fields if f.type != "text"):
        reader = _READERS.get(spec.type)
        if reader is None:
            continue
        kind = _kind(playbook, spec.id)
        free = [c for c in clauses if (kind, c.text) not in used]
        proposal = reader(spec, free, context)
        if proposal is not None:
            found[spec.id] = proposal
            if kind in ("money", "date"):  # 报价 is the formal quote once there is one
                used |= {(kind, c.text) for c in clauses if c.text in proposal.evidence}
    # Free text last, from what no amount or date took ("签约的话希望一季度签下来" is the close
    # date, not a need), and only for the stage at hand: earlier ones are answered.
    dated = {p.evidence for k, p in found.items() if _kind(playbook, k) in ("money", "date")}
    rest = [c for c in clauses if not any(c.text in evidence for evidence in dated)]
    for spec in fields:
        if spec.type == "text" and playbook.stage_of(spec.id).id == stage_id:
            proposal = _text(spec, rest, context)
            if proposal is not None:
                found[spec.id] = proposal
    _people(playbook, stage_id, clauses, found)
    order = {f.id: n for n, f in enumerate(f for stage in playbook.stages for f in stage.fields)}
    ordered = dict(sorted(found.items(), key=lambda item: order[item[0]]))
    taken = {p.evidence for p in ordered.values()}
    return Extraction(ordered, _next_step(clauses, taken, context))


def _kind(playbook: Playbook, field_id: str) -> str:
    kind = playbook.field(field_id).type
    return "date" if kind == "milestone" else kind


@dataclass(frozen=True)
class _Context:
    now: datetime
    currency: str
    playbook: Playbook


def _fields_up_to(playbook: Playbook, stage_id: str) -> Iterator[FieldSpec]:
    for stage in playbook.stages:
        yield from stage.fields
        if stage.id == stage_id:
            return


# -- clauses --------------------------------------------------------------------------------------
# Where a clause ends: sentence marks and Chinese commas always; an ASCII comma unless it sits
# inside a number ("800,000").
_CLAUSE_END = re.compile(
    r"[。；;！!？?\n]+|\.(?=\s|$)|，|,(?!\d{3})|\s+-\s+"
    # Terse notes put facts side by side: "南京银行 没有系统 下周四开标 1月8号签合同".
    r"|(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff\d])"
)


@dataclass(frozen=True)
class _Clause:
    text: str  # as written
    folded: str
    index: int = 0  # of the (last) clause in the note
    ends_sentence: bool = True  # a full stop, not a comma, comes after it


_SENTENCE_END = re.compile(r"[。；;！!？?\n.]")


def _clauses(note: str) -> Iterator[_Clause]:
    pieces = _CLAUSE_END.split(note)
    ends = [m[0] for m in _CLAUSE_END.finditer(note)] + ["。"]
    index = 0
    for piece, end in zip(pieces, ends, strict=True):
        piece = piece.strip()
        if piece:
            yield _Clause(piece, fold(piece), index, bool(_SENTENCE_END.search(end)))
            index += 1


def _cued(
    spec: FieldSpec,
    clauses: list[_Clause],
    has_value: Callable[[_Clause], bool] | None = None,
) -> Iterator[tuple[_Clause, tuple[int, int]]]:
    """Clauses holding one of the field's cues (the longest found), with where it is. Where
    ``has_value`` says a cued clause holds no value and the next clause does, the two are read
    as one: "初步报价昨天发过去了，总共一百三十八万", "竞争对手的话，时代光华…"."""
    if not spec.cues:
        return
    cues = _words(tuple(fold(cue) for cue in spec.cues))
    for index, clause in enumerate(clauses):
        match = cues.search(clause.folded)
        if match is None:
            continue
        following = clauses[index + 1] if index + 1 < len(clauses) else None
        if has_value and following and not has_value(clause) and has_value(following):
            clause = _Clause(
                f"{clause.text}，{following.text}",
                f"{clause.folded},{following.folded}",
                following.index,
                following.ends_sentence,
            )
        yield clause, match.span()


@lru_cache(maxsize=1024)
def _words(words: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for folded words, longest first, each a whole word where it is Latin; a
    Chinese word that goes on into a longer one is that word (移动端 is an app, not 移动)."""
    parts = []
    for word in sorted(set(words), key=len, reverse=True):
        escaped = re.escape(word)
        if word.isascii():
            parts.append(rf"(?<![a-z0-9_.]){escaped}(?![a-z0-9_])")
        else:
            parts.append(rf"{escaped}(?![端化式性])")
    return re.compile("|".join(parts) or r"(?!)")


# A clause that negates, defers or doubts: nothing is taken from it.
_NEGATION = re.compile(
    r"没有|没|未|不|无|别|非|尚未|还没|暂无|待定|待确认|不清楚|不确定|说不好|不好说|不明确|模糊"
    r"|(?<![a-z])(?:not|no|never|without|unknown|unclear|undecided|tbd|none|pending|vague)(?![a-z])"
    r"|n't"
    # Undecided: still weighed, or to be told later.
    r"|在评估|在考虑|在比较|在对比|还在看|都可以|还是|再定|在定|再说|通知|答复|待议"
    r"|evaluating|considering|comparing|still open|either|versus|\bvs\b|let us know|notify"
)
# Words holding a negation that negate nothing.
_NOT_NEGATIONS = (
    "没问题",
    "没什么问题",
    "不错",
    "不少",
    "不止",
    "不过",
    "不然",
    "不低于",
    "不少于",
    "不超过",
    "不到",
    "不高于",
    "no doubt",
    "no later than",
    "not more than",
)


def _negated(folded: str, *kept: str) -> bool:
    """Whether the text negates, once words that hold a negation as their meaning are out."""
    for word in sorted((*kept, *_NOT_NEGATIONS), key=len, reverse=True):
        if word:
            folded = folded.replace(word, " ")
    return _NEGATION.search(folded) is not None


def _negated_between(
    clause: _Clause, cue: tuple[int, int], value: tuple[int, int], *kept: str
) -> bool:
    """A negation around the cue and the value: from a little before the first of them to a
    little after the last ("没有预算", "预算还没批", "预算80万还没定")."""
    start, end = min(cue[0], value[0]), max(cue[1], value[1])
    return _negated(clause.folded[max(0, start - 6) : end + 4], *kept)


# -- amounts ----------------------------------------------------------------------------------
_NUMBER = r"\d[\d,.]*|[零〇一二两三四五六七八九十百千万亿点]+"
_UNIT = r"\s*(?:亿|千万|百万|万|千|k|m|w|million|mn|bn)?"
_AMOUNT = re.compile(
    rf"(?<![a-z])(?:{CEILING_BEFORE}|{FLOOR_BEFORE})?\s*(?:{APPROX_BEFORE})?\s*(?:rmb|cny|¥|￥)?\s*"
    rf"(?:{_NUMBER}){_UNIT}\s*(?:多|余)?{_UNIT}"
    rf"(?:\s*(?:{RANGE_WORDS})\s*(?:rmb|cny|¥|￥)?\s*(?:{_NUMBER}){_UNIT})?"
    rf"\s*(?:元|块|rmb|yuan|cny)?\s*(?:{APPROX_AFTER}|{FLOOR_AFTER}|{CEILING_AFTER}|多)?"
)
_AMOUNT_HAS_UNIT = re.compile(r"万|亿|千|k|m|w|million|mn|bn|元|块|rmb|yuan|cny|¥|￥")
# About someone else's money or another time: 对手报了80万, 去年花了30万.
_NOT_OURS = re.compile(
    r"对手|竞品|友商|competitor|rival|去年|前年|以前|之前|last year|previously|ago"
)
# A price someone quoted, told as what they did: 金蝶报了95万, 金蝶那边报得低, Kingdee quoted.
_THEIR_QUOTE = re.compile(r"报了|报得|报的|出价|\bquoted\b|\boffered\b")
_TOTAL = re.compile(TOTAL_WORDS)
_HEDGE_BEFORE = re.compile(rf"(?:{APPROX_BEFORE})\S{{0,3}}\s*$")


def _money(spec: FieldSpec, clauses: list[_Clause], ctx: _Context) -> Proposal | None:
    found = []
    for clause, cue in _cued(spec, clauses, _has_amount):
        if _NOT_OURS.search(clause.folded) or _their_quote(clause):
            continue
        spans = [m for m in _AMOUNT.finditer(clause.folded) if _is_amount(m[0])]
        if not spans:
            continue
        clause = _with_total(clause, clauses)
        spans = [m for m in _AMOUNT.finditer(clause.folded) if _is_amount(m[0])]
        total = _TOTAL.search(clause.folded)
        chosen = [m for m in spans if total and m.start() >= total.end()] or spans
        if any(_negated_between(clause, cue, m.span(), m[0]) for m in chosen):
            continue
        values = {_value_of(spec, _hedged(clause, m), ctx) for m in chosen} - {None}
        if len(values) == 1:
            found.append(Proposal(_thaw(values.pop()), clause.text))
    return _one(found)


def _with_total(clause: _Clause, clauses: list[_Clause]) -> _Clause:
    """The clause read with the total that ends its sentence, if one does: "一期120万，二期
    80万，总共200万" is 200万."""
    by_index = {c.index: c for c in clauses}
    current, parts = clause, [clause]
    while not current.ends_sentence and (following := by_index.get(current.index + 1)):
        parts.append(following)
        if _TOTAL.search(following.folded) and _has_amount(following):
            return _Clause(
                "，".join(p.text for p in parts),
                ",".join(p.folded for p in parts),
                following.index,
                following.ends_sentence,
            )
        current = following
    return clause


def _has_amount(clause: _Clause) -> bool:
    return any(_is_amount(m[0]) for m in _AMOUNT.finditer(clause.folded))


def _is_amount(text: str) -> bool:
    """A figure with a unit or a currency: "80万", "rmb 800k" (not "3楼", "第2次")."""
    has_figure = any(c.isdigit() or c in "一二两三四五六七八九十" for c in text)
    return has_figure and _AMOUNT_HAS_UNIT.search(text) is not None


def _their_quote(clause: _Clause) -> bool:
    """金蝶报了95万: a price quoted by someone who is not us ("我们报了95万" is ours)."""
    if _THEIR_QUOTE.search(clause.folded) is None:
        return False
    return re.search(r"我们|我方|我司|\bwe\b|\bour\b", clause.folded) is None


def _hedged(clause: _Clause, match: re.Match[str]) -> str:
    """The figure, marked approximate when a hedge comes just before it ("估计在40到60万")."""
    text = match[0].strip()
    before = clause.folded[max(0, match.start() - 8) : match.start()]
    hedged = _HEDGE_BEFORE.search(before) and not re.match(r"约|大概|大约|估计|about", text)
    return "约" + text if hedged else text


_COUNT = re.compile(
    rf"(?:{_NUMBER})\s*(?:多|余)?\s*(?:万)?\s*(?:多|余)?\+?"
    r"(?=\s*(?:人|名|个员工|位|员工|学员|干部|教职工|users|employees|staff|people|learners))"
)


def _number(spec: FieldSpec, clauses: list[_Clause], ctx: _Context) -> Proposal | None:
    found = []
    for clause, cue in _cued(spec, clauses, lambda c: _COUNT.search(c.folded) is not None):
        counts = list(_COUNT.finditer(clause.folded))
        if len(counts) != 1 or _negated_between(clause, cue, counts[0].span(), counts[0][0]):
            continue
        value = _value_of(spec, _hedged(clause, counts[0]), ctx)
        if value is not None:
            found.append(Proposal(_thaw(value), clause.text))
    return _one(found)


# -- dates ------------------------------------------------------------------------------------
_ZH_NUM = r"[\d一二三四五六七八九十两〇零]"
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = re.compile(
    "|".join(
        (
            r"\d{4}-\d{1,2}(?:-\d{1,2})?",
            rf"(?:\d{{4}}\s*年|明年|今年|后年)?\s*{_ZH_NUM}{{1,2}}\s*月\s*(?:份)?\s*"
            rf"(?:{_ZH_NUM}{{1,2}}\s*[日号]|初|底|末|中旬|上旬|下旬|中)?",
            r"(?:下下|下|本|这|上)\s*个?\s*(?:周|星期|礼拜)\s*[一二三四五六日天1-7]?",
            r"(?:^|(?<=[^下本这上个]))(?:周|星期|礼拜)[一二三四五六日天1-7]",
            r"(?:\d{4}\s*年|明年|今年)?\s*(?:第\s*)?[一二三四1-4]\s*季度",
            r"(?:明年|今年)?\s*q[1-4](?:\s*\d{4})?",
            r"(?:\d{4}\s*年|明年|今年)?\s*(?:上半年|下半年|年底|年初|年中|年末)",
            r"(?:\d{4}\s*年)?(?:春节|过年)\s*(?:后|前|以后|之后|以前|之前)|过完年|年后",
            r"(?:下下|下|本|这)\s*个?\s*月\s*(?:初|底|中)?|月底|月初|明天|后天|大后天",
            rf"(?:(?:early|mid|late|end of|beginning of|start of)[\s-]+)?{_MONTHS}"
            r"(?:\s+\d{1,2}(?:st|nd|rd|th)?)?(?:,?\s*\d{4})?",
            rf"\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}(?:\s+\d{{4}})?",
            r"(?:(?:early|mid|late|end of)\s+)?(?:the\s+)?(?:this|next)\s+"
            r"(?:week|month|quarter|year)",
            r"(?:this|next)\s+(?:mon|tues|wednes|thurs|fri|satur|sun)day",
            r"\bh[12](?:\s*\d{4})?\b|\bq[1-4]\b|end of (?:the )?year|year[\s-]end",
        )
    )
)


def _date(spec: FieldSpec, clauses: list[_Clause], ctx: _Context) -> Proposal | None:
    found = []
    for clause, cue in _cued(spec, clauses, lambda c: _DATE.search(c.folded) is not None):
        dates = [m for m in _DATE.finditer(clause.folded) if m[0].strip()]
        if any(_negated_between(clause, cue, m.span(), m[0]) for m in dates):
            continue
        values = {_value_of(spec, m[0].strip(), ctx) for m in dates} - {None}
        if len(values) == 1:
            found.append(Proposal(values.pop(), clause.text))
    return _one(found)


# Who issues it: a department named in the clause (采购中心, 物资部, procurement).
_OWNER = re.compile(
    r"(?:^|说|然后|是|由|和|，)([\u4e00-\u9fff]{1,4}?(?:中心|部|办公室|办|处|科|室))"
    r"(?:会|将|说|要|在|预计|计划)"
    r"|(procurement(?: office| department| center)?|purchasing(?: department)?)"
)


def _milestone(spec: FieldSpec, clauses: list[_Clause], ctx: _Context) -> Proposal | None:
    date_spec = spec.model_copy(update={"type": "date"})
    dated = _date(date_spec, clauses, ctx)
    if dated is None:
        return None
    owners = {
        re.sub(r"^(?:然后|说|是|由|和)+", "", m[1] or m[2])
        for m in _OWNER.finditer(dated.evidence.casefold())
    }
    owner = owners.pop() if len(owners) == 1 else None
    return Proposal({"date": dated.value, "owner": owner}, dated.evidence)


# -- choices and lists ------------------------------------------------------------------------
def _choice(spec: FieldSpec, clauses: list[_Clause], ctx: _Context) -> Proposal | None:
    found = []

    def names_one(clause: _Clause) -> bool:
        return bool(_options_named(spec, clause))

    candidates = _cued(spec, clauses, names_one) if spec.cues else ((c, None) for c in clauses)
    for clause, cue in candidates:
        named = _options_named(spec, clause)
        if len(named) != 1:
            continue
        option_id, words = next(iter(named.items()))
        at = clause.folded.find(words[0])
        span = (at, at + len(words[0]))
        if _negated_between(clause, cue or span, span, *words):
            continue
        found.append(Proposal(option_id, clause.text))
    return _one(found)


def _multichoice(spec: FieldSpec, clauses: list[_Clause], ctx: _Context) -> Proposal | None:
    picked: dict[str, str] = {}
    candidates = _cued(spec, clauses) if spec.cues else ((c, None) for c in clauses)
    for clause, _ in candidates:
        if _TODAY.search(clause.folded):
            continue  # what they run today is not what the new system must support
        for option_id, words in _options_named(spec, clause).items():
            if not _negated(clause.folded, *words):
                picked.setdefault(option_id, clause.text)
    if not picked:
        return None
    ids = [o.id for o in spec.options if o.id in picked]
    evidence = "；".join(dict.fromkeys(picked[i] for i in ids))
    return Proposal(ids, evidence)


_TODAY = re.compile(
    r"\btoday\b|\bcurrently\b|\bnow\b|\brunning\b|\bruns on\b"
    r"|现在用|目前用|现在是|目前是|用的是|现有|现用|原来|原有"
)


def _options_named(spec: FieldSpec, clause: _Clause) -> dict[str, list[str]]:
    """Options named in the clause and the words naming them; a name inside a longer name of
    another option does not count (不好用 names "works badly", not 好用 "works well"). Short
    Latin names ("dm", "pm", "ob") are other words in free text and are not looked for."""
    pairs = tuple((option_id, n) for option_id, ns in names(spec.options) for n in ns)
    owners, pattern = _option_names(pairs)
    named: dict[str, list[str]] = {}
    # Longest first at each place, so a name inside a longer one is not found on its own.
    for match in pattern.finditer(clause.folded):
        named.setdefault(owners[match[0]], []).append(match[0])
    return named


@lru_cache(maxsize=256)
def _option_names(pairs: tuple[tuple[str, str], ...]) -> tuple[dict[str, str], re.Pattern[str]]:
    """Which option each name names, and one pattern for them all."""
    owners = {
        name: option_id
        for option_id, name in pairs
        if len(name) >= 2
        and not (name.isascii() and len(name) < 4 and name != option_id)
        and option_id != OTHER  # 其他 / other are everyday words in a note, never the option
    }
    return owners, _words(tuple(owners))


# What introduces the items after a cue ("竞争对手有…", "competitors: …").
_LIST_LEAD = re.compile(
    r"^.{0,12}?(?:[:：]|有|是|包括|主要是|就是|剩下|只剩|还剩|就剩|\bare\b|\bis\b|\binclude\b|\bincludes\b|\bwere\b)\s*"
)
_LIST_TAIL = re.compile(r"\s*(?:等等|等|之类的?|etc\.?|and so on|also|too|both)\s*$")
_LIST_SPLIT = re.compile(r"\s*(?:[、/和跟及，,]|以及|还有|\band\b|\bor\b|或者|或)\s*")
_FILLER = re.compile(r"^(?:的话|方面|这块|目前|现在|这边|那边|一下|一次|一遍|呢|啊|吧)+$")
# An item: a name or a short phrase (an objection), in Chinese or up to eight Latin words.
_ITEM = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]{2,12}|[A-Za-z][\w.&-]*(?:\s[\w.&-]+){0,7}")
# Where a name ends and the sentence goes on: 云学堂已经来讲过, 酷学院都会来投, Yunxuetang have.
_AFTER_NAME = re.compile(
    r"(?:已经|也|都|在|会|来|报|跟|那边|这边|方面|之前|目前)|\s+(?:have|has|are|is|were|was|will|"
    r"already|also|both|just|did)\b"
)
# Words before a name that are not part of it: "听说用友报了80万", "Zhou hinted Yonyou quoted".
_BEFORE_NAME = re.compile(
    r"^.*?(?:听说|据说|还有|另外|而且|但是|其中|就是|然后|并且|目前|现在|"
    r"\bhinted\b|\bsaid\b|\bsays\b|\bthat\b|\band\b)\s*"
)
_OURS = re.compile(r"我们|我方|我司|咱们|我|(?i:\b(?:we|us|our)\b)")
_PRONOUN_START = re.compile(r"(?:they|he|she|it|we|i)\b|他们|她们|他|她")
_NOT_A_VENDOR = re.compile(
    r"^(?:我们|我方|我司|客户|对方|他们|领导|采购|we|us|our|they|the customer)$"
)


def _list(spec: FieldSpec, clauses: list[_Clause], ctx: _Context) -> Proposal | None:
    found = []
    for clause, (cue_start, cue_end) in _cued(spec, clauses, _has_items_after_cue(spec)):
        if _negated(clause.folded):
            continue
        after = clause.text[unfolded_index(clause.text, cue_end) :]
        lead = _LIST_LEAD.match(after)
        items = _items(after[lead.end() :]) if lead else []
        if not items:  # "用友和金蝶也在跟", "金蝶报了95万": the items come before the cue
            before = clause.text[: unfolded_index(clause.text, cue_start)].strip()
            items = _named_before(before, clause.folded[cue_start:cue_end])
        if not items and not lead:  # "客户嫌实施周期长": right after the cue
            items = _items(after)
        if items:
            colon = lead is not None and lead[0].rstrip()[-1:] in ":："
            found.append(_listed_on(spec, clause, items, clauses, colon))
    return _one(found)


_GOES_ON = re.compile(r"^(?:还有|另外|以及|另有|and|plus)\s*")


def _listed_on(
    spec: FieldSpec, clause: _Clause, items: list[str], clauses: list[_Clause], colon: bool
) -> Proposal:
    """Items that go on in the clauses after, up to the end of the sentence: after a colon
    ("Objections: price too high, worried about rollout time"), or where a clause says so
    ("时代光华 还有一家酷学院")."""
    by_index = {c.index: c for c in clauses}
    holds = _has_items_after_cue(spec)
    evidence = [clause.text]
    current = clause
    while not current.ends_sentence and (following := by_index.get(current.index + 1)):
        goes_on = _GOES_ON.match(following.text)
        if not (colon or goes_on):
            break
        more = _items(following.text[goes_on.end() :] if goes_on else following.text)
        if not more or not holds(following) or _negated(following.folded):
            break
        items, current = [*items, *more], following
        evidence.append(following.text)
    return Proposal(items, "，".join(evidence))


def _has_items_after_cue(spec: FieldSpec) -> Callable[[_Clause], bool]:
    """For reading "竞争对手的话，时代光华…" as one: whether a clause names items, after its
    cue if it has one; a clause with a date is a next step, not a list."""

    def holds(clause: _Clause) -> bool:
        if _DATE.search(clause.folded):
            return False
        cue = _words(tuple(fold(c) for c in spec.cues)).search(clause.folded) if spec.cues else None
        if cue is None:
            return bool(_items(clause.text))
        after = clause.text[unfolded_index(clause.text, cue.end()) :]
        lead = _LIST_LEAD.match(after)
        return bool(_items(after[lead.end() :] if lead else after))

    return holds


def _named_before(before: str, cue: str) -> list[str]:
    """The vendor named just before a verb cue ("听说用友报了", "they said Yunxuetang
    pitched"): a capitalised name before an English cue, Chinese before a Chinese one."""
    if cue.isascii():
        name = re.search(
            r"([A-Z][\w&.-]*(?:\s[A-Z][\w&.-]*)?)\s*(?:already|also|has|have)?\s*$", before
        )
        return _items(name[1]) if name else []
    words = re.sub(r"(?:那边|这边|方面|已经|也)\s*$", "", _BEFORE_NAME.sub("", before))
    return _items(words) if re.fullmatch(r"[\u4e00-\u9fff、和及与跟]{2,20}", words) else []


def _items(text: str) -> list[str]:
    """Names in a list, each cut where the sentence goes on; none if any piece is not one."""
    items = []
    for piece in _LIST_SPLIT.split(_LIST_TAIL.sub("", text.strip())):
        piece = piece.strip()
        if not piece:
            continue
        end = _AFTER_NAME.search(piece)
        name = piece[: end.start()].strip() if end and end.start() > 0 else piece
        name = re.sub(r"^(?:一家|一个|还有一家)", "", name)
        if _FILLER.match(name):
            continue
        if _OURS.search(name) or _AMOUNT.fullmatch(name.casefold()):
            continue  # "就剩我们和云学堂": we are not a competitor; "报了100万" is no name
        if _NOT_A_VENDOR.match(name.casefold()) or _PRONOUN_START.match(name.casefold()):
            return []  # "客户", "they mentioned …": a sentence, not a list
        if not _ITEM.fullmatch(name):
            return []
        items.append(name)
    return items


def _text(spec: FieldSpec, clauses: list[_Clause], ctx: _Context) -> Proposal | None:
    kept = [clause.text for clause, _ in _cued(spec, clauses) if not _negated(clause.folded)]
    if not kept:
        return None
    text = "，".join(dict.fromkeys(kept))
    return Proposal(text, text)


# -- people -----------------------------------------------------------------------------------
# The hundred most common surnames; a name on the customer's side is a surname and a title.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
    "邵万钱严覃武戴莫孔向汤"
)
_TITLES = (
    "总经理|副总经理|董事长|副行长|行长|副院长|院长|副局长|局长|副部长|部长|书记|主任|处长|"
    "科长|总监|经理|教授|老师|博士|总工|副总|总|局|工|处"
)
_ZH_PERSON = re.compile(rf"([{_SURNAMES}](?:{_TITLES})|[小老][{_SURNAMES}](?![{_SURNAMES}]))")
# Ours, not the customer's: "我们的小张", "我们的技术总监老陈", "our colleague Kevin".
_OURS_BEFORE = re.compile(
    r"(?:我们|我方|我司|咱们)的?\S{0,10}$|\bour\s+(?:\w+\s+)?$", re.IGNORECASE
)
_EN_HONORIFIC = r"(?:Mr|Ms|Mrs|Dr|Director|VP|President|Professor|Prof|Manager|Dean|Chairman)"
_EN_PERSON = re.compile(rf"\b{_EN_HONORIFIC}\.?\s+[A-Z][a-z]+")
_TITLE_NEAR = re.compile(
    r"\b(CIO|CTO|CEO|CFO|COO|HR director|head of IT|head of training)\b"
    r"|(副行长|总经理|副总经理|分管副总|信息中心主任|人力资源总监|培训中心主任|CIO|CTO)"
)
_PRONOUN = re.compile(r"^(?:他|她|he\b|she\b|who\b)")


def _people(playbook: Playbook, stage_id: str, clauses: list[_Clause], found: dict) -> None:
    """The customer's people named in the note, into the people field of the stage at hand
    (or the latest one before it). A role or attitude said in a clause belongs to the person
    named last before it ("周主任说最终是孙总拍板": 孙总 decides); a clause starting with
    他/她/he/she is about the person named last."""
    spec = next(
        (f for f in reversed(list(_fields_up_to(playbook, stage_id))) if f.type == "stakeholder"),
        None,
    )
    if spec is None:
        return
    people: dict[str, dict[str, Any]] = {}
    evidence: list[str] = []
    last: str | None = None
    ours: set[str] = set()
    for clause in clauses:
        mentions = _mentions(clause, ours)
        follows = last is not None and (_PRONOUN.match(clause.folded) or _continues(clause))
        if not mentions and follows:
            mentions = [(0, last)]  # "王处长人挺好的，对我们比较有好感": still 王处长
        for _, name in mentions:
            people.setdefault(name, {"name": name})
        title = _TITLE_NEAR.search(clause.text)
        if title and len({name for _, name in mentions}) == 1:
            people[mentions[0][1]].setdefault("title", title[1] or title[2])
        for at, part, value in _parts_in(clause):
            owner = _owner_of(mentions, at)
            if owner is not None:
                people[owner].setdefault(part, value)
        if mentions:
            last = mentions[-1][1]
            evidence.append(clause.text)
    if people:
        found[spec.id] = Proposal(list(people.values()), "，".join(dict.fromkeys(evidence)))


def _mentions(clause: _Clause, ours: set[str]) -> list[tuple[int, str]]:
    """(where, name) of each of the customer's people named in the clause, in order; a name
    once said to be ours stays ours."""
    found = [(m.start(1), m[1]) for m in _ZH_PERSON.finditer(clause.text)]
    found += [(m.start(), m[0]) for m in _EN_PERSON.finditer(clause.text)]
    for at, name in found:
        if _OURS_BEFORE.search(clause.text[max(0, at - 16) : at]):
            ours.add(name)
    return sorted((at, name) for at, name in found if name not in ours)


def _continues(clause: _Clause) -> bool:
    """A clause without a subject that says how someone feels about us ("对我们比较有好感")."""
    return clause.folded.startswith(("对我们", "对我方", "is ", "was ", "seems ", "very "))


def _owner_of(mentions: list[tuple[int, str]], at: int) -> str | None:
    """The person named last before a word, else the first named after it."""
    before = [name for where, name in mentions if where <= at]
    if before:
        return before[-1]
    return mentions[0][1] if mentions else None


def _parts_in(clause: _Clause) -> list[tuple[int, str, Any]]:
    """An attitude or a role said in the clause (支持, 有顾虑, 拍板, decision maker)."""
    parts = []
    attitude = attitude_word(clause.folded)
    if attitude is not None:
        parts.append((attitude[0], "attitude", attitude[1]))
    role = role_word(clause.folded)
    if role is not None:
        parts.append((role[0], "role", role[1]))
    return parts


# -- the next step ---------------------------------------------------------------------------
_ACTION = re.compile(
    r"做|去|约|安排|汇报|演示|交流|拜访|发|见|开会|过去|demo|meet|visit|call|send|present|follow up"
)


def _next_step(clauses: list[_Clause], taken: set[str], ctx: _Context) -> NextStep | None:
    """The first thing the rep will do on a day to come ("下周三做技术交流"), where no field
    took that sentence and it negates nothing."""
    today = ctx.now.date()
    for clause in clauses:
        if any(clause.text in evidence for evidence in taken) or _negated(clause.folded):
            continue
        for match in _DATE.finditer(clause.folded):
            period = from_key(_period_key(match[0].strip(), ctx))
            rest = (clause.folded[: match.start()] + " " + clause.folded[match.end() :]).strip()
            if period is not None and period.end > today and _ACTION.search(rest):
                return NextStep(_without(clause, match), period.key, clause.text)
    return None


def _without(clause: _Clause, date: re.Match[str]) -> str:
    """The clause without its date, as the rep wrote it."""
    start, end = (unfolded_index(clause.text, at) for at in date.span())
    return (clause.text[:start] + clause.text[end:]).strip(" ，,")


# -- shared -----------------------------------------------------------------------------------
def _value_of(spec: FieldSpec, text: str, ctx: _Context) -> Any:
    if spec.type in ("date", "milestone"):
        return _period_key(text, ctx)
    result = parse_answer(spec, text, now=ctx.now, currency=ctx.currency)
    return _freeze(result.value) if isinstance(result, Valid) else None


def _period_key(text: str, ctx: _Context) -> str | None:
    """A date or period in the note, by our own readers only: dateparser, the typed answers'
    fallback, is slow and lenient, and what it alone reads is too loose to propose."""
    try:
        return read_period(fold(text), ctx.now, fallback=False).key
    except DateProblem:
        return None


def _freeze(value: Any) -> Any:
    """Hashable, to compare values found in several places."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return {k: _thaw(v) for k, v in value}
    return value


def _one(found: list[Proposal]) -> Proposal | None:
    """The value the note gives, if it gives one: two different ones are not chosen between."""
    values = {repr(p.value) for p in found}
    return found[0] if len(values) == 1 else None


_READERS: dict[str, Callable[[FieldSpec, list[_Clause], _Context], Proposal | None]] = {
    "money": _money,
    "number": _number,
    "date": _date,
    "milestone": _milestone,
    "choice": _choice,
    "multichoice": _multichoice,
    "list": _list,
    "text": _text,
}


# -- the public form (``stagecoach note parse``) ----------------------------------------------
def to_public(spec: FieldSpec, value: Any, currency: str) -> Any:
    """A stored value in the documented JSON form: money in major units (a number, or
    ``{"amount", "approx"}`` / ``{"low", "high"}``), dates as period keys, option ids."""
    if spec.type != "money":
        return value
    if isinstance(value, dict):
        return {k: v if isinstance(v, bool) else _major(v, currency) for k, v in value.items()}
    return _major(value, currency)


def _major(minor: int, currency: str) -> int | float:
    return plain(to_major(minor, currency))
