"""Risk flags: the shipped flags on real answers, and the errors a broken flag produces."""

from __future__ import annotations

import copy
import tomllib
from datetime import date, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
import tomli_w

from flows.playbook import PlaybookError, StakeholderRole, load_playbook, shipped_playbook_path
from flows.risks import RiskChecker, raised_flags
from flows.stakeholder import PART_BY_ID

PLAYBOOK = load_playbook()
TODAY = date(2026, 3, 10)
SHIPPED_FLAGS = [
    "no_supportive_decision_maker",
    "no_preliminary_quote",
    "no_internal_supporter",
    "no_signing_date",
    "close_date_passed",
]


def person(role: str = "decision_maker", attitude: int | None = 2) -> dict[str, Any]:
    found = {"name": "王总", "title": "CIO", "role": role, "influence": "high"}
    return found if attitude is None else {**found, "attitude": attitude}


# Answers that raise nothing at any stage: a supportive decision maker, a quote, a signing date.
HEALTHY = {
    "decision_makers": [person(attitude=2)],
    "preliminary_quote": 50_000_000,
    "signing_date": "2026-04-01",
}


def flags(
    stage_id: str,
    answers: dict[str, Any] | None = None,
    *,
    status: str = "open",
    expected_close: date | None = None,
    today: date = TODAY,
    playbook=PLAYBOOK,
) -> list[str]:
    raised = raised_flags(
        playbook,
        stage_id=stage_id,
        status=status,
        answers=HEALTHY if answers is None else answers,
        expected_close=expected_close,
        today=today,
    )
    return [flag.id for flag in raised]


def without(*keys: str, **changes: Any) -> dict[str, Any]:
    answers = {k: v for k, v in HEALTHY.items() if k not in keys}
    return {**answers, **changes}


# -- the shipped flags ----------------------------------------------------------------------------


def test_shipped_flags():
    assert [flag.id for flag in PLAYBOOK.risk_flags] == SHIPPED_FLAGS
    for flag in PLAYBOOK.risk_flags:
        assert len(flag.tests) == 1, flag.id
        for text in (flag.text, flag.coaching):
            assert set(text) == {"zh", "en"} and all(v.strip() for v in text.values())


def test_roles_match_the_stakeholder_roles():
    assert get_args(StakeholderRole) == PART_BY_ID["role"].options


@pytest.mark.parametrize("stage", [s.id for s in PLAYBOOK.stages])
def test_healthy_deal_raises_nothing_at_any_stage(stage):
    assert flags(stage) == []


# -- no_supporter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("people", "raised"),
    [
        ([person(attitude=1)], False),  # exactly +1 counts
        ([person(attitude=3)], False),
        ([person(attitude=0)], True),
        ([person(attitude=-2)], True),
        ([person(attitude=None)], True),  # attitude not given yet
        ([], True),
        ([person("project_manager", 3), person("outside_expert", 2)], True),  # role filter
        ([person("team_member", 3), person(attitude=0), person(attitude=1)], False),
        (person(attitude=1), False),  # a single stakeholder stored as one dict
    ],
)
def test_no_supportive_decision_maker(people, raised):
    got = flags("approved", without(decision_makers=people))
    assert ("no_supportive_decision_maker" in got) is raised


def test_no_decision_makers_answered_at_all():
    assert flags("approved", without("decision_makers")) == ["no_supportive_decision_maker"]


def test_decision_maker_flag_applies_from_approved_on():
    answers = without(decision_makers=[person(attitude=1)])
    none = without(decision_makers=[])
    assert flags("intent", none) == []
    assert flags("approved", none) == ["no_supportive_decision_maker"]
    assert flags("commercial", none) == [
        "no_supportive_decision_maker",
        "no_internal_supporter",
    ]
    # +1 is enough for the decision-maker flag, not for the internal supporter (+2, any role).
    assert flags("preliminary", answers) == ["no_internal_supporter"]


def test_internal_supporter_any_role():
    backers = [person(attitude=1), person("team_member", 2)]
    assert flags("preliminary", without(decision_makers=backers)) == []
    assert flags("preliminary", without(decision_makers=backers[:1])) == ["no_internal_supporter"]


# -- missing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", []])
def test_no_preliminary_quote(value):
    answers = without("preliminary_quote") if value is None else without(preliminary_quote=value)
    assert flags("preliminary", answers) == ["no_preliminary_quote"]


