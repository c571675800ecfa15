"""Wiring: settings, database and playbook put together for the chat and the bot."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from bot.cli.config import Settings, load_settings
from bot.dialog.router import Dialog
from bot.dialog.writer import DialogConfig
from flows.playbook import Playbook, load_playbook
from storage.db import make_engine, upgrade


@dataclass
class App:
    settings: Settings
    engine: Engine
    playbook: Playbook
    dialog: Dialog


def build_app(settings: Settings | None = None) -> App:
    """Load settings and the playbook, open and migrate the database."""
    settings = settings or load_settings()
    playbook = load_playbook(settings.playbook.path or None)
    database = settings.database
    engine = make_engine(database.url, sqlite_synchronous=database.sqlite_synchronous)
    upgrade(engine)
    config = DialogConfig(
        language=settings.defaults.language,
        timezone=settings.defaults.timezone,
        nudges=settings.nudges.policy(),
        idle_days=settings.digest.idle_days,
    )
    return App(settings, engine, playbook, Dialog(engine, playbook, config=config))
