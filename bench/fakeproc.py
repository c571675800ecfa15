"""The fake Bot API (tests/fake_bot_api.py) and the load driver, in a process of their own.

Why a separate process: the fake parses every request (HTML, spec checks, deep copies) and the
driver builds every update; in the bot's process they would share its event loop and its core,
and the figures would measure the fake as much as the bot. On this 2-core machine the fake gets
one core and the bot the other (plus whatever its threads and the database need), as a real
deployment's Bot API is another machine. Both clocks in a latency (update made available,
answer arrived) are read in this process, so the two processes need no common clock.

``FakeServer`` is the parent's handle: ``start`` a fresh fake, ``run`` a load, ``stop`` it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from bench.driver import Driver
from bench.reps import EchoUser, Pinger, Rep, User
from tests.fake_bot_api import ApiError, FakeBotApi


class ProbedFakeBotApi(FakeBotApi):
    """The fake, telling a listener about every message the bot sends or edits, counting the
    requests it refused and noting when getUpdates was first called."""

    def __init__(self, **kwargs: Any):
        super().__init__(rate_limits=False, **kwargs)
        self.listener = None
        self.refused = 0
        self.first_get_updates: float | None = None  # time.time() of the first call

    def _reply(self, outcome: Any):
        if isinstance(outcome, ApiError):
            self.refused += 1
        return FakeBotApi._reply(outcome)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.first_get_updates is None:
            self.first_get_updates = time.time()
        return await super()._get_updates(params)

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        at = time.perf_counter()
        return self._tell("send", await super()._send_message(params), at)

    async def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        at = time.perf_counter()
        return self._tell("photo", await super()._send_photo(params), at)

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        at = time.perf_counter()
        return self._tell("edit", await super()._edit_message_text(params), at)

    def _tell(self, kind: str, message: dict[str, Any], at: float) -> dict[str, Any]:
        if self.listener is not None:
            self.listener(kind, message["chat"]["id"], message, at)
        return message


# -- the child process ---------------------------------------------------------------------------


def _users(spec: dict[str, Any]) -> list[User]:
    if spec["users"] == "ping":
        return [Pinger(u) for u in spec["ids"]]
    if spec["users"] == "echo":
        return [EchoUser(u, spec["count"]) for u in spec["ids"]]
    from flows.playbook import load_playbook

    playbook = load_playbook(None)
    return [Rep(u, deals, playbook) for u, deals in spec["reps"]]


class _Server:
    def __init__(self) -> None:
        self.fake: ProbedFakeBotApi | None = None

    async def handle(self, command: str, args: dict[str, Any]) -> Any:
        if command == "start":
            await self.stop()
            self.fake = await ProbedFakeBotApi().start()
            for chat_id in args.get("chats", ()):
                self.fake.register_chat(chat_id, "private", "Rep")
            return {"base_url": self.fake.base_url, "token": self.fake.token}
        if command == "run":
            return await self.run(args)
        if command == "status":
            fake = self.fake
            return {
                "first_get_updates": fake.first_get_updates,
                "requests": len(fake.requests),
                "last_activity_age": asyncio.get_running_loop().time() - fake._last_activity,
                "refused": fake.refused,
                "spec_violations": list(fake.spec_violations[:5]),
            }
        if command == "stop":
            return await self.stop()
        raise ValueError(f"unknown command {command!r}")

    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        refused, violations = fake.refused, len(fake.spec_violations)
        driver = Driver(fake, _users(spec))
        fake.listener = driver.on_message
        cpu = time.process_time()
        first_request = len(fake.requests)
        try:
            if spec["mode"] == "open":
                result = await driver.open_loop_run(spec["rate"], spec["timeout"])
            else:
                result = await driver.saturated(spec["timeout"])
        finally:
            fake.listener = None
        result["fake_cpu_s"] = time.process_time() - cpu
        result["requests"] = Counter(method for method, _ in fake.requests[first_request:])
        result["refused"] = fake.refused - refused
        result["spec_violations"] = len(fake.spec_violations) - violations
        result["violation_examples"] = fake.spec_violations[violations : violations + 3]
        reps = [u for u in driver.users.values() if isinstance(u, Rep)]
        result["presses"] = sum(r.presses for r in reps)
        result["typed"] = sum(r.typed for r in reps)
        result["runs"] = sum(r.runs for r in reps)
        return result

    async def stop(self) -> None:
        if self.fake is not None:
            await self.fake.stop()
            self.fake = None


def serve(connection: Connection) -> None:
    """The child's main: answer commands until "exit"."""
    asyncio.run(_serve(connection))


async def _serve(connection: Connection) -> None:
    server = _Server()
    loop = asyncio.get_running_loop()
    try:
        while True:
            command, args = await loop.run_in_executor(None, connection.recv)
            if command == "exit":
                break
            try:
                connection.send(("ok", await server.handle(command, args)))
            except Exception as exc:  # report to the parent, keep serving
                connection.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        await server.stop()


# -- the parent's handle -------------------------------------------------------------------------


class FakeServer:
    """Starts the child process; every call waits for its answer without blocking the loop."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=serve, args=(child,), name="fake-bot-api")
        self._process.start()
        child.close()
        self.base_url = ""
        self.token = ""

    async def call(self, command: str, **args: Any) -> Any:
        self._connection.send((command, args))
        status, value = await asyncio.to_thread(self._connection.recv)
        if status == "error":
            raise RuntimeError(f"fake Bot API process: {value}")
        return value

    async def start(self, chats: list[int] | None = None) -> None:
        answer = await self.call("start", chats=chats or [])
        self.base_url, self.token = answer["base_url"], answer["token"]

    async def run(self, **spec: Any) -> dict[str, Any]:
        return await self.call("run", **spec)

    def close(self) -> None:
        if self._process.is_alive():
            self._connection.send(("exit", {}))
            self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._connection.close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
