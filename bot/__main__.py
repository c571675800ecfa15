"""``python -m bot`` is the ``stagecoach`` command."""

from bot.cli import app

app(prog_name="stagecoach")