def test_preliminary_quote_answered():
    assert flags("preliminary", without(preliminary_quote=0)) == []


def test_missing_flag_respects_until_stage():
    answers = without("preliminary_quote")
    assert flags("approved", answers) == []
    assert flags("commercial", answers) == []


def test_no_signing_date_only_at_commercial():
    answers = without("signing_date")
    assert flags("commercial", answers) == ["no_signing_date"]
    assert flags("preliminary", answers) == []
    assert flags("won", answers) == []


# -- past_date ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("close", "raised"),
    [(TODAY - timedelta(days=1), True), (TODAY, False), (TODAY + timedelta(days=1), False)],
)
def test_close_date_passed(close, raised):
    got = flags("potential", expected_close=close)
    assert got == (["close_date_passed"] if raised else [])


def test_close_date_none_raises_nothing():
    assert flags("commercial", expected_close=None) == []


def test_close_date_flag_from_potential_on():
    yesterday = TODAY - timedelta(days=1)
    assert flags("target", expected_close=yesterday) == []
    for stage in ("potential", "intent", "approved", "preliminary", "commercial", "won"):
        assert flags(stage, expected_close=yesterday) == ["close_date_passed"], stage


def test_past_date_on_a_date_field(tmp_path):
    raw = _shipped()
    raw["risk_flags"].append(_flag("bid_passed", "commercial", past_date="bid_date"))
    playbook = load_playbook(_write(tmp_path, raw))
    for bid, raised in [("2026-03-09", True), ("2026-03-10", False), (None, False)]:
        answers = without("bid_date") if bid is None else without(bid_date=bid)
        got = flags("commercial", answers, playbook=playbook)
        assert got == (["bid_passed"] if raised else []), bid
    assert flags("commercial", without(bid_date=date(2026, 3, 9)), playbook=playbook) == [
        "bid_passed"
    ]
    assert flags("commercial", without(bid_date="not a date"), playbook=playbook) == []


# -- status and order -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["won", "lost"])
def test_closed_deals_are_never_flagged(status):
    yesterday = TODAY - timedelta(days=1)
    assert flags("commercial", {}, status=status, expected_close=yesterday) == []
    assert flags("preliminary", {}, status=status, expected_close=yesterday) == []


def test_flags_in_playbook_order_and_as_playbook_objects():
    raised = raised_flags(
        PLAYBOOK,
        stage_id="preliminary",
        status="open",
        answers={},
        expected_close=TODAY - timedelta(days=30),
        today=TODAY,
    )
    assert [f.id for f in raised] == [
        "no_supportive_decision_maker",
        "no_preliminary_quote",
        "no_internal_supporter",
        "close_date_passed",
    ]
    assert all(any(f is g for g in PLAYBOOK.risk_flags) for f in raised)
    assert raised[0].coaching["zh"] and raised[0].text["en"]


def test_unknown_stage_raises_nothing():
    checker = RiskChecker(PLAYBOOK)
    got = checker.raised(
        stage_id="gone", status="open", answers={}, expected_close=date(2000, 1, 1), today=TODAY
    )
    assert got == []


def test_playbook_without_flags(tmp_path):
    raw = _shipped()
    del raw["risk_flags"]
    playbook = load_playbook(_write(tmp_path, raw))
    assert playbook.risk_flags == []
    assert flags("commercial", {}, expected_close=date(2000, 1, 1), playbook=playbook) == []


# -- broken flags ---------------------------------------------------------------------------------


def _shipped() -> dict[str, Any]:
    return copy.deepcopy(tomllib.loads(shipped_playbook_path().read_text(encoding="utf-8")))


def _flag(flag_id: str, from_stage: str, **rest: Any) -> dict[str, Any]:
    return {
        "id": flag_id,
        "text": {"zh": "有风险", "en": "At risk"},
        "coaching": {"zh": "为什么？", "en": "Why?"},
        "from_stage": from_stage,
        **rest,
    }


def _write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "flags.toml"
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def _problems_with(tmp_path: Path, flag: dict[str, Any]) -> list[str]:
    raw = _shipped()
    raw["risk_flags"].append(flag)
    with pytest.raises(PlaybookError) as caught:
        load_playbook(_write(tmp_path, raw))
    return caught.value.problems


