"""The question-flow engine: what to ask next, what is missing, what blocks the next stage.

Pure functions over a playbook and a deal's answers (a dict keyed by field and checklist ids);
no I/O, so every channel (terminal, Telegram) and every test shares one source of truth.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flows.playbook import ChecklistItem, Condition, FieldSpec, Playbook, Stage

Answers = Mapping[str, Any]


@dataclass(frozen=True)
class Question:
    """One thing to ask: a field, or an exit-checklist item answered yes/no."""

    key: str
    stage_id: str
    spec: FieldSpec | None = None
    item: ChecklistItem | None = None

    @property
    def is_checklist(self) -> bool:
        return self.item is not None


@dataclass(frozen=True)
class GapReport:
    """What a stage still lacks."""

    stage_id: str
    missing: tuple[FieldSpec, ...]
    unchecked: tuple[ChecklistItem, ...]
    total: int

    @property
    def open_count(self) -> int:
        return len(self.missing) + len(self.unchecked)

    @property
    def closed(self) -> bool:
        return self.open_count == 0

    @property
    def readiness(self) -> int:
        """Percentage of required fields and exit items done (100 for an empty stage)."""
        if self.total == 0:
            return 100
        return round(100 * (self.total - self.open_count) / self.total)


@dataclass(frozen=True)
class AdvanceCheck:
    """Whether a deal may move from one stage to another, and what stands in the way."""

    from_stage: str
    to_stage: str
    direction: Literal["forward", "back", "same"]
    blockers: tuple[GapReport, ...]

    @property
    def allowed(self) -> bool:
        return self.direction == "back" or (self.direction == "forward" and not self.blockers)


# -- answers and conditions ------------------------------------------------------------------


def is_answered(answers: Answers, key: str) -> bool:
    """A field counts as answered when it holds a value other than empty text or an empty list."""
    value = answers.get(key)
    return value is not None and value != "" and value != [] and value != {}


def is_checked(answers: Answers, key: str) -> bool:
    value = answers.get(key)
    return isinstance(value, dict) and value.get("checked") is True


def condition_holds(condition: Condition, answers: Answers) -> bool:
    value = answers.get(condition.field)
    tests = []
    if condition.answered is not None:
        tests.append(is_answered(answers, condition.field) == condition.answered)
    if condition.equals is not None:
        tests.append(_matches(value, [condition.equals]))
    if condition.not_equals is not None:
        tests.append(not _matches(value, [condition.not_equals]))
    if condition.any_of is not None:
        tests.append(_matches(value, condition.any_of))
    return all(tests)


def _matches(value: Any, wanted: Collection[Any]) -> bool:
    """A multiple-choice answer matches when any of its options is wanted."""
    values = value if isinstance(value, list) else [value]
    return any(v in wanted for v in values if v is not None)


def applies(spec: FieldSpec, answers: Answers) -> bool:
    """Whether a field is asked at all, given earlier answers (``ask_if``)."""
    return all(condition_holds(c, answers) for c in spec.ask_if)


# -- gaps ------------------------------------------------------------------------------------


def gap_report(playbook: Playbook, stage_id: str, answers: Answers) -> GapReport:
    """Missing required fields and unchecked exit items of one stage.

    Args:
        playbook: the team's playbook.
        stage_id: the stage to report on.
        answers: the deal's answers keyed by field and checklist id.
    Returns:
        The stage's gap report; fields that do not apply (``ask_if``) are not counted.
    """
    stage = playbook.stage(stage_id)
    required = [f for f in stage.fields if f.required and applies(f, answers)]
    missing = tuple(f for f in required if not is_answered(answers, f.id))
    unchecked = tuple(i for i in stage.checklist if not is_checked(answers, i.id))
    return GapReport(stage_id, missing, unchecked, total=len(required) + len(stage.checklist))


def gap_keys(stage: Stage) -> frozenset[str]:
    """The answer keys ``gap_report`` reads for a stage: its required fields, the fields their
    ``ask_if`` conditions test, and its exit items (other answers cannot change the report)."""
    keys = {item.id for item in stage.checklist}
    for spec in stage.fields:
        if spec.required:
            keys |= {spec.id, *(c.field for c in spec.ask_if)}
    return frozenset(keys)


class GapChecker:
    """``gap_report`` for many deals at once (digests), with the same results.

    Each stage's required fields are picked once, and equal reports are shared: a stage has
    only a few distinct gap sets, so 100,000 deals hold a few hundred reports, not 100,000.
    """

    def __init__(self, playbook: Playbook):
        self._stages = {stage.id: _StageGaps.of(stage) for stage in playbook.stages}
        self._shared: dict[tuple, GapReport] = {}

    def report(self, stage_id: str, answers: Answers) -> GapReport:
        """As ``gap_report(playbook, stage_id, answers)``; KeyError for an unknown stage."""
        stage = self._stages[stage_id]
        get = answers.get
        applying = [f for f in stage.required if not f.ask_if or applies(f, answers)]
        # is_answered and is_checked inlined: this runs for every open deal of a team.
        missing = tuple(
            f.id for f in applying if (v := get(f.id)) is None or v == "" or v == [] or v == {}
        )
        unchecked = tuple(
            key
            for key in stage.checklist
            if not (isinstance(v := get(key), dict) and v.get("checked") is True)
        )
        shared = (stage_id, len(applying), missing, unchecked)
        report = self._shared.get(shared)
        if report is None:
            report = self._shared[shared] = GapReport(
                stage_id,
                tuple(stage.fields[key] for key in missing),
                tuple(stage.items[key] for key in unchecked),
                total=len(applying) + len(stage.checklist),
            )
        return report


@dataclass(frozen=True)
class _StageGaps:
    required: tuple[FieldSpec, ...]  # in stage order
    checklist: tuple[str, ...]  # exit item ids, in order
    fields: dict[str, FieldSpec]
    items: dict[str, ChecklistItem]

    @classmethod
    def of(cls, stage: Stage) -> _StageGaps:
        return cls(
            required=tuple(f for f in stage.fields if f.required),
            checklist=tuple(i.id for i in stage.checklist),
            fields={f.id: f for f in stage.fields},
            items={i.id: i for i in stage.checklist},
        )


def check_advance(playbook: Playbook, from_stage: str, to_stage: str, answers: Answers):
    """What blocks moving a deal between two stages.

    Moving forward needs the gaps of the current stage and of every stage jumped over closed;
    moving back is always allowed (the caller records it).

    Returns:
        An AdvanceCheck whose ``blockers`` are the open gap reports, in stage order.
    """
    start, end = playbook.stage_index(from_stage), playbook.stage_index(to_stage)
    if end <= start:
        return AdvanceCheck(from_stage, to_stage, "back" if end < start else "same", ())
    reports = (gap_report(playbook, s.id, answers) for s in playbook.stages[start:end])
    blockers = tuple(r for r in reports if not r.closed)
    return AdvanceCheck(from_stage, to_stage, "forward", blockers)


def next_stage(playbook: Playbook, stage_id: str) -> Stage | None:
    index = playbook.stage_index(stage_id)
    return playbook.stages[index + 1] if index + 1 < len(playbook.stages) else None


# -- what to ask -----------------------------------------------------------------------------


def questions_of(stage: Stage, answers: Answers) -> list[Question]:
    """Every question of a stage that applies, fields first, in playbook order."""
    fields = [Question(f.id, stage.id, spec=f) for f in stage.fields if applies(f, answers)]
    items = [Question(i.id, stage.id, item=i) for i in stage.checklist]
    return fields + items


def next_question(
    playbook: Playbook, stage_id: str, answers: Answers, *, passed: Collection[str] = ()
) -> Question | None:
    """The next question of an update run.

    Order: the current stage's gaps (required fields, then unchecked exit items); gaps left
    open in earlier stages (target-group criteria left unknown, or after a forced advance);
    then the current stage's unanswered optional fields. Questions in ``passed`` (skipped, or
    answered "no" in this run) are not asked again in the same run; they stay gaps.

    Args:
        playbook: the team's playbook.
        stage_id: the deal's current stage.
        answers: the deal's answers.
        passed: keys already put to the rep in this run and left open.
    Returns:
        The question to ask, or None when the run is complete.
    """
    for question in _run_order(playbook, stage_id, answers):
        if question.key not in passed:
            return question
    return None


def _run_order(playbook: Playbook, stage_id: str, answers: Answers):
    current = playbook.stage(stage_id)
    yield from _gap_questions(current, answers)
    for stage in playbook.stages[: playbook.stage_index(stage_id)]:
        yield from _gap_questions(stage, answers)
    for question in questions_of(current, answers):
        if question.spec and not question.spec.required and not is_answered(answers, question.key):
            yield question


def _gap_questions(stage: Stage, answers: Answers):
    for question in questions_of(stage, answers):
        if _is_gap(question, answers):
            yield question


def _is_gap(question: Question, answers: Answers) -> bool:
    if question.item is not None:
        return not is_checked(answers, question.key)
    return question.spec.required and not is_answered(answers, question.key)


def question_for(playbook: Playbook, key: str) -> Question:
    """The question for one named field or checklist item (to edit an answer)."""
    stage = playbook.stage_of(key)
    for question in questions_of(stage, {}) + _conditional_fields(stage):
        if question.key == key:
            return question
    raise KeyError(key)


def _conditional_fields(stage: Stage) -> list[Question]:
    return [Question(f.id, stage.id, spec=f) for f in stage.fields if f.ask_if]


# -- qualification ---------------------------------------------------------------------------


def qualification_misses(playbook: Playbook, answers: Answers) -> list[FieldSpec]:
    """Fields of the qualifying stage whose answers put the customer outside the target group."""
    stage = playbook.qualifying_stage
    if stage is None:
        return []
    return [f for f in stage.fields if is_answered(answers, f.id) and not _qualifies(f, answers)]


def qualification_unknowns(playbook: Playbook, answers: Answers) -> list[FieldSpec]:
    """Target-group criteria not answered yet (skipped as "not known yet")."""
    stage = playbook.qualifying_stage
    return list(gap_report(playbook, stage.id, answers).missing) if stage else []


def _qualifies(spec: FieldSpec, answers: Answers) -> bool:
    value = answers[spec.id]
    if spec.expect is not None:
        return value == spec.expect
    rejected = {o.id for o in spec.options if not o.qualifies}
    values = value if isinstance(value, list) else [value]
    return not any(v in rejected for v in values)
