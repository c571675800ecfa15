"""The parts of SQLAlchemy that StageCoach uses without SQLAlchemy documenting them.

Covered by tests/test_upgrade_contracts.py, which fails with a message naming what changed
when an upgrade breaks one of these assumptions; nothing else imports them
(tests/test_layers.py).
"""

from __future__ import annotations

# Runs synchronous Session code on the event loop: each database wait inside it becomes an
# await on the async driver. SQLAlchemy's asyncio extension is built on it
# (AsyncSession.run_sync), and it is loaded with SQLAlchemy itself.
from sqlalchemy.util import greenlet_spawn

__all__ = ["greenlet_spawn"]
