"""The digest tick: each manager's digest once a day at their local time, and on demand.

Each digest is claimed in the database before it is built, so two instances never both send it
and a restart never sends it twice; one missed during downtime goes out late, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import Engine
from sqlmodel import Session

from bot.dialog.digests import TeamData, digest_replies, digest_since, load_team
from bot.dialog.events import Outcome, Reply
from bot.dialog.turn import member_now
from bot.dialog.writer import DialogConfig, Writer
from flows.playbook import Playbook
from storage.db import transaction
from storage.digests import claim_digest, finish_digest, release_digest
from storage.models import Member
from storage.teams import list_all_managers

log = logging.getLogger(__name__)


@dataclass
class DigestJob:
    chat_id: int
    replies: list[Reply]
    run_id: int


class DigestRunner:
    def __init__(
        self,
        engine: Engine,
        playbook: Playbook,
        config: DialogConfig,
        *,
        digest_time: time,
        instance: str,
    ):
        self.engine = engine
        self.playbook = playbook
        self.config = config
        self.digest_time = digest_time
        self.instance = instance

    def due(self, now: datetime, *, any_time: bool = False) -> list[DigestJob]:
        """Claim and build the digests whose local time has come today (or all: ``any_time``)."""
        with transaction(self.engine) as session:
            managers = list_all_managers(session)
        due = []
        for manager in managers:
            local = member_now(now, manager)
            if any_time or local.time().replace(tzinfo=None) >= self.digest_time:
                due.append((manager, local))
        jobs: dict[int, DigestJob] = {}
        for team in _by_team(due):
            cache: dict[int, TeamData] = {}  # one team's data in memory at a time
            for manager, local in team:
                job = self._claimed_job(manager, local, now, cache)
                if job is not None:
                    jobs[manager.id] = job
        return [jobs[manager.id] for manager, _ in due if manager.id in jobs]

    def _claimed_job(
        self, manager: Member, local: datetime, now: datetime, teams: dict[int, TeamData]
    ) -> DigestJob | None:
        """Claim one manager's digest, then build it (a failure stays theirs).

        The build reads in a transaction of its own: on SQLite a claim's write lock held
        through a team's load would make every chat turn wait. A build that fails gives the
        claim back, so the next tick tries again.
        """
        try:
            with transaction(self.engine) as session:
                run_id = claim_digest(
                    session,
                    member_id=manager.id,
                    digest_date=local.date(),
                    instance=self.instance,
                    now=now,
                )
            if run_id is None:
                return None
        except Exception:
            log.exception("could not claim the digest of manager %s", manager.id)
            return None
        try:
            with transaction(self.engine, read_only=True) as session:
                replies = self._build(session, manager, local, teams)
        except Exception:
            log.exception("could not build the digest of manager %s", manager.id)
            self._release(run_id)
            return None
        return DigestJob(manager.telegram_user_id, replies, run_id)

    def _release(self, run_id: int) -> None:
        try:
            with transaction(self.engine) as session:
                release_digest(session, run_id=run_id)
        except Exception:  # the claim then times out and is taken over
            log.exception("could not give back digest claim %s", run_id)

    def preview(self, now: datetime) -> list[tuple[Member, list[Reply]]]:
        """Every manager's digest as of now, without sending or recording anything."""
        with transaction(self.engine, read_only=True) as session:
            managers = list_all_managers(session)
            built: dict[int, list[Reply]] = {}
            for team in _by_team([(manager, member_now(now, manager)) for manager in managers]):
                cache: dict[int, TeamData] = {}
                for manager, local in team:
                    built[manager.id] = self._build(session, manager, local, cache)
            return [(manager, built[manager.id]) for manager in managers]

    def delivered(self, job: DigestJob, outcome: Outcome, now: datetime) -> None:
        """Done once any of it reached the manager (or never can); else the next tick retries."""
        with transaction(self.engine) as session:
            if outcome is Outcome.FAILED:
                release_digest(session, run_id=job.run_id)
            else:
                finish_digest(session, run_id=job.run_id, now=now)

    def _build(
        self, session: Session, manager: Member, local: datetime, teams: dict[int, TeamData]
    ) -> list[Reply]:
        since = digest_since(session, manager, local)
        team = teams.get(manager.team_id)
        # Loaded for a later window or another local day (past dates): load again.
        if team is None or team.since > since or team.today != local.date():
            team = teams[manager.team_id] = load_team(
                session, manager.team_id, since, local.date(), self.playbook
            )
        writer = Writer(manager.language, self.playbook, local, self.config)
        return digest_replies(writer, team, since, self.config.idle_days)


def _by_team(managers: list[tuple[Member, datetime]]) -> list[list[tuple[Member, datetime]]]:
    """Managers (with their local time) grouped by team, teams in order of their first manager:
    one team's data is loaded once and dropped before the next team's is. Within a team, by
    local day: a team is loaded once per day its managers are in."""
    teams: dict[int, list[tuple[Member, datetime]]] = {}
    for pair in managers:
        teams.setdefault(pair[0].team_id, []).append(pair)
    return [sorted(team, key=lambda pair: pair[1].date()) for team in teams.values()]
