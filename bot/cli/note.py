"""``stagecoach note parse``: what StageCoach reads from a visit note, as JSON, for teams
tuning their playbook's cues and for tests."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from bot.cli.config import ConfigError, Settings
from flows.extract import extract, to_public
from flows.i18n import LANGUAGES, t
from flows.playbook import PlaybookError, load_playbook

note_app = typer.Typer(help="Read visit notes.", no_args_is_help=True)


@note_app.command("parse")
def note_parse(
    ctx: typer.Context,
    stage: Annotated[
        str | None, typer.Option(help="The deal's stage id; default: the first open stage.")
    ] = None,
    lang: Annotated[str | None, typer.Option(help="zh or en, for messages.")] = None,
    today: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD that relative dates count from.")
    ] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone, e.g. Asia/Shanghai.")] = None,
    playbook: Annotated[
        Path | None, typer.Option(help="Playbook file; default: the configured one.")
    ] = None,
) -> None:
    """Read a note from standard input; print one JSON object: {"fields": {id: {"value",
    "evidence"}}, "stage", "today", "next_step"}. What the note does not state is absent."""
    settings = _settings(ctx)
    language = lang if lang in LANGUAGES else settings.defaults.language
    try:
        book = load_playbook(playbook or (settings.playbook.path or None))
        zone = ZoneInfo(tz or settings.defaults.timezone)
        stage_id = stage or book.first_open_stage.id
        book.stage(stage_id)
        day = date.fromisoformat(today) if today else datetime.now(zone).date()
    except PlaybookError as exc:
        typer.echo(t(language, "cli.playbook_error", error=exc), err=True)
        raise typer.Exit(2) from exc
    except (ZoneInfoNotFoundError, ValueError, KeyError) as exc:
        typer.echo(t(language, "cli.note_bad_option", error=exc), err=True)
        raise typer.Exit(2) from exc
    # Noon, so that "today" is the same day in every zone the date is read in.
    now = datetime(day.year, day.month, day.day, 12, tzinfo=zone)
    found = extract(sys.stdin.read(), book, stage_id=stage_id, now=now)
    fields = {
        key: {
            "value": to_public(book.field(key), proposal.value, book.currency),
            "evidence": proposal.evidence,
        }
        for key, proposal in found.fields.items()
    }
    output = {"fields": fields, "stage": stage_id, "today": day.isoformat()}
    step = found.next_step
    if step is not None:
        output["next_step"] = {"text": step.text, "date": step.when, "evidence": step.evidence}
    typer.echo(json.dumps(output, ensure_ascii=False, indent=2))


def _settings(ctx: typer.Context) -> Settings:
    try:
        return ctx.obj["settings"]()
    except ConfigError:
        return Settings()
