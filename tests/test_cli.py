"""The command line: a scripted terminal chat, playbook checks and migrations."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from bot.cli.app import build_app
from bot.cli.config import DEFAULT_CONNECTIONS, ConfigError, load_settings
from bot.cli.main import app
from bot.cli.terminal import TerminalChat, demo_sender
from bot.dialog.events import Incoming, Sender
from flows.i18n import t
from flows.playbook import load_playbook, shipped_playbook_path
from storage.answers import get_answers
from storage.db import make_engine, transaction
from storage.teams import add_member, get_team_by_name

ROOT = Path(__file__).resolve().parent.parent
STAGECOACH = [sys.executable, "-m", "bot"]


@pytest.fixture
def english(tmp_path, monkeypatch):
    """A config file whose default language is English: the CLI prints English."""
    config = tmp_path / "config.toml"
    config.write_text('[defaults]\nlanguage = "en"\n', encoding="utf-8")
    monkeypatch.setenv("STAGECOACH_CONFIG", str(config))


@pytest.fixture
def default_language(tmp_path, monkeypatch):
    """A config file that sets no language: the CLI prints in the default one, Chinese."""
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    monkeypatch.setenv("STAGECOACH_CONFIG", str(config))


def run_chat(script: str, database: Path) -> str:
    """Run ``stagecoach chat`` as its own process with a script on standard input."""
    config = database.parent / "config.toml"  # keeps the chat's log file out of the repo
    config.write_text('[logging]\nchat_file = "chat.log"\n', encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "STAGECOACH_CONFIG": str(config)}
    result = subprocess.run(
        [*STAGECOACH, "chat"],
        input=script,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def test_a_scripted_terminal_session_opens_a_deal_and_resumes_after_quitting(tmp_path):
    database = tmp_path / "chat.db"
    first = run_chat(
        "\n".join(
            [
                "/lang en",
                "/new",
                "Acme Bank",
                "Training 2027",
                "4",  # Finance
                "1",  # Yes
                "1",  # Yes
                "Head office training centre",
                "2",  # 100-999 staff
                "lots",  # not a number: asked again
                "/quit",
            ]
        ),
        database,
    )
    headcount = load_playbook().field("headcount").question["en"]
    assert "#1 Training 2027 (Acme Bank) is in our target group" in first
    assert headcount in first.split("> lots")[1]  # the bad answer was refused, asked again
    second = run_chat("120\n/gaps\n/quit\n", database)
    assert headcount in second.split("> 120")[0]  # resumed at the open question
    with transaction(make_engine(f"sqlite:///{database}")) as session:
        answers = get_answers(session, deal_id=1)
    assert answers["headcount"] == 120 and answers["company_size"]
    assert "open:" in second.split("> /gaps")[1]


def test_playbook_check_accepts_the_shipped_playbook(english):
    result = CliRunner().invoke(app, ["playbook", "check", str(shipped_playbook_path())])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK")
    assert "stages" in result.output and "languages zh, en" in result.output


def test_playbook_check_of_the_configured_playbook_speaks_the_default_language(default_language):
    result = CliRunner().invoke(app, ["playbook", "check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("检查通过 内置销售手册：")
    assert "个阶段" in result.output and "OK" not in result.output


def test_playbook_check_names_the_stage_and_field_of_each_problem(tmp_path, english):
    raw = shipped_playbook_path().read_text(encoding="utf-8")
    broken = raw.replace('id = "budget"', 'id = "budget"\nquestoin = "?"', 1)
    broken = broken.replace('type = "money"', 'type = "currency"', 1)
    path = tmp_path / "team.toml"
    path.write_text(broken, encoding="utf-8")
    tomllib.loads(broken)  # still valid TOML: the problems are in the playbook
    result = CliRunner().invoke(app, ["playbook", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}: 2 problem(s)" in result.output
    assert "stage 'potential' › field 'budget' › questoin: unknown key" in result.output
    assert "field 'budget' › type" in result.output


def test_db_upgrade_creates_the_schema(tmp_path, monkeypatch, english):
    database = tmp_path / "fresh.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.output == f"Database is up to date: sqlite:///{database}\n"
    engine = make_engine(f"sqlite:///{database}")
    assert {"team", "member", "deal", "answer", "conversation"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_a_bad_config_file_is_named_with_its_key(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[defaults]\ntimezone = "Mars/Base"\n', encoding="utf-8")
    monkeypatch.setenv("STAGECOACH_CONFIG", str(config))
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "defaults.timezone" in result.output and "Mars/Base" in result.output
    # No settings, so no configured language: the message is in the default one.
    assert result.output.startswith(f"配置有误：{config}: defaults.timezone")


def test_the_shipped_config_loads_and_turn_connections_are_bounded(tmp_path):
    shipped = load_settings(Path(__file__).resolve().parent.parent / "config.toml")
    assert shipped.database.connections == DEFAULT_CONNECTIONS
    config = tmp_path / "config.toml"
    config.write_text("[database]\nconnections = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="database.connections"):
        load_settings(config)


def test_terminal_numbers_press_only_the_newest_buttons(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'chat.db'}")
    monkeypatch.setenv("STAGECOACH_CONFIG", str(tmp_path / "missing.toml"))
    (tmp_path / "missing.toml").write_text("", encoding="utf-8")
    app = build_app(load_settings())
    out = io.StringIO()
    chat = TerminalChat(app, demo_sender(app, "rep"), out, echo=True)
    chat.run(["/lang", "2", "/new", "2"])  # the second "2" is a customer name, not a button
    assert "Customer: 2." in out.getvalue()
    app.engine.dispose()


def test_run_without_a_token_explains_how_to_get_one(monkeypatch):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2
    assert "@BotFather" in result.output and "stagecoach chat" in result.output


def test_run_in_webhook_mode_needs_a_url_and_a_secret(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[telegram]\nmode = "webhook"\n', encoding="utf-8")
    monkeypatch.setenv("STAGECOACH_CONFIG", str(config))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2 and "webhook_url" in result.output


TOKEN = "123456:secret-token-value"
BAD_TELEGRAM_SETTINGS = [
    ("TELEGRAM_API_BASE_URL", "not a url", "base_url: must be a URL starting with"),
    ("TELEGRAM_API_BASE_URL", "ftp://example.com/bot", "base_url: must be a URL starting with"),
    ("TELEGRAM_API_BASE_URL", "http://127.0.0.1:99999/bot", "base_url: not a URL with a valid"),
    ("TELEGRAM_API_BASE_URL", "http://127.0.0.1:8081", 'base_url: must end in "/bot"'),
    ("TELEGRAM_WEBHOOK_SECRET", "has spaces!", "webhook_secret: 1 to 256 of"),
]


@pytest.mark.parametrize(("variable", "value", "said"), BAD_TELEGRAM_SETTINGS)
def test_telegram_settings_that_cannot_work_are_one_line_and_exit_2(
    monkeypatch, english, variable, value, said
):
    """Issues 13 and 18: these ended in a traceback, some quoting the token."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2, result.output
    assert said in result.output and len(result.output.strip().splitlines()) == 1
    assert TOKEN not in result.output and "Traceback" not in result.output


