"""Deterministic test data built through the storage functions (flushed, not committed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

from storage.deals import create_deal
from storage.models import Deal, Member, Team
from storage.teams import add_member, create_team

NOW = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


def _next(session: Session, model: type[SQLModel]) -> int:
    return session.exec(select(func.count()).select_from(model)).one() + 1


def make_team(session: Session, **overrides: Any) -> Team:
    """A team named "Team <n>" (n counts teams in the database)."""
    values: dict[str, Any] = {"name": f"Team {_next(session, Team)}", "now": NOW}
    values.update(overrides)
    return create_team(session, **values)


def make_member(session: Session, team: Team, **overrides: Any) -> Member:
    """A rep of ``team`` with Telegram id 10_000 + n, language "en", timezone "Asia/Shanghai"."""
    assert team.id is not None
    n = _next(session, Member)
    values: dict[str, Any] = {
        "team_id": team.id,
        "telegram_user_id": 10_000 + n,
        "display_name": f"Rep {n}",
        "role": "rep",
        "language": "en",
        "timezone": "Asia/Shanghai",
        "now": NOW,
    }
    values.update(overrides)
    return add_member(session, **values)


def make_deal(session: Session, team: Team, owner: Member, **overrides: Any) -> Deal:
    """An open CNY deal "Deal <n>" for "Customer <n>" in stage "qualify", owned by ``owner``."""
    assert team.id is not None and owner.id is not None
    n = _next(session, Deal)
    values: dict[str, Any] = {
        "team_id": team.id,
        "owner_id": owner.id,
        "name": f"Deal {n}",
        "customer": f"Customer {n}",
        "stage_id": "qualify",
        "currency": "CNY",
        "now": NOW,
    }
    values.update(overrides)
    return create_deal(session, **values)