def _one(problems: list[str], *parts: str) -> str:
    matching = [p for p in problems if all(part in p for part in parts)]
    assert matching, f"no problem mentions {parts}: {problems}"
    return matching[0]


@pytest.mark.parametrize(
    ("flag", "parts"),
    [
        (
            _flag("bad", "nowhere", missing="budget"),
            ("risk flag 'bad' › from_stage: unknown stage 'nowhere'",),
        ),
        (
            _flag("bad", "potential", until_stage="later", missing="budget"),
            ("risk flag 'bad' › until_stage: unknown stage 'later'",),
        ),
        (
            _flag("bad", "commercial", until_stage="potential", missing="budget"),
            ("risk flag 'bad' › until_stage", "comes before from_stage 'commercial'"),
        ),
        (
            _flag("bad", "potential", missing="budjet"),
            ("risk flag 'bad' › missing: unknown field 'budjet'",),
        ),
        (
            _flag("bad", "approved", no_supporter={"field": "decision_makrs"}),
            ("risk flag 'bad' › no_supporter: unknown field 'decision_makrs'",),
        ),
        (
            _flag("bad", "approved", past_date="close_date"),
            ("risk flag 'bad' › past_date: unknown field 'close_date'",),
        ),
        (
            _flag("bad", "approved", no_supporter={"field": "sponsor"}),
            ("risk flag 'bad' › no_supporter", "'sponsor' is a text field", "stakeholder field"),
        ),
        (
            _flag("bad", "approved", past_date="budget"),
            ("risk flag 'bad' › past_date", "'budget' is a money field", "date field"),
        ),
        (
            _flag("bad", "approved", past_date="procure_rfp_issued"),
            ("risk flag 'bad' › past_date", "is a milestone field", '"expected_close"'),
        ),
        (
            _flag("bad", "approved", missing="budget", past_date="expected_close"),
            ("risk flag 'bad': needs exactly one test", "found missing, past_date"),
        ),
        (
            _flag("bad", "approved"),
            ("risk flag 'bad': needs exactly one test", "found none"),
        ),
        (
            _flag("bad", "potential", missing="signing_date"),
            ("risk flag 'bad' › missing", "'signing_date' is asked only from stage 'commercial'"),
        ),
        (
            _flag("no_signing_date", "commercial", missing="bid_date"),
            ("risk flag 'no_signing_date': duplicate risk flag id",),
        ),
        (
            _flag("bad", "approved", no_supporter={"field": "decision_makers", "role": "boss"}),
            ("risk flag 'bad' › no_supporter › role",),
        ),
        (
            _flag("bad", "approved", no_supporter={"field": "decision_makers", "min_attitude": 4}),
            ("risk flag 'bad' › no_supporter › min_attitude",),
        ),
        (
            {**_flag("bad", "approved", missing="budget"), "wen": "typo"},
            ("risk flag 'bad' › wen: unknown key",),
        ),
        (
            {**_flag("bad", "approved", missing="budget"), "coaching": {"zh": "为什么？"}},
            ("risk flag 'bad' › coaching: missing translation en",),
        ),
        (
            {**_flag("bad", "approved", missing="budget"), "text": {"zh": "", "en": "At risk"}},
            ("risk flag 'bad' › text: missing translation zh",),
        ),
    ],
)
def test_broken_flag(tmp_path, flag, parts):
    _one(_problems_with(tmp_path, flag), *parts)


def test_flag_without_id_or_stage(tmp_path):
    flag = _flag("bad", "approved", missing="budget")
    del flag["from_stage"]
    _one(_problems_with(tmp_path, flag), "risk flag 'bad' › from_stage: required key is missing")


@pytest.mark.parametrize(
    "flag",
    [
        _flag("ok", "potential", past_date="expected_close"),
        _flag("ok", "commercial", until_stage="commercial", past_date="negotiation_date"),
        _flag("ok", "potential", no_supporter={"field": "project_team", "min_attitude": -3}),
        _flag("ok", "preliminary", missing="champion"),
    ],
)
def test_valid_extra_flags_load(tmp_path, flag):
    raw = _shipped()
    raw["risk_flags"].append(flag)
    playbook = load_playbook(_write(tmp_path, raw))
    assert playbook.risk_flags[-1].id == "ok"