def test_team_create_and_invite_print_a_code_and_link(tmp_path, monkeypatch, english):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'team.db'}")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    runner = CliRunner()
    created = runner.invoke(app, ["team", "create", "Sales East"])
    assert created.exit_code == 0, created.output
    assert created.output.startswith("Created team 'Sales East' (id 1). Invite its first manager")
    assert "  stagecoach team invite 'Sales East' --role manager" in created.output
    again = runner.invoke(app, ["team", "create", "Sales East"])
    assert again.exit_code == 1 and "A team named 'Sales East' exists already." in again.output
    result = runner.invoke(
        app, ["team", "invite", "Sales East", "--role", "manager", "--bot-username", "@my_bot"]
    )
    assert result.exit_code == 0, result.output
    code = result.output.split("Invite code for a sales manager of 'Sales East': ")[1].split()[0]
    assert f"Link: https://t.me/my_bot?start={code}" in result.output
    unlinked = runner.invoke(app, ["team", "invite", "Sales East"])
    assert "Link: /start " in unlinked.output and "--bot-username" in unlinked.output
    nobody = runner.invoke(app, ["team", "invite", "Nobody"])
    assert nobody.exit_code == 1 and "No team named 'Nobody'." in nobody.output


def test_an_invite_is_printed_whatever_telegram_answers_for_the_bot_s_name(
    tmp_path, monkeypatch, english
):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'team.db'}")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:secret-token")

    async def unreadable_answer(self, *args, **kwargs):
        raise KeyError("first_name")  # as PTB fails on a getMe answer without the bot's fields

    monkeypatch.setattr("telegram.Bot.get_me", unreadable_answer)
    runner = CliRunner()
    runner.invoke(app, ["team", "create", "Sales East"])
    result = runner.invoke(app, ["team", "invite", "Sales East"])
    assert result.exit_code == 0, result.output
    assert "Invite code for a sales rep of 'Sales East': " in result.output
    assert "unexpected answer (KeyError)" in result.output and "--bot-username" in result.output
    assert "secret-token" not in result.output and "Traceback" not in result.output


def test_team_invite_with_a_base_url_that_cannot_work_prints_the_code(
    tmp_path, monkeypatch, english
):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'team.db'}")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", "http://127.0.0.1:8081")  # no "/bot"
    runner = CliRunner()
    runner.invoke(app, ["team", "create", "Sales East"])
    result = runner.invoke(app, ["team", "invite", "Sales East"])
    assert result.exit_code == 0, result.output
    assert "Invite code for a sales rep of 'Sales East': " in result.output
    assert 'must end in "/bot"' in result.output
    assert TOKEN not in result.output and "Traceback" not in result.output


