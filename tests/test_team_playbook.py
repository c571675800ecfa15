"""A team's own playbook: configured in config.toml, and saved answers survive its edits."""

from __future__ import annotations

import tomllib

import tomli_w
from sqlmodel import Session

from bot.cli.app import build_app
from bot.cli.config import load_settings
from flows.playbook import shipped_playbook_path
from tests.dialog_driver import Driver
from tests.factories import make_member, make_team
from tests.test_dialog import open_deal

REP = 701
REWORDED = "How much can the customer spend?"
NEW_QUESTION = "By when must the customer decide?"


def team_playbook(tmp_path):
    """The shipped playbook with the budget question reworded and one new required field."""
    raw = tomllib.loads(shipped_playbook_path().read_text(encoding="utf-8"))
    potential = next(s for s in raw["stages"] if s["id"] == "potential")
    budget = next(f for f in potential["fields"] if f["id"] == "budget")
    budget["question"] = {"zh": "客户能花多少钱？", "en": REWORDED}
    potential["fields"].append(
        {
            "id": "decision_deadline",
            "type": "date",
            "question": {"zh": "客户必须在什么时候之前做决定？", "en": NEW_QUESTION},
        }
    )
    path = tmp_path / "team-playbook.toml"
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def test_a_configured_team_playbook_keeps_answers_saved_under_the_old_wording(
    tmp_path, monkeypatch, engine
):
    with Session(engine) as session:
        make_member(session, make_team(session), telegram_user_id=REP)
        session.commit()
    before = Driver(engine, REP)
    open_deal(before)
    before.say("/update 1 budget")
    before.say("500k")

    config = tmp_path / "config.toml"
    playbook_file = team_playbook(tmp_path)
    config.write_text(f'[playbook]\npath = "{playbook_file.name}"\n', encoding="utf-8")
    monkeypatch.setenv("STAGECOACH_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    app = build_app(load_settings())
    assert app.playbook.field("budget").question["en"] == REWORDED

    after = Driver(app.engine, REP, playbook=app.playbook)
    after.say("/gaps 1")
    assert NEW_QUESTION in after.text
    assert REWORDED not in after.text  # answered before the edit: no gap
    after.say("/update 1 budget")
    assert REWORDED in after.text and "500,000.00" in after.text
    app.engine.dispose()
