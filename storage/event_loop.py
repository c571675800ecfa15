"""Database work called from the bot's event loop, without a thread per call.

SQLite answers inside the process, so its work simply runs on the loop. A PostgreSQL chat turn
waits for the server several times. Run in a thread, each wait and return would cost GIL
hand-offs with the loop, and more threads mean more of them (the bot spends noticeably less CPU
per update without: bench/README.md). Here the connections use asyncpg, and SQLAlchemy's
greenlet bridge (what ``AsyncSession.run_sync`` is built on) lets the same synchronous Session
code await each round trip, so the loop runs other chats' turns meanwhile. asyncpg rather than
psycopg's async mode: a turn costs the bot less CPU with it (bench/README.md). Everything else
(migrations, the CLI, the ticks' threads) keeps the psycopg engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import URL

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import ping_when_idle
from storage.fences import greenlet_spawn

T = TypeVar("T")


def libpq_url(url: URL) -> str:
    """``url`` as a libpq connection URL, which asyncpg parses as libpq does: query parameters
    such as ``sslmode`` keep their meaning, and ones like ``application_name`` become server
    settings (SQLAlchemy's asyncpg dialect would pass them on as unknown keyword arguments)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class LoopDatabase:
    """``engine``'s database for work run by ``run`` on the event loop.

    Attributes:
        inline: work runs on the loop as it is (SQLite): nothing else runs meanwhile.
        engine: the engine that work passed to ``run`` must use (on PostgreSQL, one whose
            connections wait on the event loop: usable only inside ``run``).
    """

    def __init__(self, engine: Engine, connections: int):
        self.inline = engine.dialect.name == "sqlite"
        self._async: AsyncEngine | None = None
        self.engine = engine
        if not self.inline:
            # Imported here: it costs a noticeable share of start-up, and a SQLite bot never
            # needs it.
            from sqlalchemy.ext.asyncio import create_async_engine

            # A fixed pool, no overflow: turns beyond it wait for a connection on the loop.
            # With overflow, every burst of chats would open connections (a server process
            # each) and close them again, at a large cost in throughput (bench/README.md).
            self._async = create_async_engine(
                "postgresql+asyncpg://",
                connect_args={"dsn": libpq_url(engine.url)},
                pool_size=connections,
                max_overflow=0,
                hide_parameters=True,  # as storage.db.make_engine: no typed values in errors
            )
            self.engine = self._async.sync_engine
            ping_when_idle(self.engine)

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(*args, **kwargs)``; on a server database the loop serves others while it
        waits."""
        if self._async is None:
            return work(*args, **kwargs)
        return await greenlet_spawn(work, *args, **kwargs)

    async def close(self) -> None:
        """Close the pooled connections (they belong to this event loop)."""
        if self._async is not None:
            await self._async.dispose()