def test_team_commands_speak_the_default_language(tmp_path, monkeypatch, default_language):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'team.db'}")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    runner = CliRunner()
    created = runner.invoke(app, ["team", "create", "华东销售"])
    assert created.exit_code == 0, created.output
    assert created.output.startswith("已创建团队“华东销售”（id 1）。")
    result = runner.invoke(app, ["team", "invite", "华东销售", "--bot-username", "my_bot"])
    assert result.exit_code == 0, result.output
    code = result.output.split("“华东销售”的销售邀请码：")[1].split()[0]
    assert f"链接：https://t.me/my_bot?start={code}" in result.output
    nobody = runner.invoke(app, ["team", "members", "华北销售"])
    assert nobody.exit_code == 1
    assert "没有名为“华北销售”的团队。" in nobody.output and "No team" not in nobody.output


def team_with_member(runner: CliRunner, *, telegram_user_id: int, role: str):
    """Team "Sales East" made with the CLI, one member added; returns the app on its database."""
    runner.invoke(app, ["team", "create", "Sales East"])
    stagecoach = build_app(load_settings())
    with transaction(stagecoach.engine) as session:
        team = get_team_by_name(session, name="Sales East")
        add_member(
            session,
            team_id=team.id,
            telegram_user_id=telegram_user_id,
            display_name="Ann",
            role=role,
            language="en",
            timezone="UTC",
            now=datetime.now(UTC),
        )
    return stagecoach


def test_digest_now_without_a_token_prints_the_digests_and_saves_charts(
    tmp_path, monkeypatch, english
):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'digest.db'}")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    runner = CliRunner()
    stagecoach = team_with_member(runner, telegram_user_id=7, role="manager")
    stagecoach.engine.dispose()
    result = runner.invoke(app, ["digest", "--now", "--out", str(tmp_path / "charts")])
    assert result.exit_code == 0, result.output
    assert "Daily digest · Sales East" in result.output
    chart = next((tmp_path / "charts").glob("digest-*.png"))
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert f"[chart: {chart}]" in result.output
    # A team's pipeline: readable by the owner only, as the database is.
    assert oct(chart.stat().st_mode & 0o777) == "0o600"
    assert oct(chart.parent.stat().st_mode & 0o777) == "0o700"


def test_digest_without_now_says_how_to_use_it(default_language):
    result = CliRunner().invoke(app, ["digest"])
    assert result.exit_code == 2
    assert result.output == "用法：stagecoach digest --now\n"


def test_a_removed_member_loses_access_at_once(tmp_path, monkeypatch, english):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'team.db'}")
    runner = CliRunner()
    stagecoach = team_with_member(runner, telegram_user_id=77, role="rep")
    result = runner.invoke(app, ["team", "remove", "Sales East", "77"])
    assert result.exit_code == 0, result.output
    assert "Removed Ann (77) from 'Sales East'." in result.output
    assert "77\trep\tAnn  (removed)" in runner.invoke(app, ["team", "members", "Sales East"]).output
    response = stagecoach.dialog.handle(Incoming(Sender(77), text="/deals"))
    assert [r.text for r in response.replies] == [t("en", "dialog.not_a_member")]
    missing = runner.invoke(app, ["team", "remove", "Sales East", "78"])
    assert missing.exit_code == 1 and "No member 78 in 'Sales East'." in missing.output
    stagecoach.engine.dispose()


def test_the_command_line_offers_the_roles_an_invite_can_carry():
    from bot.cli.team import Role
    from storage.models import INVITE_ROLES

    assert [role.value for role in Role] == list(INVITE_ROLES)


def test_note_parse_prints_the_fields_a_note_states(english):
    note = "南京银行 预算大概300万 80-100人先试点 竞争对手有用友和金蝶 下周三做技术交流"
    result = CliRunner().invoke(
        app, ["note", "parse", "--today", "2026-12-07", "--tz", "Asia/Shanghai"], input=note
    )
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.output)
    assert parsed["fields"]["budget"] == {
        "value": {"amount": 3000000, "approx": True},
        "evidence": "预算大概300万",
    }
    assert parsed["fields"]["industry"]["value"] == "finance"
    assert parsed["fields"]["competitors"]["value"] == ["用友", "金蝶"]
    assert parsed["next_step"]["date"] == "2026-12-16"
    assert parsed["stage"] == "potential"


@pytest.mark.parametrize(
    "options", [["--stage", "nowhere"], ["--today", "tomorrow"], ["--tz", "Mars/Base"]]
)
def test_note_parse_refuses_bad_options_in_one_line(english, options):
    result = CliRunner().invoke(app, ["note", "parse", *options], input="预算100万")
    assert result.exit_code == 2
    assert result.output.startswith("Bad option") and "Traceback" not in result.output
