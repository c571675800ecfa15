"""``stagecoach run`` as its own process in webhook mode: the secret is checked on every
request, and neither the token nor the secret ever reaches the log."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli.secrets_filter import MASK, SecretsFilter
from storage.db import make_engine, transaction, upgrade
from storage.teams import add_member, create_team
from tests.fake_bot_api import FakeBotApi
from tests.test_telegram import free_port, private_update

pytestmark = pytest.mark.full  # a bot process or a fake Bot API: make test, not make check

ROOT = Path(__file__).resolve().parent.parent
SECRET = "webhook-secret-2b7d"


def start_bot(tmp_path: Path, fake: FakeBotApi, port: int) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / "config.toml"
    config.write_text(
        "[telegram]\n"
        'mode = "webhook"\n'
        'webhook_listen = "127.0.0.1"\n'
        f"webhook_port = {port}\n"
        'webhook_url = "https://example.com/hook"\n'
        'webhook_path = "hook"\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "STAGECOACH_CONFIG": str(config),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
    }
    log = tmp_path / "bot.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--verbose", "run"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return process, log


def seed_member(tmp_path: Path, user_id: int) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    upgrade(engine)
    now = datetime.now(UTC)
    with transaction(engine) as session:
        team = create_team(session, name="Sales East", now=now)
        add_member(
            session,
            team_id=team.id,
            telegram_user_id=user_id,
            display_name="Ann",
            role="rep",
            language="en",
            timezone="UTC",
            now=now,
        )
    engine.dispose()


async def wait_until_listening(port: int, timeout: float = 30) -> None:
    """PTB calls setWebhook before its server listens (as Telegram retries, so may we)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def test_webhook_process_refuses_bad_secrets_and_keeps_secrets_out_of_logs(tmp_path, fake):
    port = free_port()
    seed_member(tmp_path, 1001)
    process, log = start_bot(tmp_path, fake, port)
    try:
        await fake.wait_for(lambda: fake.webhook is not None, timeout=30)
        assert fake.webhook["secret_token"] == SECRET
        await wait_until_listening(port)
        url = f"http://127.0.0.1:{port}/hook"
        for secret in (None, "wrong"):
            assert await fake.post_webhook(url, private_update(1, 1001, "/new"), secret) == 403
        assert await fake.post_webhook(url, private_update(2, 1001, "/new"), SECRET) == 200
        await fake.wait_for(lambda: fake.sent(1001), timeout=30)
        assert len(fake.sent(1001)) == 1  # the refused requests changed nothing
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = log.read_text(encoding="utf-8")
    assert "getMe" in output or "setWebhook" in output  # it did log its Bot API calls
    assert fake.token not in output
    assert fake.token.split(":")[1] not in output
    assert SECRET not in output


def test_the_filter_masks_secrets_in_messages_arguments_and_tracebacks():
    token = "123456:AAE-secret-token"
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: POST %s "%s"',
        (f"https://api.telegram.org/bot{token}/getUpdates", "HTTP/1.1 200 OK"),
        None,
    )
    try:
        raise RuntimeError(f"failed at /bot{token}/sendMessage")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    SecretsFilter([token]).filter(record)
    formatted = logging.Formatter().format(record)
    assert token not in formatted
    assert formatted.count(MASK) == 2
