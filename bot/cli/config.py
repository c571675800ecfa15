"""Settings: ``config.toml`` validated once at start-up, with environment overrides."""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flows.i18n import LANGUAGES
from flows.schedule import NudgePolicy

CONFIG_ENV = "STAGECOACH_CONFIG"
DATABASE_ENV = "DATABASE_URL"
BASE_URL_ENV = "TELEGRAM_API_BASE_URL"
WEBHOOK_SECRET_ENV = "TELEGRAM_WEBHOOK_SECRET"
DEFAULT_CONFIG = Path("config.toml")


# PostgreSQL chat turns one bot runs at a time; more wait their turn. More connections let more
# turns share the event loop's wake-ups (bench/README.md has the figures), and 16 keeps a few
# instances under PostgreSQL's default max_connections.
DEFAULT_CONNECTIONS = 16


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = Field("sqlite:///data/stagecoach.db", description="SQLAlchemy database URL")
    sqlite_synchronous: Literal["normal", "full"] = Field(
        "normal", description="SQLite only: full also survives power cuts, one fsync per commit"
    )
    connections: int = Field(
        DEFAULT_CONNECTIONS,
        ge=1,
        le=100,
        description="PostgreSQL only: connections a bot keeps for chat turns; more turns wait",
    )


class PlaybookSettings(_Section):
    path: str = Field("", description="a team playbook file; empty for the shipped one")


class DefaultSettings(_Section):
    language: str = "zh"
    timezone: str = "Asia/Shanghai"

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"must be one of {', '.join(LANGUAGES)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class TelegramSettings(_Section):
    # Passed to PTB's base_url unchanged, so it ends in "/bot" (the token follows).
    base_url: str = Field("https://api.telegram.org/bot", description="Bot API base URL")
    mode: Literal["polling", "webhook"] = "polling"
    # Webhook mode: where this process listens, and the public HTTPS URL Telegram calls.
    webhook_listen: str = "127.0.0.1"  # behind a reverse proxy on this host (README)
    webhook_port: int = Field(8443, ge=1, le=65535)
    webhook_url: str = Field("", description="public URL, e.g. https://bot.example.com/telegram")
    webhook_path: str = "telegram"
    # Checked on every webhook request; TELEGRAM_WEBHOOK_SECRET overrides it.
    webhook_secret: str = ""


class NudgeSettings(_Section):
    morning: dt.time = Field(dt.time(9, 0), description="local time nudges are due")
    quiet_start: dt.time = dt.time(21, 0)
    quiet_end: dt.time = dt.time(8, 30)
    quiet_weekends: bool = False
    # Each nudge brings 4 buttons; Telegram allows 100 a message.
    daily_cap: int = Field(3, ge=1, le=20, description="nudges per rep per day; more wait")
    reminder_days: list[int] = Field([3, 1], description="days before a date field to remind")
    gap_delay_hours: int | None = Field(
        None, ge=1, description="gap follow-up after this many hours; unset: next working morning"
    )
    tick_seconds: int = Field(60, ge=1, description="how often due nudges are looked for")

    def policy(self) -> NudgePolicy:
        return NudgePolicy(
            morning=self.morning,
            quiet_start=self.quiet_start,
            quiet_end=self.quiet_end,
            quiet_weekends=self.quiet_weekends,
            daily_cap=self.daily_cap,
            reminder_days=tuple(self.reminder_days),
            gap_delay_hours=self.gap_delay_hours,
        )


class DigestSettings(_Section):
    time: dt.time = Field(dt.time(8, 30), description="each manager's local time for the digest")
    idle_days: int = Field(3, ge=1, description="reps without an update this long are listed")


class LoggingSettings(_Section):
    # The terminal chat logs here, so that no log line or traceback lands in the conversation.
    chat_file: str = Field("data/stagecoach-chat.log", description="log file of `stagecoach chat`")


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    telegram: TelegramSettings = TelegramSettings()
    nudges: NudgeSettings = NudgeSettings()
    digest: DigestSettings = DigestSettings()
    logging: LoggingSettings = LoggingSettings()
    playbook: PlaybookSettings = PlaybookSettings()
    defaults: DefaultSettings = DefaultSettings()


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


def load_settings(path: Path | str | None = None) -> Settings:
    """Read the config file (``STAGECOACH_CONFIG`` or ./config.toml) and apply overrides.

    Relative SQLite and playbook paths are taken relative to the config file's folder.
    """
    path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    raw = _read(path) if path.exists() or os.environ.get(CONFIG_ENV) else {}
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
    base = path.resolve().parent
    settings.database.url = _resolve_sqlite(
        os.environ.get(DATABASE_ENV) or settings.database.url, base
    )
    if settings.playbook.path:
        settings.playbook.path = str(base / settings.playbook.path)
    settings.logging.chat_file = str(base / settings.logging.chat_file)
    settings.telegram.base_url = os.environ.get(BASE_URL_ENV) or settings.telegram.base_url
    settings.telegram.webhook_secret = (
        os.environ.get(WEBHOOK_SECRET_ENV) or settings.telegram.webhook_secret
    )
    return settings


# What Telegram accepts as a webhook's secret_token.
SECRET_CHARACTERS = re.compile(r"[A-Za-z0-9_-]{1,256}")


def check_telegram(telegram: TelegramSettings) -> None:
    """For the commands that talk to Telegram: what PTB or Telegram would refuse deep in the
    start, with a traceback, said up front (ConfigError).

    A base URL without its "/bot" made requests whose path quotes the token (issue 18). The
    values themselves are not repeated: a URL may carry a proxy's password.
    """
    problem = _url_problem(telegram.base_url, ("http", "https"))
    if problem is None and not urlsplit(telegram.base_url).path.endswith("/bot"):
        problem = 'must end in "/bot" (the token follows it)'
    if problem is not None:
        raise ConfigError(f"{BASE_URL_ENV} or [telegram] base_url: {problem}")
    if telegram.webhook_secret and not SECRET_CHARACTERS.fullmatch(telegram.webhook_secret):
        raise ConfigError(
            f"{WEBHOOK_SECRET_ENV} or [telegram] webhook_secret: 1 to 256 of "
            "A-Z, a-z, 0-9, _ and - (what Telegram accepts)"
        )
    if telegram.mode == "webhook" and telegram.webhook_url:
        problem = _url_problem(telegram.webhook_url, ("https",))
        if problem is not None:
            raise ConfigError(f"[telegram] webhook_url: {problem}")


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        return "not a URL with a valid port"
    if parts.scheme not in schemes:
        return f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
    if not parts.hostname:
        return "has no host"
    return None


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def _resolve_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == "sqlite:///:memory:":
        return url
    file = Path(url.removeprefix(prefix))
    return url if file.is_absolute() else prefix + str(base / file)
