"""Permission at every step of a multi-step action (issue 17).

An attacker's probe found the rules checked when an action starts and not at its later steps:
a manager started ``/lost`` on a rep's deal, was removed from the team, joined again with a
rep's invite and typed the reason: the deal was marked lost by a rep who may not touch it.
Here every multi-step action is cut at each of its steps by a change of membership (removed;
removed and back as a rep; removed and joined to another team), and the step, and every step
after it, must change nothing of any deal, with the member told once that the action ended.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from bot.dialog.membership import remove_member
from bot.dialog.state import IDLE
from flows.i18n import t
from storage.conversations import get_conversation
from storage.db import transaction
from storage.invites import create_invite
from storage.teams import get_team_member, update_member
from tests.dialog_driver import FIXED_NOW, Driver, plain
from tests.intrusion import A1, AM, Seed, seed, snapshot

DEAL_TABLES = (
    "deal",
    "answer",
    "answer_change",
    "stage_change",
    "advance_request",
    "nudge",
    "nudge_mute",
)
ENDED = plain(t("en", "dialog.action_ended"))


@dataclass(frozen=True)
class Step:
    kind: str  # "say" (typed text), "press" (a button by its label) or "data" (callback data)
    value: str


@dataclass(frozen=True)
class Action:
    """A multi-step action: who, how it starts, and its steps (any of which may be cut)."""

    actor: int
    start: Callable[[Seed], list[Step]]
    steps: tuple[Step, ...]


def number(s: Seed) -> str:
    return str(s.number["A1"])


ACTIONS = {
    "lost": Action(AM, lambda s: [Step("say", f"/lost {number(s)}")], (Step("say", "Rival"),)),
    "pause": Action(
        AM,
        lambda s: [Step("say", f"/pause {number(s)}")],
        (Step("say", "Budget frozen"), Step("say", "2030-01-01")),
    ),
    "update": Action(
        AM,
        lambda s: [Step("say", f"/update {number(s)}")],
        (Step("press", "1,000–9,999"), Step("say", "500"), Step("say", "Dell servers")),
    ),
    "edit": Action(
        AM,
        lambda s: [Step("say", f"/edit {number(s)}")],
        (Step("press", "customer's background"), Step("say", "A bank, 2,000 staff")),
    ),
    "override": Action(
        AM,
        lambda s: [Step("say", f"/advance {number(s)}")],
        (Step("press", "Force it"), Step("say", "The CIO signed off")),
    ),
    "exception_request": Action(
        A1,
        lambda s: [Step("say", f"/advance {number(s)}")],
        (Step("press", "Ask a manager"), Step("say", "The CIO signed off")),
    ),
    "exception_answer": Action(
        AM, lambda s: [], (Step("data", "r:{request}:1"),)
    ),  # a manager approving a rep's request, on the request's message
}
# The last: a role changed without a removal (by an operator in the database, or a member
# whose state was left open before removals ended it): caught at the step itself.
CHANGES = ("removed", "demoted", "moved_to_another_team", "demoted_in_place")
CASES = [
    (action, change, cut)
    for action, spec in ACTIONS.items()
    for change in CHANGES
    for cut in range(len(spec.steps))
    # A rep cannot be demoted: removed and back as a rep is the same role.
    if not (spec.actor == A1 and change.startswith("demoted"))
]


def act(driver: Driver, step: Step, s: Seed, shown: dict[str, str]) -> bool:
    """Take the step; False when it is a press of a button never shown (it cannot be taken).
    ``shown``: every button shown so far, label -> data (a press may be on an old message)."""
    if step.kind == "say":
        driver.say(step.value)
    elif step.kind == "press":
        data = next((d for label, d in shown.items() if step.value in label), None)
        if data is None:
            return False
        driver.press_data(data)
    else:
        driver.press_data(step.value.format(request=s.request["A1"]))
    shown.update((button.label, button.data) for button in driver.buttons())
    return True


def change_membership(engine: Engine, s: Seed, driver: Driver, change: str) -> list[str]:
    """As an operator and the member would: ``stagecoach team remove``, then an invite (what
    the bot said to the invite, if one was used)."""
    user = driver.sender.user_id
    with transaction(engine) as session:
        team = "A" if user in (A1, AM) else "B"
        member = get_team_member(session, team_id=s.team[team], telegram_user_id=user)
        if change == "demoted_in_place":
            update_member(session, member_id=member.id, role="rep")
            return []
        remove_member(session, member_id=member.id, now=FIXED_NOW)
        code = None
        if change != "removed":
            back_to = s.team["A" if change == "demoted" else "B"]
            code = create_invite(session, team_id=back_to, role="rep", now=FIXED_NOW)
    if code is None:
        return []
    driver.say(f"/start {code}")
    assert "Welcome" in driver.text, driver.text
    return [driver.text]


def has_open_action(engine: Engine, s: Seed, user: int) -> bool:
    with transaction(engine) as session:
        member = get_team_member(session, team_id=s.team["A"], telegram_user_id=user)
        conversation = get_conversation(session, member_id=member.id)
        return conversation is not None and conversation.state["mode"] != IDLE


def deal_rows(engine: Engine) -> dict:
    rows = snapshot(engine)
    return {table: rows[table] for table in DEAL_TABLES}


@pytest.mark.parametrize(("action", "change", "cut"), CASES)
def test_a_step_after_a_change_of_membership_changes_nothing(
    engine: Engine, action: str, change: str, cut: int
):
    spec = ACTIONS[action]
    s = seed(engine, FIXED_NOW)
    driver = Driver(engine, spec.actor)
    shown: dict[str, str] = {}
    for step in [*spec.start(s), *spec.steps[:cut]]:
        assert act(driver, step, s, shown)
    before = deal_rows(engine)
    was_open = has_open_action(engine, s, driver.sender.user_id)
    said = change_membership(engine, s, driver, change)
    for step in spec.steps[cut:]:
        if act(driver, step, s, shown):
            said.append(driver.text)
    assert deal_rows(engine) == before, f"{action} went on after the member was {change}"
    if change == "removed":
        assert all("Ask your sales manager for an invite" in text for text in said)
    told = [ENDED in text for text in said]  # once: the first thing they hear after the change
    assert told == [was_open] + [False] * (len(said) - 1), said


@pytest.mark.parametrize("action", ACTIONS)
def test_the_same_steps_without_a_change_do_change_the_deal(engine: Engine, action: str):
    """The other side of the test above: the steps it cuts are ones that act."""
    spec = ACTIONS[action]
    s = seed(engine, FIXED_NOW)
    driver = Driver(engine, spec.actor)
    shown: dict[str, str] = {}
    for step in spec.start(s):
        assert act(driver, step, s, shown)
    before = deal_rows(engine)
    for step in spec.steps:
        assert act(driver, step, s, shown)
        assert ENDED not in driver.text
    assert deal_rows(engine) != before, f"the steps of {action} changed nothing"
