"""``stagecoach team``: create teams and invite their first members from the command line."""

from __future__ import annotations

import os
import shlex
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from bot.cli.config import ConfigError, Settings, check_telegram
from bot.cli.secrets_filter import mask
from bot.dialog.membership import invite_link, remove_member
from bot.dialog.writer import DialogConfig
from bot.tg.identity import UsernameUnknown, ask_bot_username
from flows.i18n import t
from storage.db import make_engine, transaction, upgrade
from storage.invites import create_invite
from storage.teams import create_team, get_team_by_name, list_members

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
team_app = typer.Typer(help="Create teams and invite members.", no_args_is_help=True)


class Role(StrEnum):
    """A role a member joins with (storage.models.INVITE_ROLES), as a command-line choice."""

    rep = "rep"
    manager = "manager"


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj["settings"]()


@team_app.command("create")
def team_create(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Team name")]) -> None:
    """Create a team."""
    settings = _settings(ctx)
    language = settings.defaults.language
    engine = _engine(settings)
    with transaction(engine) as session:
        if get_team_by_name(session, name=name) is not None:
            typer.echo(t(language, "cli.team_exists", team=name), err=True)
            raise typer.Exit(1)
        team = create_team(session, name=name, now=datetime.now(UTC))
    typer.echo(t(language, "cli.team_created", team=name, team_id=team.id))
    typer.echo(f"  stagecoach team invite {shlex.quote(name)} --role manager")


@team_app.command("invite")
def team_invite(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team name")],
    role: Annotated[Role, typer.Option(help="Role of the new member")] = Role.rep,
    bot_username: Annotated[
        str | None, typer.Option(help="The bot's @username, for the link (else asked of Telegram)")
    ] = None,
) -> None:
    """Print a one-time invite code and its t.me link (valid 7 days)."""
    settings = _settings(ctx)
    language = settings.defaults.language
    engine = _engine(settings)
    with transaction(engine) as session:
        found = _team_or_exit(session, team, language)
        code = create_invite(session, team_id=found.id, role=role.value, now=datetime.now(UTC))
    role_name = t(language, f"team.role_{role.value}")
    # The code first: it exists now, whatever Telegram says when asked for the bot's name.
    typer.echo(t(language, "cli.invite_code", role=role_name, team=team, code=code))
    username = (bot_username or "").lstrip("@") or _ask_telegram_username(settings)
    link = invite_link(DialogConfig(bot_username=username), code)
    typer.echo(t(language, "cli.invite_link", link=link))
    if not username:
        typer.echo(t(language, "cli.invite_no_username"))


@team_app.command("members")
def team_members(
    ctx: typer.Context, team: Annotated[str, typer.Argument(help="Team name")]
) -> None:
    """List a team's members: Telegram id, role, name, and whether they were removed."""
    settings = _settings(ctx)
    language = settings.defaults.language
    removed = "  " + t(language, "cli.member_removed_mark")
    with transaction(_engine(settings)) as session:
        found = _team_or_exit(session, team, language)
        for member in list_members(session, team_id=found.id):
            state = "" if member.active else removed
            typer.echo(f"{member.telegram_user_id}\t{member.role}\t{member.display_name}{state}")


@team_app.command("remove")
def team_remove(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team name")],
    telegram_user_id: Annotated[int, typer.Argument(help="The member's Telegram user id")],
) -> None:
    """Remove a member: they lose access at once; their deals and answers stay."""
    settings = _settings(ctx)
    language = settings.defaults.language
    with transaction(_engine(settings)) as session:
        found = _team_or_exit(session, team, language)
        member = next(
            (
                m
                for m in list_members(session, team_id=found.id)
                if m.telegram_user_id == telegram_user_id
            ),
            None,
        )
        if member is None:
            typer.echo(
                t(language, "cli.member_unknown", user_id=telegram_user_id, team=team), err=True
            )
            raise typer.Exit(1)
        remove_member(session, member_id=member.id, now=datetime.now(UTC))
    removed = t(
        language,
        "cli.member_removed",
        name=member.display_name,
        user_id=telegram_user_id,
        team=team,
    )
    typer.echo(removed)


def _team_or_exit(session, name: str, language: str):
    found = get_team_by_name(session, name=name)
    if found is None:
        typer.echo(t(language, "cli.team_unknown", team=name), err=True)
        raise typer.Exit(1)
    return found


def _engine(settings: Settings):
    database = settings.database
    engine = make_engine(database.url, sqlite_synchronous=database.sqlite_synchronous)
    upgrade(engine)
    return engine


def _ask_telegram_username(settings: Settings) -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        return None
    try:
        check_telegram(settings.telegram)
        return ask_bot_username(token, settings.telegram.base_url)
    except (ConfigError, UsernameUnknown) as exc:
        error = t(settings.defaults.language, "cli.bot_name_unknown", error=mask(str(exc)))
        typer.echo(error, err=True)
        return None
