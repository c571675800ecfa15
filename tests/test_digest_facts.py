"""The digest's fast paths give the same results as the plain ones: GapChecker against
gap_report, FactChecker's answer keys against everything it reads, and build_digest with
precomputed facts against build_digest over the deals' answers."""

from __future__ import annotations

import random
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass
from datetime import date
from typing import Any

import pytest

from flows.digest import DealSnapshot, FactChecker, build_digest
from flows.engine import GapChecker, gap_keys, gap_report
from flows.playbook import FieldSpec, Playbook, load_playbook, shipped_playbook_path
from tests.test_digest import DEALS, MOVES, NOW, REPS, SINCE, TODAY

SHIPPED = load_playbook()


def _conditional_playbook() -> Playbook:
    """The shipped playbook with required fields asked only after an answer of their own
    stage (current_system_notes) or of an earlier one (unstated_needs)."""
    raw = tomllib.loads(shipped_playbook_path().read_text(encoding="utf-8"))
    stages = {stage["id"]: stage for stage in raw["stages"]}
    notes = next(f for f in stages["potential"]["fields"] if f["id"] == "current_system_notes")
    notes["required"] = True
    assert notes["ask_if"]
    unstated = next(f for f in stages["intent"]["fields"] if f["id"] == "unstated_needs")
    unstated["required"] = True
    unstated["ask_if"] = [{"field": "current_system", "in": ["incomplete", "works_badly"]}]
    return Playbook.model_validate(raw)


PLAYBOOKS = {"shipped": SHIPPED, "conditional": _conditional_playbook()}
PERSONS = [
    {"name": "王总", "role": "decision_maker", "attitude": 2},
    {"name": "Li", "role": "decision_maker", "attitude": 1},
    {"name": "Wu", "role": "project_manager", "attitude": 3},
    {"name": "Zhao", "role": "decision_maker", "attitude": -1},
]


def _values(spec: FieldSpec) -> list[Any]:
    """Answers of every kind a field may hold, empty ones included."""
    options = [o.id for o in spec.options]
    typed = {
        "date": ["2020-01-01", "2099-01-01", "not a date"],
        "stakeholder": [PERSONS[:1], PERSONS[1:2], PERSONS[2:], PERSONS, [{"name": "x"}]],
        "choice": options[:3],
        "multichoice": [options[:1], options[1:3]],
        "yesno": [True, False],
    }.get(spec.type, ["text", 10, 50_000_000])
    return [None, "", [], {}, *typed]


ITEM_VALUES = [None, {}, {"checked": True}, {"checked": False}, {"checked": "yes"}, True, "x"]


def random_answers(playbook: Playbook, rng: random.Random) -> dict[str, Any]:
    """Some answer (or none) for each field and exit item of every stage."""
    answers: dict[str, Any] = {}
    for stage in playbook.stages:
        for spec in stage.fields:
            value = rng.choice(_values(spec))
            if value is not None or rng.random() < 0.5:
                answers[spec.id] = value
        for item in stage.checklist:
            answers[item.id] = rng.choice(ITEM_VALUES)
    return {k: v for k, v in answers.items() if v is not None or rng.random() < 0.3}


def answer_sets(playbook: Playbook, count: int = 300) -> Iterator[dict[str, Any]]:
    rng = random.Random(20261126)
    yield {}
    for _ in range(count):
        yield random_answers(playbook, rng)


class Reads(Mapping[str, Any]):
    """Answers that remember every key looked at."""

    def __init__(self, answers: dict[str, Any]):
        self._answers = answers
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self._answers[key]

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return key in self._answers

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the checks look keys up, they never list the answers")

    def __len__(self) -> int:
        raise AssertionError("the checks look keys up, they never count the answers")


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_gap_checker_reports_what_gap_report_does_on_every_stage(name: str) -> None:
    playbook = PLAYBOOKS[name]
    checker = GapChecker(playbook)
    closed = open_ = 0
    for answers in answer_sets(playbook):
        for stage in playbook.stages:
            got = checker.report(stage.id, answers)
            assert got == gap_report(playbook, stage.id, answers), (stage.id, answers)
            closed += got.closed
            open_ += not got.closed
    assert closed and open_  # the answers reach both outcomes


