"""The ``stagecoach`` command line."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.cli.app import build_app
from bot.cli.config import (
    WEBHOOK_SECRET_ENV,
    ConfigError,
    DefaultSettings,
    check_telegram,
    load_settings,
)
from bot.cli.logs import quiet_library_tracebacks
from bot.cli.note import note_app
from bot.cli.secrets_filter import hide_secrets, mask
from bot.cli.team import Role, team_app
from bot.cli.terminal import TerminalChat, demo_sender, plain
from bot.tg.application import preview_digests, send_digests_now
from bot.tg.application import run as run_bot
from flows.i18n import t
from flows.playbook import PlaybookError, load_playbook
from storage.db import make_engine, upgrade
from storage.files import private_folder, write_private

# Tracebacks are main()'s to show (with -v, masked): Typer's would print local variables.
app = typer.Typer(
    help="StageCoach: a chat-first sales coach.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
playbook_app = typer.Typer(help="Check playbooks.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database.", no_args_is_help=True)
app.add_typer(playbook_app, name="playbook")
app.add_typer(db_app, name="db")
app.add_typer(team_app, name="team")
app.add_typer(note_app, name="note")
NO_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
_verbose = False  # -v: main() shows the traceback of an error


def main() -> None:
    """The ``stagecoach`` command. An error no command caught is one line on stderr and exit
    code 1; ``-v`` adds the traceback. Both are masked: an error's text may quote the token
    (PTB's own messages do, and so do a proxy's error pages)."""
    try:
        app(prog_name="stagecoach")
    except Exception as exc:
        hide_secrets(os.environ.get(NO_TOKEN_ENV, ""), os.environ.get(WEBHOOK_SECRET_ENV, ""))
        first = (str(exc).strip().splitlines() or [""])[0]
        error = mask(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)
        typer.echo(t(_language(), "cli.failed", error=error), err=True)
        if _verbose:
            typer.echo(mask(traceback.format_exc()), err=True)
        raise SystemExit(1) from None


@app.callback()
def options(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")] = False,
):
    global _verbose
    _verbose = verbose
    ctx.obj = {"settings": _settings}
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        quiet_library_tracebacks()
    hide_secrets(os.environ.get(NO_TOKEN_ENV, ""), os.environ.get(WEBHOOK_SECRET_ENV, ""))


@app.command()
def chat(
    role: Annotated[Role, typer.Option("--as", help="Play a rep or a manager.")] = Role.rep,
) -> None:
    """Try StageCoach in the terminal, as a member of a local demo team (no Telegram needed)."""
    settings = _settings()
    _log_to_file(Path(settings.logging.chat_file))
    stagecoach = _build(settings)
    sender = demo_sender(stagecoach, role.value)
    interactive = sys.stdin.isatty()
    if interactive:
        language = settings.defaults.language
        typer.echo(t(language, "terminal.welcome", role=t(language, f"team.role_{role.value}")))
    TerminalChat(stagecoach, sender, sys.stdout, echo=not interactive).run(_lines(interactive))


def _lines(interactive: bool):
    if not interactive:
        yield from sys.stdin
        return
    while True:
        try:
            yield input("> ")
        except (EOFError, KeyboardInterrupt):
            typer.echo("")
            return


@app.command()
def run() -> None:
    """Run the Telegram bot: long polling, or a webhook server (see config.toml)."""
    settings = _settings()
    token = os.environ.get(NO_TOKEN_ENV, "").strip()
    if not token:
        typer.echo(t(settings.defaults.language, "cli.no_token"), err=True)
        raise typer.Exit(2)
    telegram = settings.telegram
    if telegram.mode == "webhook" and not (telegram.webhook_url and telegram.webhook_secret):
        typer.echo(t(settings.defaults.language, "cli.webhook_incomplete"), err=True)
        raise typer.Exit(2)
    _check_telegram(settings)
    # A fatal signal (a file pulled from under SQLite) says where, rather than nothing at all.
    faulthandler.enable()
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    hide_secrets(telegram.webhook_secret)  # one set in config.toml rather than the environment
    run_bot(_build(settings), token)


@app.command()
def digest(
    now: Annotated[bool, typer.Option("--now", help="Build today's digests right away.")] = False,
    out: Annotated[Path, typer.Option(help="Folder for the charts when printing.")] = Path(
        "data/digests"
    ),
) -> None:
    """Send today's digests now (with TELEGRAM_BOT_TOKEN), or print them and save the charts."""
    if not now:
        typer.echo(t(_language(), "cli.digest_usage"), err=True)
        raise typer.Exit(2)
    settings = _settings()
    language = settings.defaults.language
    stagecoach = _build(settings)
    token = os.environ.get(NO_TOKEN_ENV, "").strip()
    if token:
        _check_telegram(settings)
        sent = asyncio.run(send_digests_now(stagecoach, token))
        typer.echo(t(language, "cli.digests_sent", sent=sent))
        return
    private_folder(out)
    for manager, replies in preview_digests(stagecoach):
        for reply in replies:
            typer.echo(plain(reply.text))
            if reply.photo:
                chart = out / f"digest-{manager.id}.png"
                write_private(chart, reply.photo)  # a team's pipeline: the owner's only
                typer.echo(t(language, "cli.digest_chart", path=chart))
        typer.echo("")


