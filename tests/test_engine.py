"""The flow engine on the shipped playbook: every stage's questions, gaps and advance rules."""

import pytest

from flows import engine
from flows.playbook import FieldSpec, Stage, load_playbook

PLAYBOOK = load_playbook()
STAGE_IDS = [s.id for s in PLAYBOOK.stages]
PERSON = {
    "name": "王总",
    "title": "CIO",
    "role": "decision_maker",
    "influence": "high",
    "attitude": 2,
}


def sample(spec: FieldSpec):
    """A valid value of each field type."""
    return {
        "text": "text",
        "number": 10,
        "money": 50_000_000,
        "percent": 30,
        "date": "2026-12-01",
        "milestone": {"date": "2026-12-15", "owner": "IT"},
        "choice": spec.options[0].id if spec.options else None,
        "multichoice": [spec.options[0].id] if spec.options else None,
        "yesno": True,
        "list": ["Acme"],
        "stakeholder": [PERSON],
    }[spec.type]


def completed(stage: Stage, answers=None) -> dict:
    """Answers that close every gap of a stage (conditional fields included)."""
    answers = dict(answers or {})
    for spec in stage.fields:
        answers[spec.id] = sample(spec)
    for item in stage.checklist:
        answers[item.id] = {"checked": True, "note": None}
    return answers


def completed_until(stage_id: str) -> dict:
    answers: dict = {}
    for stage in PLAYBOOK.stages[: PLAYBOOK.stage_index(stage_id)]:
        answers = completed(stage, answers)
    return answers


@pytest.mark.parametrize("stage", PLAYBOOK.stages, ids=STAGE_IDS)
def test_each_stage_asks_its_required_fields_first_then_its_checklist(stage):
    answers = completed_until(stage.id)
    asked = []
    passed: list[str] = []
    while (q := engine.next_question(PLAYBOOK, stage.id, answers, passed=passed)) is not None:
        asked.append(q.key)
        passed.append(q.key)
    required = [f.id for f in stage.fields if f.required and engine.applies(f, answers)]
    items = [i.id for i in stage.checklist]
    assert asked[: len(required)] == required
    assert asked[len(required) : len(required) + len(items)] == items
    optional = [f.id for f in stage.fields if not f.required and engine.applies(f, answers)]
    assert asked[len(required) + len(items) :] == optional


@pytest.mark.parametrize("stage", PLAYBOOK.stages, ids=STAGE_IDS)
def test_each_stage_gap_report_goes_from_zero_to_closed(stage):
    empty = engine.gap_report(PLAYBOOK, stage.id, {})
    assert empty.total == empty.open_count
    assert empty.readiness == (100 if empty.total == 0 else 0)
    full = engine.gap_report(PLAYBOOK, stage.id, completed(stage))
    assert full.closed and full.readiness == 100


@pytest.mark.parametrize("stage", PLAYBOOK.stages[:-1], ids=STAGE_IDS[:-1])
def test_each_stage_blocks_the_next_until_its_gaps_are_closed(stage):
    following = engine.next_stage(PLAYBOOK, stage.id)
    answers = completed_until(stage.id)
    blocked = engine.check_advance(PLAYBOOK, stage.id, following.id, answers)
    has_gaps = bool(stage.checklist or any(f.required for f in stage.fields))
    assert blocked.allowed is not has_gaps
    assert engine.check_advance(PLAYBOOK, stage.id, following.id, completed(stage, answers)).allowed


def test_readiness_counts_fields_and_checklist_items():
    stage = PLAYBOOK.stage("intent")
    answers = {stage.fields[0].id: "needs", stage.checklist[0].id: {"checked": True}}
    report = engine.gap_report(PLAYBOOK, "intent", answers)
    assert report.open_count == report.total - 2
    assert report.readiness == round(100 * 2 / report.total)


def test_a_checklist_item_answered_no_stays_open():
    key = PLAYBOOK.stage("intent").checklist[0].id
    report = engine.gap_report(PLAYBOOK, "intent", {key: {"checked": False, "note": "not yet"}})
    assert key in [i.id for i in report.unchecked]


def test_jumping_two_stages_needs_both_stages_closed():
    answers = completed_until("potential")
    answers = completed(PLAYBOOK.stage("potential"), answers)
    check = engine.check_advance(PLAYBOOK, "potential", "approved", answers)
    assert not check.allowed
    assert [r.stage_id for r in check.blockers] == ["intent"]
    answers = completed(PLAYBOOK.stage("intent"), answers)
    assert engine.check_advance(PLAYBOOK, "potential", "approved", answers).allowed


def test_moving_back_is_always_allowed():
    check = engine.check_advance(PLAYBOOK, "commercial", "intent", {})
    assert check.allowed and check.direction == "back"
    assert engine.check_advance(PLAYBOOK, "intent", "intent", {}).direction == "same"


def test_conditional_field_is_asked_only_when_its_condition_holds():
    spec = PLAYBOOK.field("current_system_notes")
    assert spec.ask_if
    assert not engine.applies(spec, {})
    assert not engine.applies(spec, {"current_system": "none"})
    assert engine.applies(spec, {"current_system": "works_badly"})


def test_condition_tests():
    from flows.playbook import Condition

    assert engine.condition_holds(Condition(field="a", equals=True), {"a": True})
    assert not engine.condition_holds(Condition(field="a", not_equals="x"), {"a": "x"})
    assert engine.condition_holds(Condition(field="a", any_of=["x", "y"]), {"a": ["z", "y"]})
    assert engine.condition_holds(Condition(field="a", answered=False), {"a": ""})


def test_skipped_questions_are_not_asked_again_in_the_same_run():
    first = engine.next_question(PLAYBOOK, "potential", {})
    second = engine.next_question(PLAYBOOK, "potential", {}, passed=[first.key])
    assert second.key != first.key
    assert first.key in [f.id for f in engine.gap_report(PLAYBOOK, "potential", {}).missing]


def test_gaps_left_in_earlier_stages_are_asked_after_the_current_stage():
    answers = completed(PLAYBOOK.stage("intent"))
    earlier = PLAYBOOK.stage("potential").fields[0].id
    keys = []
    while (q := engine.next_question(PLAYBOOK, "intent", answers, passed=keys)) is not None:
        keys.append(q.key)
    assert earlier in keys


def test_editing_any_named_field_gives_its_question():
    for stage in PLAYBOOK.stages:
        for spec in stage.fields:
            assert engine.question_for(PLAYBOOK, spec.id).spec == spec
        for item in stage.checklist:
            assert engine.question_for(PLAYBOOK, item.id).item == item
    with pytest.raises(KeyError):
        engine.question_for(PLAYBOOK, "no_such_field")


def test_qualification_names_each_answer_outside_the_target_group():
    good = {"industry": "finance", "needs_training_it": True, "fits_profile": True}
    assert engine.qualification_misses(PLAYBOOK, good) == []
    bad = {**good, "industry": "other", "fits_profile": False}
    assert [f.id for f in engine.qualification_misses(PLAYBOOK, bad)] == [
        "industry",
        "fits_profile",
    ]