def test_gap_checker_counts_a_conditional_field_only_when_it_applies() -> None:
    playbook = PLAYBOOKS["conditional"]
    checker = GapChecker(playbook)
    asked = checker.report("potential", {"current_system": "incomplete"})
    not_asked = checker.report("potential", {"current_system": "none"})
    assert asked.total == not_asked.total + 1
    assert "current_system_notes" in [f.id for f in asked.missing]
    assert "current_system_notes" not in [f.id for f in not_asked.missing]


def test_gap_checker_shares_equal_reports() -> None:
    checker = GapChecker(SHIPPED)
    first = checker.report("potential", {"budget": 1})
    assert checker.report("potential", {"budget": 2, "won_contract_signed": True}) is first
    assert checker.report("potential", {}) is not first


def test_gap_checker_rejects_an_unknown_stage_as_gap_report_does() -> None:
    with pytest.raises(KeyError):
        gap_report(SHIPPED, "retired_stage", {})
    with pytest.raises(KeyError):
        GapChecker(SHIPPED).report("retired_stage", {})


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_gap_keys_are_every_key_gap_report_reads(name: str) -> None:
    playbook = PLAYBOOKS[name]
    for answers in answer_sets(playbook, 100):
        for stage in playbook.stages:
            reads = Reads(answers)
            gap_report(playbook, stage.id, reads)
            assert reads.read <= gap_keys(stage), stage.id


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_facts_read_only_their_stage_keys_and_need_no_others(name: str) -> None:
    playbook = PLAYBOOKS[name]
    checker = FactChecker(playbook)
    raised = 0
    for n, answers in enumerate(answer_sets(playbook)):
        close = [None, date(2020, 1, 1), date(2099, 1, 1)][n % 3]
        for stage in playbook.stages:
            reads = Reads(answers)
            facts = checker.facts(
                stage_id=stage.id, answers=reads, expected_close=close, today=TODAY
            )
            keys = checker.keys[stage.id]
            assert reads.read <= keys, stage.id
            only = {k: v for k, v in answers.items() if k in keys}
            again = checker.facts(
                stage_id=stage.id, answers=only, expected_close=close, today=TODAY
            )
            assert again == facts
            raised += len(facts.flags)
    assert raised  # risk flags were raised, not only gaps


def _by_deal_id(value: Any) -> Any:
    """A digest with each deal snapshot replaced by its id (answers left out)."""
    if isinstance(value, DealSnapshot):
        return value.deal_id
    if isinstance(value, tuple):
        return tuple(_by_deal_id(v) for v in value)
    if is_dataclass(value):
        return {f.name: _by_deal_id(getattr(value, f.name)) for f in fields(value)}
    return value


def test_build_digest_with_precomputed_facts_matches_the_answers_path() -> None:
    checker = FactChecker(SHIPPED)
    stages = {stage.id for stage in SHIPPED.stages}
    facts = {
        d.deal_id: checker.facts(
            stage_id=d.stage_id, answers=d.answers, expected_close=d.expected_close, today=TODAY
        )
        for d in DEALS
        if d.status == "open" and d.stage_id in stages and d.answers  # no answers: not given
    }
    bare = [d._replace(answers={}) for d in DEALS]
    window = {"moves": MOVES, "reps": REPS, "since": SINCE, "now": NOW, "today": TODAY}
    plain = build_digest(SHIPPED, deals=DEALS, **window)
    fast = build_digest(SHIPPED, deals=bare, facts=facts, **window)
    assert _by_deal_id(fast) == _by_deal_id(plain)
    assert plain.blocked and plain.coaching  # the facts mattered
    # Without the facts, the bare deals look as if nothing was answered.
    assert _by_deal_id(build_digest(SHIPPED, deals=bare, **window)) != _by_deal_id(plain)