@playbook_app.command("check")
def playbook_check(
    path: Annotated[
        Path | None, typer.Argument(help="Playbook file; default: the configured one.")
    ] = None,
) -> None:
    """Validate a playbook: print OK, or every problem with its stage and field (exit 1)."""
    if path is None:
        settings = _settings()
        language = settings.defaults.language
        path = Path(settings.playbook.path) if settings.playbook.path else None
    else:  # a config error must not stop checking a named file
        language = _language()
    try:
        playbook = load_playbook(path)
    except PlaybookError as exc:
        problems = t(language, "cli.playbook_problems", path=exc.path, count=len(exc.problems))
        typer.echo(problems, err=True)
        for problem in exc.problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(1) from exc
    fields = sum(len(s.fields) + len(s.checklist) for s in playbook.stages)
    ok = t(
        language,
        "cli.playbook_ok",
        where=path or t(language, "cli.shipped_playbook"),
        stages=len(playbook.stages),
        questions=fields,
        languages=", ".join(playbook.languages),
    )
    typer.echo(ok)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the newest schema."""
    settings = _settings()
    url = settings.database.url
    upgrade(make_engine(url))
    typer.echo(t(settings.defaults.language, "cli.database_up_to_date", url=_redact(url)))


def _settings():
    try:
        return load_settings()
    except ConfigError as exc:
        # No settings, so no configured language: the model's default one.
        typer.echo(t(DefaultSettings().language, "cli.config_error", error=exc), err=True)
        raise typer.Exit(2) from exc


def _check_telegram(settings) -> None:
    """One clear line and exit code 2 for Telegram settings that cannot work."""
    try:
        check_telegram(settings.telegram)
    except ConfigError as exc:
        typer.echo(t(settings.defaults.language, "cli.config_error", error=exc), err=True)
        raise typer.Exit(2) from exc


def _language() -> str:
    """The configured language, for a command that needs no other setting (even a broken config)."""
    try:
        return load_settings().defaults.language
    except Exception:  # a broken config, or anything else: the message still goes out
        return DefaultSettings().language


def _build(settings):
    language = settings.defaults.language
    try:
        return build_app(settings)
    except PlaybookError as exc:
        typer.echo(t(language, "cli.playbook_error", error=exc), err=True)
        raise typer.Exit(2) from exc
    except SQLAlchemyError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        url = _redact(settings.database.url)
        typer.echo(t(language, "cli.database_unavailable", url=url, reason=reason), err=True)
        raise typer.Exit(2) from exc


def _log_to_file(path: Path) -> None:
    """Send log records to a file: in the chat they would mix with the conversation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    hide_secrets(os.environ.get(NO_TOKEN_ENV, ""))


def _redact(url: str) -> str:
    """A database URL without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)
