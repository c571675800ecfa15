"""``stagecoach team``: create teams and invite their first members from the command line."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from telegram import Bot
from telegram.error import TelegramError

from bot.config import Settings
from bot.membership import invite_link
from bot.turn import DialogConfig
from storage.db import make_engine, transaction, upgrade
from storage.invites import create_invite
from storage.teams import create_team, get_team_by_name, list_members, update_member

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
team_app = typer.Typer(help="Create teams and invite members.", no_args_is_help=True)


class InviteRole(StrEnum):
    rep = "rep"
    manager = "manager"


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj["settings"]()


@team_app.command("create")
def team_create(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Team name")]) -> None:
    """Create a team."""
    engine = _engine(ctx)
    with transaction(engine) as session:
        if get_team_by_name(session, name=name) is not None:
            typer.echo(f"A team named {name!r} exists already.", err=True)
            raise typer.Exit(1)
        team = create_team(session, name=name, now=datetime.now(UTC))
    typer.echo(f"Created team {name!r} (id {team.id}). Invite its first manager with:")
    typer.echo(f"  stagecoach team invite {name!r} --role manager")


@team_app.command("invite")
def team_invite(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team name")],
    role: Annotated[InviteRole, typer.Option(help="Role of the new member")] = InviteRole.rep,
    bot_username: Annotated[
        str | None, typer.Option(help="The bot's @username, for the link (else asked of Telegram)")
    ] = None,
) -> None:
    """Print a one-time invite code and its t.me link (valid 7 days)."""
    settings = _settings(ctx)
    engine = _engine(ctx)
    with transaction(engine) as session:
        found = _team_or_exit(session, team)
        invite = create_invite(session, team_id=found.id, role=role.value, now=datetime.now(UTC))
    username = (bot_username or "").lstrip("@") or _ask_telegram_username(settings)
    typer.echo(f"Invite code for a {role.value} of {team!r}: {invite.code}")
    typer.echo(f"Link: {invite_link(DialogConfig(bot_username=username), invite.code)}")
    if not username:
        typer.echo("(Send that /start line to the bot in a private chat, or pass --bot-username.)")


@team_app.command("members")
def team_members(
    ctx: typer.Context, team: Annotated[str, typer.Argument(help="Team name")]
) -> None:
    """List a team's members: Telegram id, role, name, and whether they were removed."""
    with transaction(_engine(ctx)) as session:
        found = _team_or_exit(session, team)
        for member in list_members(session, team_id=found.id):
            state = "" if member.active else "  (removed)"
            typer.echo(f"{member.telegram_user_id}\t{member.role}\t{member.display_name}{state}")


@team_app.command("remove")
def team_remove(
    ctx: typer.Context,
    team: Annotated[str, typer.Argument(help="Team name")],
    telegram_user_id: Annotated[int, typer.Argument(help="The member's Telegram user id")],
) -> None:
    """Remove a member: they lose access at once; their deals and answers stay."""
    with transaction(_engine(ctx)) as session:
        found = _team_or_exit(session, team)
        member = next(
            (
                m
                for m in list_members(session, team_id=found.id)
                if m.telegram_user_id == telegram_user_id
            ),
            None,
        )
        if member is None:
            typer.echo(f"No member {telegram_user_id} in {team!r}.", err=True)
            raise typer.Exit(1)
        update_member(session, member_id=member.id, active=False)
    typer.echo(f"Removed {member.display_name} ({telegram_user_id}) from {team!r}.")


def _team_or_exit(session, name: str):
    found = get_team_by_name(session, name=name)
    if found is None:
        typer.echo(f"No team named {name!r}. Create it with: stagecoach team create", err=True)
        raise typer.Exit(1)
    return found


def _engine(ctx: typer.Context):
    database = _settings(ctx).database
    engine = make_engine(database.url, sqlite_synchronous=database.sqlite_synchronous)
    upgrade(engine)
    return engine


def _ask_telegram_username(settings: Settings) -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        return None
    try:
        me = asyncio.run(Bot(token, base_url=settings.telegram.base_url).get_me())
    except TelegramError as exc:
        typer.echo(f"(Could not ask Telegram for the bot's name: {exc.message})", err=True)
        return None
    return me.username
