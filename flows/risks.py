"""Risk flags: the playbook's warning conditions on an open deal's stage and answers.

Shown in managers' digests (the coaching queue) and on the rep's summary card. Pure functions,
no I/O; ``today`` is the caller's local date.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from flows.engine import applies, is_answered
from flows.periods import ends
from flows.playbook import Playbook, RiskFlag, SupporterTest

OPEN = "open"
EXPECTED_CLOSE = "expected_close"  # past_date target: the deal's expected close date

# A compiled test: (answers, expected_close, today) -> raised?
_Test = Callable[[Mapping[str, Any], date | None, date], bool]


def raised_flags(
    playbook: Playbook,
    *,
    stage_id: str,
    status: str,
    answers: Mapping[str, Any],
    expected_close: date | None,
    today: date,
) -> list[RiskFlag]:
    """The risk flags a deal raises, in playbook order.

    Args:
        playbook: the team's playbook.
        stage_id: the deal's current stage; a stage the playbook does not know raises nothing.
        status: "open", "won" or "lost"; only open deals raise flags.
        answers: the deal's answers keyed by field id.
        expected_close: the deal's expected close date (the deal column).
        today: the local date that past dates are compared with.
    """
    return RiskChecker(playbook).raised(
        stage_id=stage_id,
        status=status,
        answers=answers,
        expected_close=expected_close,
        today=today,
    )


@dataclass(frozen=True)
class _Compiled:
    flag: RiskFlag
    test: _Test


class RiskChecker:
    """The playbook's flags compiled once, for checking many deals (digests)."""

    def __init__(self, playbook: Playbook):
        compiled = [_Compiled(flag, _compile(playbook, flag)) for flag in playbook.risk_flags]
        index = {stage.id: n for n, stage in enumerate(playbook.stages)}
        last = len(playbook.stages) - 1
        self._by_stage: dict[str, tuple[_Compiled, ...]] = {}
        for stage_id, n in index.items():
            self._by_stage[stage_id] = tuple(
                c
                for c in compiled
                if index[c.flag.from_stage] <= n <= index.get(c.flag.until_stage or "", last)
            )

    def raised(
        self,
        *,
        stage_id: str,
        status: str,
        answers: Mapping[str, Any],
        expected_close: date | None,
        today: date,
    ) -> list[RiskFlag]:
        if status != OPEN:
            return []
        candidates = self._by_stage.get(stage_id, ())
        return [c.flag for c in candidates if c.test(answers, expected_close, today)]


def _compile(playbook: Playbook, flag: RiskFlag) -> _Test:
    if flag.missing is not None:
        spec = playbook.field(flag.missing)
        return lambda answers, close, today: (
            applies(spec, answers) and not is_answered(answers, spec.id)
        )
    if flag.no_supporter is not None:
        wanted = flag.no_supporter
        return lambda answers, close, today: not _has_supporter(answers.get(wanted.field), wanted)
    if flag.past_date == EXPECTED_CLOSE:
        return lambda answers, close, today: close is not None and close < today
    if flag.past_date is not None:
        field_id = flag.past_date
        return lambda answers, close, today: _is_before(answers.get(field_id), today)
    raise ValueError(f"risk flag {flag.id!r} has no test")  # load_playbook rejects these


def _has_supporter(value: Any, wanted: SupporterTest) -> bool:
    people: Sequence[Any] = value if isinstance(value, list) else [value] if value else []
    for person in people:
        if not isinstance(person, Mapping):
            continue
        if wanted.role is not None and person.get("role") != wanted.role:
            continue
        attitude = person.get("attitude")
        is_score = isinstance(attitude, int) and not isinstance(attitude, bool)
        if is_score and attitude >= wanted.min_attitude:
            return True
    return False


def _is_before(value: Any, today: date) -> bool:
    """A date answer (a stored period key, or a date) over before today: a deal due "in March"
    is not late until March is over."""
    if isinstance(value, str):
        value = ends(value)
    return isinstance(value, date) and value < today
