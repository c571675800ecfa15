"""The bot token and the webhook secret never leave the process (issue 18).

An attacker's probe saw the token printed in 14 of 22 failure modes: uncaught errors reached
the command line's traceback unmasked, and PTB's errors and a proxy's error pages quote the
token. Each failure mode here runs ``stagecoach`` as its own process, with and without ``-v``,
and everything it writes is searched for the token, the token's secret part and the webhook
secret. Without ``-v``, an error is one line and no traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

pytestmark = pytest.mark.full  # processes: make test, not make check

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:AAE-very-secret-token-value"
SECRET = "hook-secret-abc123"


@dataclass
class ErrorServer:
    """A Bot API server, or a proxy before it, that answers every request with an HTML error
    page quoting the request's path (the token is in it)."""

    status: int
    base: str = ""
    paths: list[str] | None = None


@pytest.fixture
async def error_server() -> AsyncIterator[ErrorServer]:
    server = ErrorServer(status=502, paths=[])

    async def answer(request: web.Request) -> web.Response:
        server.paths.append(request.path)
        page = (
            f"<html><head><title>{server.status}</title></head><body>"
            f"<h1>Error</h1><p>No route for {request.method} {request.url}</p></body></html>"
        )
        return web.Response(status=server.status, text=page, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


async def stagecoach(
    tmp_path: Path,
    *args: str,
    base_url: str,
    verbose: bool,
    config: str = "",
    secret: str = SECRET,
    stop_once=None,
) -> tuple[int, str]:
    """Run ``stagecoach`` with the token and secret set; its exit code and all it wrote.

    ``stop_once``: SIGTERM once this returns true (a run that would go on serving)."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(config, encoding="utf-8")
    env = {
        **os.environ,
        "STAGECOACH_CONFIG": str(config_file),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": base_url,
        "TELEGRAM_WEBHOOK_SECRET": secret,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *(["--verbose"] if verbose else []),
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    if stop_once is not None:
        for _ in range(600):
            if stop_once() or process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        if process.returncode is None:
            process.terminate()
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, output.decode(errors="replace")


def seed_team_with_manager(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from storage.db import make_engine, transaction, upgrade
    from storage.teams import add_member, create_team

    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    upgrade(engine)
    now = datetime.now(UTC)
    with transaction(engine) as session:
        team = create_team(session, name="East", now=now)
        add_member(
            session,
            team_id=team.id,
            telegram_user_id=5001,
            display_name="Meg",
            role="manager",
            language="en",
            timezone="UTC",
            now=now,
        )
    engine.dispose()


WEBHOOK = 'mode = "webhook"\nwebhook_url = "https://bot.example.com/hook"\n'
REFUSED_SECRET = "has spaces and ! marks"  # Telegram would refuse it


@dataclass(frozen=True)
class Failure:
    args: tuple[str, ...]
    base_url: str  # {base}: the error server's address
    status: int = 502  # what the error server answers
    codes: frozenset[int] = frozenset({1})  # the exit codes allowed
    config: str = ""  # the [telegram] settings
    serves: bool = False  # it runs until stopped (SIGTERM once the server saw 4 requests)
    secret: str = SECRET


RUN, DIGEST, INVITE = ("run",), ("digest", "--now"), ("team", "invite", "East")
FAILURES = {
    "base URL without /bot": Failure(RUN, "{base}/", codes=frozenset({2})),
    "base URL not a URL": Failure(RUN, "not a url", codes=frozenset({2})),
    "base URL of another scheme": Failure(RUN, "ftp://127.0.0.1/bot", codes=frozenset({2})),
    "base URL with port 99999": Failure(RUN, "http://127.0.0.1:99999/bot", codes=frozenset({2})),
    "server answers 401 with a page": Failure(RUN, "{base}/bot", 401),
    "server answers 404 with a page": Failure(RUN, "{base}/bot", 404),
    "server answers 502, stopped meanwhile": Failure(
        RUN, "{base}/bot", codes=frozenset({0}), serves=True
    ),
    "server answers 500 in webhook mode": Failure(
        RUN, "{base}/bot", 500, frozenset({0}), WEBHOOK, serves=True
    ),
    "nothing listening, stopped meanwhile": Failure(
        RUN, "http://127.0.0.1:9/bot", codes=frozenset({0}), serves=True
    ),
    "webhook secret Telegram refuses": Failure(
        RUN, "{base}/bot", codes=frozenset({2}), config=WEBHOOK, secret=REFUSED_SECRET
    ),
    "digest against a 502": Failure(DIGEST, "{base}/bot", codes=frozenset({0, 1})),
    "digest against a 401": Failure(DIGEST, "{base}/bot", 401),
    "invite against a 401": Failure(INVITE, "{base}/bot", 401, frozenset({0})),
    "invite against a 502": Failure(INVITE, "{base}/bot", codes=frozenset({0})),
    "invite with a base URL without /bot": Failure(INVITE, "{base}", codes=frozenset({0})),
}


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
@pytest.mark.parametrize("name", FAILURES)
async def test_no_failure_prints_the_token_or_the_secret(
    tmp_path, error_server: ErrorServer, name: str, verbose: bool
):
    failure = FAILURES[name]
    error_server.status = failure.status
    seed_team_with_manager(tmp_path)
    code, output = await stagecoach(
        tmp_path,
        *failure.args,
        base_url=failure.base_url.format(base=error_server.base),
        verbose=verbose,
        config=f"[telegram]\n{failure.config}" if failure.config else "",
        secret=failure.secret,
        stop_once=(lambda: len(error_server.paths) >= 4) if failure.serves else None,
    )
    for secret in (TOKEN, TOKEN.partition(":")[2], failure.secret):
        assert secret not in output, f"{name}: printed\n{output}"
    assert code in failure.codes, f"{name}: exit code {code}\n{output}"
    if not verbose:
        assert "Traceback" not in output, f"{name}: a traceback\n{output}"
